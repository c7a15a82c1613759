"""The PI2 update against closed forms: the exponentially tilted Gaussian (large-sample limit), the
dual of the KL bound minimized by an independent solver, two-valued weights, and an open-loop
1-D problem whose optimum is a dense least-squares solve."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.pi2 import PI2Config, cost_to_go, pi2_update


def scalar_policy(T: int, k: float | np.ndarray = 0.0, var: float | np.ndarray = 1.0,
                  K: float = 0.0) -> LinearGaussianPolicy:
    k, var = np.broadcast_to(k, (T,)), np.broadcast_to(var, (T,))
    return LinearGaussianPolicy.from_covar(np.full((T, 1, 1), K), k[:, None].copy(), var[:, None, None].copy())


def dual(eta: float, S: np.ndarray, eps: float) -> float:
    """g(eta) = eta eps + eta log mean exp(-S / eta), written out directly (log-sum-exp shifted)."""
    z = -S / eta
    return eta * eps + eta * (z.max() + math.log(np.mean(np.exp(z - z.max()))))


def test_cost_to_go_by_hand():
    np.testing.assert_array_equal(cost_to_go(np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])),
                                  [[6.0, 5.0, 3.0], [3.0, 3.0, 4.0]])


def test_mean_moves_toward_the_optimum_as_the_tilted_gaussian_predicts():
    """u ~ N(0, s2), cost (u - a)^2 / 2. For N -> inf the reweighting exp(-c / eta) N(0, s2) is
    N(m, v) with 1/v = 1/s2 + 1/eta, m = v a / eta, and KL(N(m, v) || N(0, s2)) in closed form;
    eta* solves KL = eps. PI2's eta, new mean and (undamped) covariance must match."""
    a, s2, eps, N = 2.0, 1.0, 0.2, 200_000
    rng = np.random.default_rng(0)
    U = math.sqrt(s2) * rng.standard_normal((N, 1, 1))
    upd = pi2_update(scalar_policy(1, 0.0, s2), np.zeros((N, 1, 1)), U, 0.5 * (U[..., 0] - a) ** 2,
                     PI2Config(kl_threshold=eps, covariance_damping=0.0))

    def tilted(eta: float) -> tuple[float, float, float]:
        v = 1.0 / (1.0 / s2 + 1.0 / eta)
        m = v * a / eta
        return m, v, 0.5 * (v / s2 + m * m / s2 - 1.0 - math.log(v / s2))
    eta = math.exp(brentq(lambda le: tilted(math.exp(le))[2] - eps, -10.0, 10.0))
    m, v, _ = tilted(eta)
    assert 0.0 < upd.policy.k[0, 0] < a                              # toward the optimum, not past it
    assert upd.temperature[0] == pytest.approx(eta, rel=0.01)
    assert upd.policy.k[0, 0] == pytest.approx(m, abs=0.01)
    assert upd.policy.pol_covar[0, 0, 0] == pytest.approx(v, rel=0.01)


