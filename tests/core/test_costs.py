"""Costs vs. independent oracles: central finite differences, hand-computed values, loop references."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gps_core.costs import (ActionCost, CostDerivs, EEPointCost, StateCost, WeightedSumCost,
                            ramp_weights)

N, T, DX, DU = 2, 5, 8, 3
IDX = [1, 4, 5, 7]
KINDS = ['constant', 'linear', 'quadratic', 'final_only']
EPS = 1e-5


def random_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, T, DX)), rng.normal(size=(N, T, DU))


def random_costs(ramp: str, final_multiplier: float, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    k = len(IDX)
    tgt, wp = rng.normal(size=k), rng.uniform(0.5, 2.0, size=k)
    return {
        'action': ActionCost(rng.uniform(0.1, 2.0, size=DU)),
        'state': StateCost(IDX, tgt, wp, ramp, final_multiplier),
        # alpha << dsq ~ 10, l1 >> l2: the log term dominates the gradient and makes the Hessian indefinite.
        'ee': EEPointCost(IDX, tgt, wp, l1=1.0, l2=0.1, alpha=0.05, ramp=ramp,
                          final_multiplier=final_multiplier),
    }


def fd_errors(ev, X: np.ndarray, U: np.ndarray) -> dict[str, float]:
    """Max relative error of each derivative vs. central differences of the one below it.

    l[n, t] depends only on (x_nt, u_nt), so one coordinate can be perturbed in every (n, t) at once.
    """
    d = ev(X, U)
    fd = {'lx': np.zeros((N, T, DX)), 'lu': np.zeros((N, T, DU)), 'lxx': np.zeros((N, T, DX, DX)),
          'luu': np.zeros((N, T, DU, DU)), 'lux': np.zeros((N, T, DU, DX)), 'lxu': np.zeros((N, T, DX, DU))}
    for i in range(DX):
        E = np.zeros_like(X)
        E[..., i] = EPS
        p, m = ev(X + E, U), ev(X - E, U)
        fd['lx'][..., i] = (p.l - m.l) / (2 * EPS)
        fd['lxx'][..., :, i] = (p.lx - m.lx) / (2 * EPS)
        fd['lux'][..., :, i] = (p.lu - m.lu) / (2 * EPS)
    for j in range(DU):
        E = np.zeros_like(U)
        E[..., j] = EPS
        p, m = ev(X, U + E), ev(X, U - E)
        fd['lu'][..., j] = (p.l - m.l) / (2 * EPS)
        fd['luu'][..., :, j] = (p.lu - m.lu) / (2 * EPS)
        fd['lxu'][..., :, j] = (p.lx - m.lx) / (2 * EPS)
    ana = {'lx': d.lx, 'lu': d.lu, 'lxx': d.lxx, 'luu': d.luu, 'lux': d.lux,
           'lxu': np.swapaxes(d.lux, 2, 3)}
    return {k: float(np.max(np.abs(ana[k] - fd[k])) / max(1.0, np.max(np.abs(fd[k])))) for k in fd}


@pytest.mark.parametrize('final_multiplier', [1.0, 4.0])
@pytest.mark.parametrize('ramp', KINDS)
@pytest.mark.parametrize('name', ['action', 'state', 'ee', 'sum'])
def test_derivatives_match_finite_differences(name: str, ramp: str, final_multiplier: float) -> None:
    X, U = random_batch()
    costs = random_costs(ramp, final_multiplier)
    costs['sum'] = WeightedSumCost([costs['action'], costs['state'], costs['ee']], [0.3, 2.0, 1.5])
    cost = costs[name]
    d = cost.eval(X, U)
    assert d.l.shape == (N, T) and d.lux.shape == (N, T, DU, DX)
    assert np.all(d.l[:, -1] != 0.0)  # the check is not vacuous: every cost is active at the end
    errs = fd_errors(cost.eval, X, U)
    assert max(errs.values()) < 1e-6, errs


def test_fd_check_detects_a_clipped_log_hessian() -> None:
    """The FD oracle must fail if the indefinite part of the log Hessian is dropped."""
    X, U = random_batch()
    ee = random_costs('constant', 1.0)['ee']

    def clipped(X_: np.ndarray, U_: np.ndarray) -> CostDerivs:
        d = ee.eval(X_, U_)
        w, V = np.linalg.eigh(d.lxx)
        psd = np.einsum('ntij,ntj,ntkj->ntik', V, np.maximum(w, 0.0), V)
        return CostDerivs(d.l, d.lx, d.lu, psd, d.luu, d.lux)

    assert np.min(np.linalg.eigvalsh(ee.eval(X, U).lxx)) < -1e-3  # indefinite, as intended
    assert fd_errors(clipped, X, U)['lxx'] > 1e-3


@pytest.mark.parametrize('ramp', KINDS)
def test_values_match_loop_reference(ramp: str) -> None:
    X, U = random_batch(3)
    c = random_costs(ramp, 2.5, seed=4)
    r = ramp_weights(ramp, T, 2.5)
    for n in range(N):
        for t in range(T):
            x, u = X[n, t], U[n, t]
            ref_a = 0.5 * sum(c['action'].wu[i] * u[i] ** 2 for i in range(DU))
            dv = [c['ee'].wp[j] * (x[IDX[j]] - c['ee'].target[j]) for j in range(len(IDX))]
            dsq = sum(v * v for v in dv)
            ref_s = r[t] * 0.5 * dsq
            ref_e = r[t] * (0.5 * 0.1 * dsq + 0.5 * 1.0 * math.log(0.05 + dsq))
            assert c['action'].eval(X, U).l[n, t] == pytest.approx(ref_a, rel=1e-12)
            assert c['state'].eval(X, U).l[n, t] == pytest.approx(ref_s, rel=1e-12, abs=1e-14)
            assert c['ee'].eval(X, U).l[n, t] == pytest.approx(ref_e, rel=1e-12, abs=1e-14)


def one_step(x: list[float], u: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(x, dtype=float)[None, None], np.array(u, dtype=float)[None, None]


def test_action_cost_by_hand() -> None:
    X, U = one_step([5.0], [1.0, 1.0, 2.0])
    d = ActionCost([1.0, 2.0, 3.0]).eval(X, U)
    assert d.l[0, 0] == pytest.approx(0.5 * (1 + 2 + 12))
    np.testing.assert_allclose(d.lu[0, 0], [1.0, 2.0, 6.0])
    np.testing.assert_allclose(d.luu[0, 0], np.diag([1.0, 2.0, 3.0]))
    assert not d.lx.any() and not d.lxx.any() and not d.lux.any()
    assert ActionCost(2.0).eval(X, U).l[0, 0] == pytest.approx(6.0)  # scalar weight: 1/2*2*(1+1+4)


def test_state_cost_by_hand() -> None:
    X, U = one_step([3.0, 9.0, 1.0], [0.0])
    d = StateCost([0, 2], target=[1.0, 0.0], wp=[2.0, 1.0]).eval(X, U)  # d = [4, 1]
    assert d.l[0, 0] == pytest.approx(8.5)
    np.testing.assert_allclose(d.lx[0, 0], [8.0, 0.0, 1.0])
    np.testing.assert_allclose(d.lxx[0, 0], np.diag([4.0, 0.0, 1.0]))
    X2 = np.concatenate([X, X], axis=1)  # T=2, linear ramp [0.5, 1] with final x3 -> [0.5, 3]
    d2 = StateCost([0, 2], [1.0, 0.0], [2.0, 1.0], 'linear', 3.0).eval(X2, np.zeros((1, 2, 1)))
    np.testing.assert_allclose(d2.l[0], [4.25, 25.5])


def test_ee_point_cost_by_hand() -> None:
    # d = [0.6, 0.8], dsq = 1, alpha = 1: l = 1/2*2*1 + 1/2*4*log 2; grad_d = 2d + 4d/2 = 4d;
    # Hess_d = 2I + 4(I/2 - 2dd^T/4) = 4I - 2dd^T.
    X, U = one_step([0.6, 7.0, 0.8], [0.0, 0.0])
    d = EEPointCost([0, 2], target=0.0, wp=1.0, l1=4.0, l2=2.0, alpha=1.0).eval(X, U)
    assert d.l[0, 0] == pytest.approx(1.0 + 2.0 * math.log(2.0))
    np.testing.assert_allclose(d.lx[0, 0], [2.4, 0.0, 3.2])
    np.testing.assert_allclose(d.lxx[0, 0], [[3.28, 0.0, -0.96], [0.0, 0.0, 0.0], [-0.96, 0.0, 2.72]])
    assert not d.lu.any() and not d.luu.any() and not d.lux.any()
    # wp = 2, target = [0.1, 0.5], x[idx] = [0.4, 0.9]: the same d = 2*[0.3, 0.4]; chain rule scales
    # the gradient by wp and the Hessian by wp^2.
    X2, _ = one_step([0.4, 0.0, 0.9], [0.0, 0.0])
    d2 = EEPointCost([0, 2], [0.1, 0.5], 2.0, l1=4.0, l2=2.0, alpha=1.0).eval(X2, U)
    assert d2.l[0, 0] == pytest.approx(1.0 + 2.0 * math.log(2.0))
    np.testing.assert_allclose(d2.lx[0, 0], 2.0 * np.array([2.4, 0.0, 3.2]))
    np.testing.assert_allclose(d2.lxx[0, 0, 0, 2], 4.0 * -0.96)


def test_ee_point_log_hessian_is_indefinite_along_d() -> None:
    # Pure log term: along d the curvature is (alpha - dsq)/(alpha + dsq)^2, negative for dsq > alpha.
    X, U = one_step([3.0, 4.0], [0.0])
    d = EEPointCost([0, 1], 0.0, 1.0, l1=1.0, l2=0.0, alpha=0.5).eval(X, U)
    w = np.linalg.eigvalsh(d.lxx[0, 0])
    np.testing.assert_allclose(w, sorted([(0.5 - 25.0) / 25.5 ** 2, 1.0 / 25.5]))


@pytest.mark.parametrize('fm', [1.0, 3.0])
def test_ramp_weights(fm: float) -> None:
    np.testing.assert_allclose(ramp_weights('constant', 4, fm), [1, 1, 1, fm])
    np.testing.assert_allclose(ramp_weights('linear', 4, fm), [0.25, 0.5, 0.75, fm])
    np.testing.assert_allclose(ramp_weights('quadratic', 4, fm), [0.0625, 0.25, 0.5625, fm])
    np.testing.assert_allclose(ramp_weights('final_only', 4, fm), [0, 0, 0, fm])
    np.testing.assert_allclose(ramp_weights('linear', 1, fm), [fm])


def test_ramp_errors() -> None:
    with pytest.raises(ValueError, match=r"'cubic'.*constant, linear, quadratic, final_only"):
        ramp_weights('cubic', 5)
    with pytest.raises(ValueError, match='T must be a positive integer'):
        ramp_weights('linear', 0)
    with pytest.raises(ValueError, match='final_multiplier'):
        ramp_weights('linear', 3, float('nan'))
    with pytest.raises(ValueError, match="'cubic'"):
        StateCost([0], 0.0, 1.0, ramp='cubic')


def test_weighted_sum_equals_sum_of_parts() -> None:
    X, U = random_batch(5)
    c = random_costs('quadratic', 2.0)
    total = WeightedSumCost([c['action'], c['ee'], c['state']], [0.5, 2.0, -1.0]).eval(X, U)
    parts = [c[k].eval(X, U) for k in ('action', 'ee', 'state')]
    for f in ('l', 'lx', 'lu', 'lxx', 'luu', 'lux'):
        ref = 0.5 * getattr(parts[0], f) + 2.0 * getattr(parts[1], f) - getattr(parts[2], f)
        np.testing.assert_allclose(getattr(total, f), ref, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match='2 costs but 1 weights'):
        WeightedSumCost([c['action'], c['ee']], [1.0])
    with pytest.raises(ValueError, match='at least one cost'):
        WeightedSumCost([], [])


def test_shape_and_value_validation() -> None:
    X, U = random_batch()
    with pytest.raises(ValueError, match=r'idx \[1, 9\] out of range.*dX=8'):
        StateCost([1, 9], 0.0, 1.0).eval(X, U)
    with pytest.raises(ValueError, match=r'idx \[1, 9\] out of range.*dX=8'):
        EEPointCost([1, 9], 0.0, 1.0, 1.0, 1.0, 0.1).eval(X, U)
    with pytest.raises(ValueError, match='wu has length 2 but U has dU=3'):
        ActionCost([1.0, 2.0]).eval(X, U)
    with pytest.raises(ValueError, match='wu must be finite and >= 0'):
        ActionCost([1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match='idx must be a non-empty 1-D sequence of integers'):
        StateCost([0.5, 1.0], 0.0, 1.0)
    with pytest.raises(ValueError, match='idx must be unique'):
        StateCost([1, 1], 0.0, 1.0)
    with pytest.raises(ValueError, match=r'target must be a scalar or have length len\(idx\)=2'):
        StateCost([0, 1], [0.0, 1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match='wp must be finite'):
        EEPointCost([0, 1], 0.0, [1.0, np.inf], 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match='alpha must be finite and > 0'):
        EEPointCost([0, 1], 0.0, 1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match='l1 must be finite and >= 0'):
        EEPointCost([0, 1], 0.0, 1.0, -1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match=r'expected X \[N, T, dX\] and U \[N, T, dU\]'):
        StateCost([0], 0.0, 1.0).eval(X, U[:, :4])
