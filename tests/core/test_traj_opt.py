"""KL-constrained trajectory optimization against independent oracles (Riccati, DARE, Monte Carlo)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gps_core.costs.base import CostDerivs
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt import (CostExpansion, KLTrajOpt, TrajOptConfig, backward_pass, estimate_cost,
                               expand_cost, forward_pass, traj_kl)


def point_mass(T: int, dt: float = 0.1, noise: float = 1e-4):
    """Double integrator in 2-D: x = [p (2), v (2)], u = force (2). A, B exact; dynamics noise small."""
    A = np.block([[np.eye(2), dt * np.eye(2)], [np.zeros((2, 2)), np.eye(2)]])
    B = np.vstack([0.5 * dt ** 2 * np.eye(2), dt * np.eye(2)])
    dX, dU = 4, 2
    dyn = LinearGaussianDynamics(
        Fm=np.tile(np.hstack([A, B]), (T, 1, 1)), fv=np.zeros((T, dX)),
        dyn_covar=np.tile(noise * np.eye(dX), (T, 1, 1)),
        x0mu=np.array([1.0, -0.5, 0.0, 0.2]), x0sigma=1e-3 * np.eye(dX))
    return A, B, dyn


def quadratic_cost(T: int, Q: np.ndarray, R: np.ndarray) -> CostExpansion:
    dX, dU = Q.shape[0], R.shape[0]
    Cm = np.zeros((T, dX + dU, dX + dU))
    Cm[:, :dX, :dX] = Q
    Cm[:, dX:, dX:] = R
    return CostExpansion(np.zeros(T), np.zeros((T, dX + dU)), Cm, np.zeros((1, T)))


def riccati_gains(A, B, Q, R, T):
    """Finite-horizon LQR for sum_t x'Qx + u'Ru, t = 0..T-1 (no terminal cost beyond step T-1)."""
    P = np.zeros_like(Q)
    gains = []
    for _ in range(T):
        K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ A + A.T @ P @ B @ K
        gains.append(K)
    return np.array(gains[::-1])


def broad_prior(T, dX, dU, var=1.0):
    return LinearGaussianPolicy.from_covar(np.zeros((T, dU, dX)), np.zeros((T, dU)),
                                           np.tile(var * np.eye(dU), (T, 1, 1)))


def test_backward_pass_matches_riccati():
    T = 30
    A, B, dyn = point_mass(T)
    Q, R = np.diag([1.0, 2.0, 0.1, 0.1]), np.diag([0.01, 0.02])
    pol = backward_pass(quadratic_cost(T, Q, R).Cm, np.zeros((T, 6)), dyn)
    np.testing.assert_allclose(pol.K, riccati_gains(A, B, Q, R, T), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pol.k, 0.0, atol=1e-12)
    # max-entropy LQR: the action covariance is Q_uu^-1 (at t=T-1, Q_uu = R)
    np.testing.assert_allclose(pol.pol_covar[-1], np.linalg.inv(R), rtol=1e-12)


def test_negligible_kl_constraint_gives_riccati_and_dare_gains():
    T = 200
    A, B, dyn = point_mass(T)
    Q, R = np.diag([1.0, 2.0, 0.1, 0.1]), np.diag([0.01, 0.02])
    cost = quadratic_cost(T, Q, R)
    upd = KLTrajOpt().update(broad_prior(T, 4, 2), dyn, cost, kl_step=1e9)
    assert upd.eta == pytest.approx(TrajOptConfig().min_eta)   # constraint inactive
    ref = riccati_gains(A, B, Q, R, T)
    np.testing.assert_allclose(upd.policy.K, ref, rtol=1e-6, atol=1e-6)
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K_inf = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(upd.policy.K[0], K_inf, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('kl_step', [0.5, 5.0, 50.0])
def test_kl_within_tolerance_of_epsilon(kl_step):
    T = 50
    _, _, dyn = point_mass(T)
    cost = quadratic_cost(T, np.diag([1.0, 1.0, 0.1, 0.1]), np.diag([1e-3, 1e-3]))
    prior = broad_prior(T, 4, 2, var=0.5)
    upd = KLTrajOpt().update(prior, dyn, cost, kl_step=kl_step)
    assert upd.converged
    assert abs(upd.kl - kl_step) <= 0.1 * kl_step
    # the reported KL is the KL actually achieved by the returned controller
    mu, sigma = forward_pass(upd.policy, dyn)
    assert np.sum(traj_kl(mu, sigma, upd.policy, prior)) == pytest.approx(upd.kl, rel=1e-12)
    # and the update improved the expected cost over the prior
    assert estimate_cost(upd.policy, dyn, cost).sum() < estimate_cost(prior, dyn, cost).sum()


def test_traj_kl_matches_monte_carlo():
    """Closed-form KL vs. sampling log p_new - log p_old along trajectories of p_new."""
    rng = np.random.default_rng(3)
    T, dX, dU = 6, 4, 2
    _, _, dyn = point_mass(T, noise=1e-2)

    def random_policy():
        A = rng.normal(size=(T, dU, dU))
        return LinearGaussianPolicy.from_covar(0.3 * rng.normal(size=(T, dU, dX)), rng.normal(size=(T, dU)),
                                               A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(dU))
    new, old = random_policy(), random_policy()
    mu, sigma = forward_pass(new, dyn)
    exact = traj_kl(mu, sigma, new, old).sum()

    M = 200_000
    x = rng.multivariate_normal(dyn.x0mu, dyn.x0sigma, size=M)
    total = np.zeros(M)
    for t in range(T):
        u = x @ new.K[t].T + new.k[t] + rng.standard_normal((M, dU)) @ new.chol_pol_covar[t]
        for pol, sign in ((new, 1.0), (old, -1.0)):
            r = u - x @ pol.K[t].T - pol.k[t]
            Pr = r @ pol.inv_pol_covar[t]
            total += sign * (-0.5 * np.sum(Pr * r, axis=1) - 0.5 * np.linalg.slogdet(pol.pol_covar[t])[1])
        x = np.hstack([x, u]) @ dyn.Fm[t].T + dyn.fv[t] + rng.multivariate_normal(
            np.zeros(dX), dyn.dyn_covar[t], size=M)
    assert exact == pytest.approx(total.mean(), rel=0.02)


def test_forward_pass_matches_monte_carlo():
    rng = np.random.default_rng(0)
    T = 10
    _, _, dyn = point_mass(T, noise=1e-2)
    pol = LinearGaussianPolicy.from_covar(0.2 * rng.normal(size=(T, 2, 4)), rng.normal(size=(T, 2)),
                                          np.tile(0.3 * np.eye(2), (T, 1, 1)))
    mu, sigma = forward_pass(pol, dyn)
    M = 100_000
    x = rng.multivariate_normal(dyn.x0mu, dyn.x0sigma, size=M)
    for t in range(T):
        u = x @ pol.K[t].T + pol.k[t] + rng.standard_normal((M, 2)) @ pol.chol_pol_covar[t]
        xu = np.hstack([x, u])
        x = xu @ dyn.Fm[t].T + dyn.fv[t] + rng.multivariate_normal(np.zeros(4), dyn.dyn_covar[t], size=M)
    np.testing.assert_allclose(xu.mean(0), mu[-1], atol=0.02)
    np.testing.assert_allclose(np.cov(xu.T), sigma[-1], atol=0.03)


def test_expand_cost_reproduces_a_quadratic_exactly():
    """For an exactly quadratic cost the averaged, re-centred expansion is the cost itself."""
    rng = np.random.default_rng(1)
    N, T, dX, dU = 3, 4, 3, 2
    H = rng.normal(size=(dX + dU, dX + dU))
    H = H @ H.T
    g = rng.normal(size=dX + dU)
    X, U = rng.normal(size=(N, T, dX)), rng.normal(size=(N, T, dU))
    XU = np.concatenate([X, U], axis=2)
    l = 0.5 * np.einsum('nti,ij,ntj->nt', XU, H, XU) + XU @ g + 2.0
    grad = XU @ H + g
    d = CostDerivs(l, grad[..., :dX], grad[..., dX:], np.broadcast_to(H[:dX, :dX], (N, T, dX, dX)),
                   np.broadcast_to(H[dX:, dX:], (N, T, dU, dU)), np.broadcast_to(H[dX:, :dX], (N, T, dU, dX)))
    exp = expand_cost(d, X, U)
    np.testing.assert_allclose(exp.cc, 2.0, atol=1e-12)
    np.testing.assert_allclose(exp.cv, np.tile(g, (T, 1)), atol=1e-12)
    np.testing.assert_allclose(exp.Cm, np.tile(H, (T, 1, 1)), atol=1e-12)


def test_indefinite_cost_is_repaired_by_raising_eta():
    T = 20
    _, _, dyn = point_mass(T)
    cost = quadratic_cost(T, np.diag([1.0, 1.0, 0.1, 0.1]), np.diag([-1.0, 1e-3]))  # negative action cost
    upd = KLTrajOpt().update(broad_prior(T, 4, 2, var=0.5), dyn, cost, kl_step=1.0)
    assert np.all(np.linalg.eigvalsh(upd.policy.inv_pol_covar) > 0)
    assert abs(upd.kl - 1.0) <= 0.1 or not upd.converged


def test_bad_kl_step_is_rejected():
    T = 5
    _, _, dyn = point_mass(T)
    with pytest.raises(ValueError, match='kl_step'):
        KLTrajOpt().update(broad_prior(T, 4, 2), dyn, quadratic_cost(T, np.eye(4), np.eye(2)), kl_step=float('nan'))