@pytest.mark.parametrize('eps', [0.1, 0.5, 1.5])
def test_active_bound_is_met_and_eta_minimizes_the_dual(eps):
    rng = np.random.default_rng(1)
    N, T = 30, 4
    costs = rng.gamma(2.0, 1.0, size=(N, T))
    upd = pi2_update(scalar_policy(T), rng.normal(size=(N, T, 1)), rng.normal(size=(N, T, 1)), costs,
                     PI2Config(kl_threshold=eps, min_temperature=1e-6))
    np.testing.assert_allclose(upd.kl, eps, rtol=1e-9)
    P = upd.weights
    np.testing.assert_allclose(P.sum(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.sum(P * np.log(N * P), axis=0), eps, rtol=1e-9)   # the KL, recomputed
    S = cost_to_go(costs)
    for t in range(T):
        ref = minimize_scalar(dual, bounds=(1e-6, 1e3), args=(S[:, t], eps), method='bounded',
                              options={'xatol': 1e-10})
        assert upd.temperature[t] == pytest.approx(ref.x, rel=1e-5)
        # the weights are the softmax at that temperature
        w = np.exp(-(S[:, t] - S[:, t].min()) / upd.temperature[t])
        np.testing.assert_allclose(P[:, t], w / w.sum(), rtol=1e-12)


def test_inactive_bound_stops_at_the_temperature_floor():
    """Costs so close that even min_temperature keeps KL under the bound."""
    rng = np.random.default_rng(2)
    N, T = 20, 3
    costs = 1e-4 * rng.random((N, T))
    upd = pi2_update(scalar_policy(T), np.zeros((N, T, 1)), rng.normal(size=(N, T, 1)), costs,
                     PI2Config(kl_threshold=1.0, min_temperature=0.01))
    np.testing.assert_array_equal(upd.temperature, 0.01)
    assert np.all(upd.kl < 1.0)


def test_equal_costs_give_uniform_weights_and_sample_moments():
    rng = np.random.default_rng(3)
    N, T, dX, dU = 12, 3, 2, 2
    K = rng.normal(size=(T, dU, dX))
    old = LinearGaussianPolicy.from_covar(K, np.zeros((T, dU)), np.tile(np.eye(dU), (T, 1, 1)))
    X, U = rng.normal(size=(N, T, dX)), rng.normal(size=(N, T, dU))
    upd = pi2_update(old, X, U, np.full((N, T), 3.0), PI2Config(covariance_damping=0.0))
    F = U - np.einsum('tux,ntx->ntu', K, X)
    np.testing.assert_allclose(upd.weights, 1.0 / N, rtol=1e-12)
    np.testing.assert_allclose(upd.kl, 0.0, atol=1e-15)
    np.testing.assert_allclose(upd.policy.k, F.mean(axis=0), rtol=1e-12, atol=1e-14)
    for t in range(T):
        np.testing.assert_allclose(upd.policy.pol_covar[t], np.cov(F[:, t].T, bias=True), rtol=1e-10)
    np.testing.assert_array_equal(upd.policy.K, K)                    # the feedback is kept


def test_one_dominating_sample_gets_the_weight_the_bound_allows():
    """One sample far cheaper than N-1 equal others: the weights take two values, p and
    (1-p)/(N-1), with p from p log(N p) + (1-p) log(N (1-p) / (N-1)) = eps."""
    N, eps = 10, 0.5
    costs = np.full((N, 1), 50.0)
    costs[3] = 0.0
    f = np.linspace(-1.0, 1.0, N)
    upd = pi2_update(scalar_policy(1, var=2.0), np.zeros((N, 1, 1)), f[:, None, None], costs,
                     PI2Config(kl_threshold=eps, covariance_damping=2.0))
    p = brentq(lambda p: p * math.log(N * p) + (1 - p) * math.log(N * (1 - p) / (N - 1)) - eps, 1.0 / N, 1 - 1e-12)
    assert 0.2 < p < 0.9                                              # a real, bounded preference
    assert upd.weights[3, 0] == pytest.approx(p, rel=1e-9)
    others = np.delete(f, 3)
    assert upd.policy.k[0, 0] == pytest.approx(p * f[3] + (1 - p) * others.mean(), rel=1e-9)
    # damped covariance: Sigma_old scaled by (weighted variance / Sigma_old)^(1/2)
    var = p * (f[3] - upd.policy.k[0, 0]) ** 2 + (1 - p) / (N - 1) * np.sum((others - upd.policy.k[0, 0]) ** 2)
    assert upd.policy.pol_covar[0, 0, 0] == pytest.approx(2.0 * math.sqrt(var / 2.0), rel=1e-9)


def test_bound_that_can_never_bind_is_rejected():
    """KL(P || uniform) <= log N: a bound above it would let the weights collapse onto one sample."""
    N = 5
    with pytest.raises(ValueError, match='kl_threshold'):
        pi2_update(scalar_policy(2), np.zeros((N, 2, 1)), np.zeros((N, 2, 1)), np.ones((N, 2)),
                   PI2Config(kl_threshold=math.log(N)))


def test_repeated_updates_converge_to_the_open_loop_optimum():
    """x_t+1 = x_t + u_t, x_0 = 1, cost x_t^2 + r u_t^2; the controller is open loop (K = 0), so
    the optimum is a least-squares solve over u. Sample, update, repeat."""
    T, r, N = 8, 0.1, 30
    rng = np.random.default_rng(4)
    L = np.tril(np.ones((T, T)), -1)                                 # x = 1 + L u

    def total_cost(u: np.ndarray) -> np.ndarray:
        return np.sum((1.0 + u @ L.T) ** 2 + r * u ** 2, axis=-1)
    u_star = -np.linalg.solve(L.T @ L + r * np.eye(T), L.T @ np.ones(T))
    pol, costs = scalar_policy(T), []
    for _ in range(25):
        U = pol.k[:, 0] + np.sqrt(pol.pol_covar[:, 0, 0]) * rng.standard_normal((N, T))
        X = 1.0 + U @ L.T
        pol = pi2_update(pol, X[..., None], U[..., None], X ** 2 + r * U ** 2, PI2Config()).policy
        costs.append(float(total_cost(pol.k[:, 0])))
    gap0 = total_cost(np.zeros(T)) - total_cost(u_star)
    assert costs[0] < total_cost(np.zeros(T))
    assert costs[-1] - total_cost(u_star) < 0.01 * gap0
    np.testing.assert_allclose(pol.k[:, 0], u_star, atol=0.15)


@pytest.mark.parametrize('field,value', [('kl_threshold', 0.0), ('kl_threshold', float('inf')),
                                         ('covariance_damping', -1.0), ('min_temperature', 0.0),
                                         ('min_temperature', float('nan'))])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f'pi2.{field}'):
        PI2Config(**{field: value})


def test_bad_shapes_and_values_are_rejected():
    pol = scalar_policy(3)
    with pytest.raises(ValueError, match='expects'):
        pi2_update(pol, np.zeros((4, 2, 1)), np.zeros((4, 3, 1)), np.zeros((4, 3)))
    costs = np.zeros((4, 3))
    costs[1, 1] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        pi2_update(pol, np.zeros((4, 3, 1)), np.zeros((4, 3, 1)), costs)
