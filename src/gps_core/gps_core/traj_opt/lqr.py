"""Max-entropy LQR backward pass and Gaussian forward pass for linear-Gaussian trajectories.

The KL-constrained update of Levine & Abbeel (NIPS'14, eq. 3-4) solves, for a dual variable eta,
  min_p  E_p[ l(x,u) / eta - log p_old(u|x) ] - H(p)
whose solution is p(u_t|x_t) = N(K_t x_t + k_t, Q_uu,t^{-1}) from an LQR backward pass on the
augmented quadratic cost.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy


class NotPositiveDefinite(np.linalg.LinAlgError):
    """Q_uu was not positive definite at some time step (raise eta and retry)."""

    def __init__(self, t: int):
        super().__init__(f'Q_uu not positive definite at t={t}')
        self.t = t


def kl_penalty_terms(prior: LinearGaussianPolicy) -> tuple[np.ndarray, np.ndarray]:
    """-log p_old(u|x) as 1/2 xu^T PKLm xu + xu^T PKLv (+ const). PKLm [T, dXU, dXU], PKLv [T, dXU]."""
    K, k, P = prior.K, prior.k, prior.inv_pol_covar
    PK = P @ K                                                         # [T, dU, dX]
    KtPK = np.swapaxes(K, 1, 2) @ PK
    top = np.concatenate([KtPK, -np.swapaxes(PK, 1, 2)], axis=2)
    bottom = np.concatenate([-PK, P], axis=2)
    Pk = np.einsum('tij,tj->ti', P, k)
    PKLv = np.concatenate([np.einsum('tji,tj->ti', K, Pk), -Pk], axis=1)
    return np.concatenate([top, bottom], axis=1), PKLv


def backward_pass(Cm: np.ndarray, cv: np.ndarray, dyn: LinearGaussianDynamics,
                  value_scale: np.ndarray | None = None) -> LinearGaussianPolicy:
    """LQR on the quadratic cost (Cm [T,dXU,dXU], cv [T,dXU]) under the linear dynamics.

    Returns N(K x + k, Q_uu^{-1}) per step; raises NotPositiveDefinite(t) if Q_uu is not PD.
    value_scale [T] (default all 1): Q_t = cost_t + value_scale[t] E[V_t+1]; value_scale[T-1] is
    unused. A per-step entropy weight w_t with costs pre-divided by w_t needs
    value_scale[t] = w_t+1 / w_t to stay the exact solution (see KLTrajOpt.solve_eta).
    """
    T, dX, dU = dyn.T, dyn.dX, dyn.dU
    Fm, fv = dyn.Fm, dyn.fv
    scale = np.ones(T) if value_scale is None else np.asarray(value_scale, dtype=float)
    if scale.shape != (T,) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f'value_scale must be [{T}] finite and > 0; got shape {scale.shape}')
    K = np.empty((T, dU, dX))
    k = np.empty((T, dU))
    Quu_all = np.empty((T, dU, dU))
    Quu_inv_all = np.empty((T, dU, dU))
    Vxx = np.zeros((dX, dX))
    Vx = np.zeros(dX)
    # LAPACK directly (dpotrf/dpotri): numpy.linalg's per-call overhead dominates at dU ~ 7.
    potrf, potri = lapack.dpotrf, lapack.dpotri
    iu = np.triu_indices(dU, 1)
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            FtV = scale[t] * (Fm[t].T @ Vxx)
            Qtt = Cm[t] + FtV @ Fm[t]
            Qt = cv[t] + scale[t] * (Fm[t].T @ Vx) + FtV @ fv[t]
        else:
            Qtt, Qt = Cm[t], cv[t]
        Quu = 0.5 * (Qtt[dX:, dX:] + Qtt[dX:, dX:].T)
        Qux = Qtt[dX:, :dX]
        L, info = potrf(Quu, lower=True, clean=False)
        if info != 0:
            raise NotPositiveDefinite(t)
        Quu_inv, info = potri(L, lower=True)
        if info != 0:
            raise NotPositiveDefinite(t)
        Quu_inv[iu] = Quu_inv.T[iu]                                    # potri fills one triangle
        Kt = -Quu_inv @ np.concatenate([Qux, Qt[dX:, None]], axis=1)    # [K_t | k_t] in one product
        K[t], k[t] = Kt[:, :dX], Kt[:, dX]
        Quu_all[t], Quu_inv_all[t] = Quu, Quu_inv
        # V = Q_xx + Q_xu K (using K = -Quu^-1 Qux), symmetrized against round-off.
        QxuK = Qux.T @ Kt
        Vxx = Qtt[:dX, :dX] + QxuK[:, :dX]
        Vxx = 0.5 * (Vxx + Vxx.T)
        Vx = Qt[:dX] + QxuK[:, dX]
    chol = np.swapaxes(np.linalg.cholesky(Quu_inv_all), 1, 2)
    return LinearGaussianPolicy(K, k, Quu_inv_all, chol, Quu_all)


def forward_pass(policy: LinearGaussianPolicy, dyn: LinearGaussianDynamics) -> tuple[np.ndarray, np.ndarray]:
    """State-action marginals of the policy under the dynamics: mu [T, dXU], sigma [T, dXU, dXU]."""
    T, dX, dU = dyn.T, dyn.dX, dyn.dU
    mu = np.empty((T, dX + dU))
    sigma = np.empty((T, dX + dU, dX + dU))
    mx, Sx = dyn.x0mu, dyn.x0sigma
    for t in range(T):
        K = policy.K[t]
        SxKt = Sx @ K.T
        mu[t, :dX] = mx
        mu[t, dX:] = K @ mx + policy.k[t]
        sigma[t, :dX, :dX] = Sx
        sigma[t, :dX, dX:] = SxKt
        sigma[t, dX:, :dX] = SxKt.T
        sigma[t, dX:, dX:] = K @ SxKt + policy.pol_covar[t]
        if t < T - 1:
            F = dyn.Fm[t]
            mx = F @ mu[t] + dyn.fv[t]
            Sx = F @ sigma[t] @ F.T + dyn.dyn_covar[t]
            Sx = 0.5 * (Sx + Sx.T)
    return mu, sigma
