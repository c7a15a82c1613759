"""PIGPS on a linear point mass with a linear policy class must approach the LQR optimum.

Oracle: scipy's discrete algebraic Riccati solution P. As in test_mdgps_lqr, the last step's cost
holds the DARE cost-to-go of the next state, so u = -K_dare x is optimal at every step and the
optimal total cost from x0 is x0^T P x0 / 2 exactly; a time-invariant linear network can
represent that policy. PI2 only re-estimates feedforward terms, so the network's feedback is
learned through the S-step from four conditions' time-varying improvements: slower than MDGPS.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from gps_core.algorithms.pigps import PIGPSAlgorithm
from gps_core.config import AlgorithmConfig, DynamicsConfig
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.policy_config import PolicyConfig, PolicyPriorConfig
from gps_core.samples import SampleBatch
from gps_core.traj_opt import PI2Config, TrajOptConfig

from test_mdgps_lqr import A, B, Q, R, T, X0_SPREAD, QuadraticCost, policy_gain

N = 40
X0 = [np.array([1.0, -0.5, 0.0, 0.2]), np.array([-0.8, 0.6, 0.3, 0.0]),
      np.array([0.3, 0.9, -0.2, -0.3]), np.array([-0.5, -0.7, 0.1, 0.4])]
P_DARE = scipy.linalg.solve_discrete_are(A, B, Q, R)
K_DARE = np.linalg.solve(R + B.T @ P_DARE @ B, B.T @ P_DARE @ A)
COST = QuadraticCost(P_DARE)


def rollouts(x0: np.ndarray, act, n: int, rng: np.random.Generator, spread: float = X0_SPREAD) -> SampleBatch:
    """n trials of the noiseless dynamics from x0 (+ start noise); act(t, x [n, 4], eps [n, 2]) -> u [n, 2]."""
    X, U = np.empty((n, T, 4)), np.empty((n, T, 2))
    x = x0 + spread * rng.standard_normal((n, 4))
    eps = rng.standard_normal((n, T, 2))
    for t in range(T):
        X[:, t], U[:, t] = x, act(t, x, eps[:, t])
        x = x @ A.T + U[:, t] @ B.T
    return SampleBatch(X, U)


def sample(alg: PIGPSAlgorithm, rng: np.random.Generator) -> list[SampleBatch]:
    if alg.samples_from_network:
        net = alg.network
        chol = np.linalg.cholesky(net.covar_np())
        return [rollouts(x0, lambda t, x, e: net.mean_np(x) + e @ chol.T, N, rng) for x0 in X0]
    return [rollouts(x0, lambda t, x, e, p=p: x @ p.K[t].T + p.k[t] + e @ p.chol_pol_covar[t], N, rng)
            for x0, p in zip(X0, alg.policies)]


def network_cost(alg: PIGPSAlgorithm) -> float:
    """Total cost of the network alone, noiseless, summed over the conditions."""
    rng = np.random.default_rng(0)
    batches = [rollouts(x0, lambda t, x, e: alg.network.mean_np(x), 1, rng, spread=0.0) for x0 in X0]
    return float(sum(COST.eval(b.X, b.U).l.sum() for b in batches))


def make_algorithm(seed: int) -> PIGPSAlgorithm:
    init = [LinearGaussianPolicy.from_covar(np.zeros((T, 2, 4)), np.zeros((T, 2)), np.tile(np.eye(2), (T, 1, 1)))
            for _ in X0]
    policy = PolicyConfig(hidden=(), iterations=300, batch_size=64, learning_rate=1e-2, regularization=1e-12,
                          prior=PolicyPriorConfig(strength=1e-6))
    # algorithm.type is not consulted by the class itself
    return PIGPSAlgorithm(AlgorithmConfig(type='mdgps'), DynamicsConfig(), TrajOptConfig(), policy,
                          [COST] * len(X0), init, np.random.default_rng(seed), torch.Generator().manual_seed(seed),
                          pi2=PI2Config(kl_threshold=2.0, covariance_damping=4.0))


def test_pigps_approaches_the_lqr_optimum():
    optimum = sum(0.5 * x0 @ P_DARE @ x0 for x0 in X0)
    alg, rng = make_algorithm(0), np.random.default_rng(0)
    costs, gain_errors = [], []
    for _ in range(24):
        alg.iteration(sample(alg, rng))
        costs.append(network_cost(alg) / optimum)
        W, _ = policy_gain(alg.network)
        gain_errors.append(np.abs(W + K_DARE).max() / np.abs(K_DARE).max())
    assert costs[0] > 2.0                       # the network starts near the zero-gain controllers
    assert costs[-1] < 1.05
    assert max(costs[-4:]) < min(costs[:8])     # a decrease, not a lucky last iteration
    assert gain_errors[-1] < 0.5 * gain_errors[0]


def test_samples_come_from_the_network_after_the_first_iteration_and_no_model_is_fitted():
    alg, rng = make_algorithm(1), np.random.default_rng(1)
    assert not alg.samples_from_network         # the untrained network never drives the first trials
    alg.iteration(sample(alg, rng))
    assert alg.samples_from_network
    W1, _ = policy_gain(alg.network)            # what the second iteration samples and linearizes
    alg.iteration(sample(alg, rng))
    for cond in alg.conditions:
        assert cond.dyn is None                 # PI2 is model-free
        # the C-step kept the feedback of the distribution the samples came from: the network's
        # linearization, which for a linear network is its gain
        np.testing.assert_array_equal(cond.local.policy.K, cond.prev.pol_lin.K)
        np.testing.assert_allclose(cond.prev.pol_lin.K, np.broadcast_to(W1, cond.prev.pol_lin.K.shape),
                                   atol=1e-6 * np.abs(W1).max())


def test_seeded_runs_are_bit_for_bit_reproducible():
    def run() -> tuple[np.ndarray, np.ndarray]:
        alg, rng = make_algorithm(2), np.random.default_rng(2)
        for _ in range(2):
            alg.iteration(sample(alg, rng))
        return policy_gain(alg.network)
    (Wa, ba), (Wb, bb) = run(), run()
    assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)
