"""BADMM's trajectory step solved exactly for time-varying weights nu_t, against two oracles that
share no code with the backward pass.

The objective (Levine et al. JMLR'16, App. A; the reference code's BADMM backward pass), for a
fixed dual eta:
  L(p) = sum_t E_p[c_t - lambda_t^T u_t] + nu_t E[KL(p_t || q_t)] + eta E[KL(p_t || prior_t)].

1. Dense solve. The entropies only scale each step's covariance (p_t ~ exp(-Q_t / (nu_t + eta)))
   and add state-independent constants to the value, so K_t, k_t are the deterministic LQR gains
   of the UNnormalized cost c_t - lambda^T u - nu_t log q_t - eta log prior_t, and
   Sigma_t = (nu_t + eta) Q_uu,t^-1. Both come from one quadratic in the stacked
   z = [x_s; u_s..u_T-1] (mean dynamics), minimized over the u's by a dense solve.
2. Stationarity. L(p) itself, evaluated by the Gaussian forward pass, the exact expected cost and
   the closed-form KL, must have zero gradient in (K, k, chol Sigma) at the optimum: central
   finite differences.

Shapes: dX = 3, dU = 2, T = 6; K [T, dU, dX], k [T, dU], Sigma [T, dU, dU].
"""
from __future__ import annotations

import numpy as np
import pytest

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt import CostExpansion, KLPenalty, KLTrajOpt, backward_pass, forward_pass, traj_kl
from gps_core.traj_opt.kl_lqr import expected_cost
from gps_core.traj_opt.lqr import kl_penalty_terms

T, dX, dU = 6, 3, 2
dXU = dX + dU
NU_VARYING = np.array([0.02, 0.8, 3.0, 0.1, 6.0, 0.5])
ETA = 0.7


def random_problem(seed: int = 0):
    """Random dynamics, a convex cost with Lagrange terms, the prior and the policy to stay near."""
    rng = np.random.default_rng(seed)
    A = np.eye(dX) + 0.2 * rng.normal(size=(T, dX, dX))
    B = 0.5 * rng.normal(size=(T, dX, dU))
    noise = rng.normal(size=(T, dX, dX))
    dyn = LinearGaussianDynamics(Fm=np.concatenate([A, B], axis=2), fv=0.1 * rng.normal(size=(T, dX)),
                                 dyn_covar=0.05 * noise @ np.swapaxes(noise, 1, 2) + 1e-3 * np.eye(dX),
                                 x0mu=rng.normal(size=dX), x0sigma=0.1 * np.eye(dX))
    H = rng.normal(size=(T, dXU, dXU))
    Cm = H @ np.swapaxes(H, 1, 2) / dXU + 0.1 * np.eye(dXU)
    cost = CostExpansion(rng.normal(size=T), rng.normal(size=(T, dXU)), Cm, np.zeros((1, T)))
    dcv = np.zeros((T, dXU))
    dcv[:, dX:] = -rng.normal(size=(T, dU))                      # - lambda_t^T u
    return dyn, cost.with_linear_terms(dcv), random_policy(rng), random_policy(rng)


def random_policy(rng: np.random.Generator) -> LinearGaussianPolicy:
    S = rng.normal(size=(T, dU, dU))
    return LinearGaussianPolicy.from_covar(0.5 * rng.normal(size=(T, dU, dX)), rng.normal(size=(T, dU)),
                                           S @ np.swapaxes(S, 1, 2) + 0.3 * np.eye(dU))


def neg_log_gaussian(pol: LinearGaussianPolicy) -> tuple[np.ndarray, np.ndarray]:
    """-log pol(u|x) = 1/2 (D xu - k)^T P (D xu - k) + const, D = [-K, I]: Hessian and gradient at 0."""
    D = np.concatenate([-pol.K, np.broadcast_to(np.eye(dU), (T, dU, dU))], axis=2)
    DtP = np.swapaxes(D, 1, 2) @ pol.inv_pol_covar
    return DtP @ D, -np.einsum('tij,tj->ti', DtP, pol.k)


