"""Exact KL divergence between two linear-Gaussian controllers along a trajectory distribution."""
from __future__ import annotations

import numpy as np

from gps_core.policies.linear_gaussian import LinearGaussianPolicy


def _logdet_from_chol(chol: np.ndarray) -> np.ndarray:
    return 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)


def traj_kl(mu: np.ndarray, sigma: np.ndarray, new: LinearGaussianPolicy,
            old: LinearGaussianPolicy) -> np.ndarray:
    """Per-step E_{x_t ~ p_new}[ KL(p_new(u_t|x_t) || p_old(u_t|x_t)) ], shape [T].

    Both trajectory distributions share the dynamics, so KL(p_new(tau) || p_old(tau)) is the sum
    of these terms (Levine & Abbeel NIPS'14, Sec. 3.1). mu [T, dXU] and sigma [T, dXU, dXU] are
    p_new's state-action marginals; only their state blocks are used. Closed form for Gaussians:
    1/2 [tr(P S_new) + E(d^T P d) - dU + log|S_old| - log|S_new|], d(x) = dK x + dk, P = S_old^-1.
    """
    dX, dU = new.dX, new.dU
    P = old.inv_pol_covar
    dK = new.K - old.K
    mx, Sx = mu[:, :dX], sigma[:, :dX, :dX]
    dmean = np.einsum('tij,tj->ti', dK, mx) + (new.k - old.k)
    quad_mean = np.einsum('ti,tij,tj->t', dmean, P, dmean)
    quad_cov = np.einsum('tij,tjk,tkl,til->t', P, dK, Sx, dK, optimize=True)
    trace = np.einsum('tij,tji->t', P, new.pol_covar)
    logdets = _logdet_from_chol(old.chol_pol_covar) - _logdet_from_chol(new.chol_pol_covar)
    return np.maximum(0.5 * (trace + quad_mean + quad_cov - dU + logdets), 0.0)
