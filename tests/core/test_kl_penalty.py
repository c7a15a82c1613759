"""The trajectory optimizer's second distribution to stay near (KLPenalty, used by BADMM), checked
against exact identities of the max-entropy LQR."""
from __future__ import annotations

import numpy as np
import pytest

from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt import KLPenalty, KLTrajOpt, backward_pass, forward_pass, traj_kl
from gps_core.traj_opt.lqr import kl_penalty_terms

from test_traj_opt import broad_prior, point_mass, quadratic_cost

T = 30
Q, R = np.diag([1.0, 1.0, 0.1, 0.1]), np.diag([1e-2, 1e-2])


def other_policy(seed: int) -> LinearGaussianPolicy:
    rng = np.random.default_rng(seed)
    return LinearGaussianPolicy.from_covar(0.5 * rng.normal(size=(T, 2, 4)), rng.normal(size=(T, 2)),
                                           np.tile(np.diag([0.3, 0.6]), (T, 1, 1)))


def test_penalty_towards_the_prior_itself_is_a_shifted_eta():
    """With q = prior and constant w: (c + w PKL + eta PKL) / (eta + w) = c / (eta + w) + PKL, so
    the update must be the plain max-entropy LQR at eta + w (an independent backward pass)."""
    _, _, dyn = point_mass(T)
    cost = quadratic_cost(T, Q, R)
    prior, w = broad_prior(T, 4, 2, var=0.5), 0.05
    upd = KLTrajOpt().update(prior, dyn, cost, kl_step=5.0, penalty=KLPenalty(prior, np.full(T, w)))
    assert upd.converged and abs(upd.kl - 5.0) <= 0.5
    PKLm, PKLv = kl_penalty_terms(prior)
    ref = backward_pass(cost.Cm / (upd.eta + w) + PKLm, cost.cv / (upd.eta + w) + PKLv, dyn)
    for name in ('K', 'k', 'pol_covar'):
        np.testing.assert_allclose(getattr(upd.policy, name), getattr(ref, name), rtol=1e-9, atol=1e-12)


def test_zero_weights_change_nothing():
    _, _, dyn = point_mass(T)
    cost = quadratic_cost(T, Q, R)
    prior = broad_prior(T, 4, 2, var=0.5)
    plain = KLTrajOpt().update(prior, dyn, cost, kl_step=5.0)
    pen = KLTrajOpt().update(prior, dyn, cost, kl_step=5.0, penalty=KLPenalty(other_policy(0), np.zeros(T)))
    assert pen.eta == pytest.approx(plain.eta, rel=1e-9)
    np.testing.assert_allclose(pen.policy.K, plain.policy.K, rtol=1e-8, atol=1e-10)


def test_heavy_penalty_pulls_the_controller_to_the_other_distribution():
    """KL to the prior stays on budget while the KL to q shrinks as its weight grows."""
    _, _, dyn = point_mass(T)
    cost = quadratic_cost(T, Q, R)
    prior, q = broad_prior(T, 4, 2, var=0.5), other_policy(1)
    kls = []
    for w in (0.0, 1.0, 100.0):
        upd = KLTrajOpt().update(prior, dyn, cost, kl_step=20.0, penalty=KLPenalty(q, np.full(T, w)))
        mu, sigma = forward_pass(upd.policy, dyn)
        kls.append(traj_kl(mu, sigma, upd.policy, q).sum())
        assert np.sum(traj_kl(mu, sigma, upd.policy, prior)) <= 22.0
    assert kls[0] > kls[1] > kls[2]


def test_bad_weights_are_rejected():
    with pytest.raises(ValueError, match='weights'):
        KLPenalty(other_policy(0), np.full(T - 1, 1.0))
    with pytest.raises(ValueError, match='weights'):
        KLPenalty(other_policy(0), np.full(T, -1.0))