def dense_oracle(dyn, cost, prior, q, nu, eta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K, k, Sigma at every step s from one dense minimization over u_s..u_T-1 given x_s."""
    Hq, hq = neg_log_gaussian(q)
    Hp, hp = neg_log_gaussian(prior)
    H = cost.Cm + nu[:, None, None] * Hq + eta * Hp
    h = cost.cv + nu[:, None] * hq + eta * hp
    K, k, S = np.empty((T, dU, dX)), np.empty((T, dU)), np.empty((T, dU, dU))
    for s in range(T):
        nz = dX + dU * (T - s)
        G, g = np.zeros((nz, nz)), np.zeros(nz)
        Mx, mx = np.zeros((dX, nz)), np.zeros(dX)            # x_t = Mx z + mx, z = [x_s; u_s..u_T-1]
        Mx[:, :dX] = np.eye(dX)
        for t in range(s, T):
            Mu = np.zeros((dU, nz))
            Mu[:, dX + dU * (t - s):dX + dU * (t - s + 1)] = np.eye(dU)
            M, m = np.vstack([Mx, Mu]), np.concatenate([mx, np.zeros(dU)])
            G += M.T @ H[t] @ M
            g += M.T @ (H[t] @ m + h[t])
            Mx, mx = dyn.Fm[t] @ M, dyn.Fm[t] @ m + dyn.fv[t]
        Ginv = np.linalg.inv(G[dX:, dX:])
        K[s] = -(Ginv @ G[dX:, :dX])[:dU]
        k[s] = -(Ginv @ g[dX:])[:dU]
        S[s] = (nu[s] + eta) * Ginv[:dU, :dU]                # (Schur complement of the u_s block)^-1
    return K, k, S


def lagrangian(pol: LinearGaussianPolicy, dyn, cost, prior, q, nu, eta) -> float:
    mu, sigma = forward_pass(pol, dyn)
    return float(expected_cost(mu, sigma, cost).sum() + np.sum(nu * traj_kl(mu, sigma, pol, q))
                 + eta * np.sum(traj_kl(mu, sigma, pol, prior)))


def stationarity(pol: LinearGaussianPolicy, *args, h: float = 1e-5) -> float:
    """Max |dL/dtheta| over theta = (K, k, lower Cholesky factor of Sigma), central differences."""
    L0 = np.linalg.cholesky(pol.pol_covar)
    tril = np.tril(np.ones((dU, dU), dtype=bool))
    theta = np.concatenate([pol.K.ravel(), pol.k.ravel(), L0[:, tril].ravel()])
    nK, nk = pol.K.size, pol.k.size

    def objective(th: np.ndarray) -> float:
        L = np.zeros((T, dU, dU))
        L[:, tril] = th[nK + nk:].reshape(T, -1)
        p = LinearGaussianPolicy.from_covar(th[:nK].reshape(pol.K.shape), th[nK:nK + nk].reshape(pol.k.shape),
                                            L @ np.swapaxes(L, 1, 2))
        return lagrangian(p, *args)

    grad = [(objective(theta + h * e) - objective(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    return float(np.max(np.abs(grad)))


def badmm_step(dyn, cost, prior, q, nu, eta) -> LinearGaussianPolicy:
    QKLm, QKLv = kl_penalty_terms(q)
    pen = (nu, nu[:, None, None] * QKLm, nu[:, None] * QKLv)
    policy, used_eta = KLTrajOpt().solve_eta(eta, cost, dyn, prior, kl_penalty_terms(prior), pen)
    assert used_eta == eta                                   # convex problem: no PD repair needed
    return policy


def max_rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize('nu', [NU_VARYING, np.full(T, 0.9)], ids=['time-varying nu', 'constant nu'])
def test_backward_pass_matches_the_dense_solve(nu):
    dyn, cost, prior, q = random_problem()
    pol = badmm_step(dyn, cost, prior, q, nu, ETA)
    K, k, S = dense_oracle(dyn, cost, prior, q, nu, ETA)
    assert max_rel_err(pol.K, K) < 1e-8
    assert max_rel_err(pol.k, k) < 1e-8
    assert max_rel_err(pol.pol_covar, S) < 1e-8


@pytest.mark.parametrize('nu', [NU_VARYING, np.full(T, 0.9)], ids=['time-varying nu', 'constant nu'])
def test_backward_pass_is_a_stationary_point_of_the_lagrangian(nu):
    args = random_problem()
    pol = badmm_step(*args, nu, ETA)
    assert stationarity(pol, *args, nu, ETA) < 1e-6


def test_the_oracles_detect_a_missing_value_rescaling():
    """The per-step normalized surrogate WITHOUT the (nu_t+1 + eta) / (nu_t + eta) rescaling
    solves a different problem: both oracles must reject it (so they have the power to fail)."""
    dyn, cost, prior, q = random_problem()
    QKLm, QKLv = kl_penalty_terms(q)
    PKLm, PKLv = kl_penalty_terms(prior)
    a = ETA + NU_VARYING
    unscaled = backward_pass((cost.Cm + NU_VARYING[:, None, None] * QKLm + ETA * PKLm) / a[:, None, None],
                             (cost.cv + NU_VARYING[:, None] * QKLv + ETA * PKLv) / a[:, None], dyn)
    K, k, _ = dense_oracle(dyn, cost, prior, q, NU_VARYING, ETA)
    assert max_rel_err(unscaled.K, K) > 1e-2
    assert stationarity(unscaled, dyn, cost, prior, q, NU_VARYING, ETA) > 1e-2


def test_full_update_returns_the_exact_solution_at_its_eta():
    """The eta search's final controller is the exact minimizer at the eta it reports."""
    dyn, cost, prior, q = random_problem(seed=1)
    upd = KLTrajOpt().update(prior, dyn, cost, kl_step=2.0, penalty=KLPenalty(q, NU_VARYING))
    assert upd.converged
    K, k, S = dense_oracle(dyn, cost, prior, q, NU_VARYING, upd.eta)
    assert max_rel_err(upd.policy.K, K) < 1e-8
    assert max_rel_err(upd.policy.k, k) < 1e-8
    assert max_rel_err(upd.policy.pol_covar, S) < 1e-8


def test_bad_value_scale_is_rejected():
    dyn, cost, _, _ = random_problem()
    with pytest.raises(ValueError, match='value_scale'):
        backward_pass(cost.Cm, cost.cv, dyn, np.ones(T - 1))
    with pytest.raises(ValueError, match='value_scale'):
        backward_pass(cost.Cm, cost.cv, dyn, np.r_[np.ones(T - 1), 0.0])
