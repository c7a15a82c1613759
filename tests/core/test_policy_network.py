"""The neural-network policy pieces against hand-computed values and exact cases: the
precision-weighted loss, the covariance from the controllers' precisions, the GMM-prior
linearization of an exactly linear network, and the TorchScript export round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gps_core.policies.export import export_policy, load_policy, load_scripted_policy
from gps_core.policies.nn_policy import PolicyNetwork
from gps_core.policies.policy_config import PolicyConfig, PolicyPriorConfig
from gps_core.policies.policy_opt import PolicyOpt, normalize_weights, precision_weighted_loss
from gps_core.policies.policy_prior import PolicyPriorGMM

P1 = np.array([[2.0, 0.0], [0.0, 1.0]])
P2 = np.array([[1.0, 0.5], [0.5, 2.0]])


def t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=float))


def test_precision_weighted_loss_by_hand():
    # d1 = [1, 2]:   d^T P1 d = 2*1 + 1*4 = 6            weight 1 -> 6
    # d2 = [-1, -2]: d^T P2 d = 1 + 2*0.5*2 + 2*4 = 11   weight 3 -> 33
    # mean over the batch of 2: 39 / 2 = 19.5
    pred, tgt = t([[1.0, 2.0], [0.0, -1.0]]), t([[0.0, 0.0], [1.0, 1.0]])
    loss = precision_weighted_loss(pred, tgt, t([P1, P2]), t([1.0, 3.0]))
    assert float(loss) == pytest.approx(19.5, rel=1e-15)


def test_policy_covariance_is_inverse_mean_precision():
    # weights [1, 3] -> mean 1 -> [0.5, 1.5]; median 1, none above twice it: unchanged.
    # Sigma_pi^-1 = (0.5 P1 + 1.5 P2) / 2 = [[1.25, 0.375], [0.375, 1.75]]
    np.testing.assert_allclose(normalize_weights(np.array([1.0, 3.0])), [0.5, 1.5])
    opt = PolicyOpt(PolicyConfig(hidden=(4,), iterations=1, batch_size=2), 3, 2, torch.Generator().manual_seed(0))
    upd = opt.update(np.ones((2, 3)), np.zeros((2, 2)), np.array([P1, P2]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(np.linalg.inv(upd.covar), [[1.25, 0.375], [0.375, 1.75]], rtol=1e-12)
    np.testing.assert_allclose(opt.network.covar_np(), upd.covar, rtol=1e-15)


def test_weights_are_capped_at_twice_the_median():
    w = normalize_weights(np.array([1.0, 1.0, 1.0, 100.0]))
    assert w.max() == pytest.approx(2.0) and np.median(w) == pytest.approx(1.0)


def test_update_rejects_bad_shapes_and_values():
    opt = PolicyOpt(PolicyConfig(hidden=(), iterations=1), 3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match='tgt_mu'):
        opt.update(np.zeros((4, 3)), np.zeros((4, 3)), np.tile(np.eye(2), (4, 1, 1)), np.ones(4))
    with pytest.raises(ValueError, match='non-finite'):
        opt.update(np.full((4, 3), np.nan), np.zeros((4, 2)), np.tile(np.eye(2), (4, 1, 1)), np.ones(4))


def linear_network(rng: np.random.Generator, dX: int, dU: int) -> tuple[PolicyNetwork, np.ndarray, np.ndarray]:
    """A hidden = () network with known weights and a normalization; returns it and the affine map
    in raw x it computes: u = W_eff x + b_eff."""
    net = PolicyNetwork(dX, dU, hidden=())
    W, b = rng.standard_normal((dU, dX)), rng.standard_normal(dU)
    mean, scale = rng.standard_normal(dX), rng.uniform(0.5, 2.0, dX)
    with torch.no_grad():
        net.net[0].weight.copy_(t(W))
        net.net[0].bias.copy_(t(b))
        net.obs_mean.copy_(t(mean))
        net.obs_scale.copy_(t(scale))
    W_eff = W / scale
    return net, W_eff, b - W_eff @ mean


def test_linearization_of_a_linear_network_recovers_its_weights():
    rng = np.random.default_rng(0)
    dX, dU, N, T = 6, 3, 5, 20
    net, W_eff, b_eff = linear_network(rng, dX, dU)
    # random-walk trajectories: states spread over all dimensions, different at every step
    X = np.cumsum(rng.standard_normal((N, T, dX)), axis=1)
    np.testing.assert_allclose(net.mean_np(X), X @ W_eff.T + b_eff, atol=1e-12)
    Sigma_pi = np.diag([0.1, 0.2, 0.3])
    prior = PolicyPriorGMM(PolicyPriorConfig(min_samples_per_cluster=20), regularization=1e-9)
    prior.add_samples(X, X)
    lin = prior.update_and_linearize(net.mean_np, X, X, Sigma_pi, rng)
    assert lin.K.shape == (T, dU, dX)
    np.testing.assert_allclose(lin.K, np.broadcast_to(W_eff, lin.K.shape), atol=1e-6)
    np.testing.assert_allclose(lin.k, np.broadcast_to(b_eff, lin.k.shape), atol=1e-5)
    # a deterministic network: the fitted spread is Sigma_pi (plus the regularization's trace)
    np.testing.assert_allclose(lin.pol_covar, np.broadcast_to(Sigma_pi, lin.pol_covar.shape), atol=1e-6)


def test_linearization_of_a_nonlinear_network_matches_its_jacobian_locally():
    """Samples in a small ball around a point: the fit is the network's Jacobian there (an
    independent oracle: torch.autograd). The ball's variance (1e-4) is 100x the GMM's 1e-6
    covariance regularization, so that shrinks the gains by ~1%."""
    rng = np.random.default_rng(1)
    dX, dU, N, T = 4, 2, 8, 10
    net = PolicyNetwork(dX, dU, hidden=(16,), activation='tanh', generator=torch.Generator().manual_seed(1))
    x0 = rng.standard_normal(dX)
    X = x0 + 1e-2 * rng.standard_normal((N, T, dX))
    prior = PolicyPriorGMM(PolicyPriorConfig(min_samples_per_cluster=20), regularization=1e-12)
    prior.add_samples(X, X)
    lin = prior.update_and_linearize(net.mean_np, X, X, 0.1 * np.eye(dU), rng)
    J = torch.autograd.functional.jacobian(net, t(x0)[None])[0, :, 0, :].numpy()
    np.testing.assert_allclose(lin.K, np.broadcast_to(J, lin.K.shape), atol=0.03 * np.abs(J).max())


def test_torchscript_export_gives_bit_identical_actions(tmp_path):
    gen = torch.Generator().manual_seed(3)
    opt = PolicyOpt(PolicyConfig(hidden=(32, 16), activation='tanh', iterations=20, batch_size=16), 5, 2, gen)
    rng = np.random.default_rng(3)
    obs = rng.normal(2.0, 3.0, (64, 5))
    opt.update(obs, rng.standard_normal((64, 2)), np.tile(np.diag([2.0, 0.5]), (64, 1, 1)), np.ones(64))
    net = opt.network
    assert not torch.allclose(net.obs_mean, torch.zeros(5, dtype=torch.float64))          # a normalization was fitted
    paths = export_policy(net, tmp_path, 'policy_iteration_001')
    assert {p.name for p in paths.values()} == {'policy_iteration_001.pt', 'policy_iteration_001.state.pt',
                                                'policy_iteration_001.json'}
    scripted = load_scripted_policy(paths['torchscript'])
    reloaded = load_policy(tmp_path, 'policy_iteration_001')
    x = t(rng.normal(2.0, 3.0, (100, 5)))
    with torch.no_grad():
        expected = net(x)
        assert torch.equal(scripted(x), expected)
        assert torch.equal(reloaded(x), expected)
    assert torch.equal(scripted.covar, net.covar) and torch.equal(scripted.obs_scale, net.obs_scale)
    # the state_dict is plain tensors: loadable with weights_only=True, no pickled classes
    state = torch.load(paths['state_dict'], weights_only=True)
    assert set(state) >= {'obs_mean', 'obs_scale', 'covar'} and all(isinstance(v, torch.Tensor) for v in state.values())


def test_seeded_networks_are_identical():
    a = PolicyNetwork(4, 2, (8,), generator=torch.Generator().manual_seed(5))
    b = PolicyNetwork(4, 2, (8,), generator=torch.Generator().manual_seed(5))
    c = PolicyNetwork(4, 2, (8,), generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.net[0].weight, c.net[0].weight)
