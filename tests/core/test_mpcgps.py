"""MPC-GPS end to end on the linear point mass of test_mdgps_lqr, with state kicks during training.

Oracle: scipy's DARE solution. The last step's cost holds the DARE cost-to-go, so u = -K_dare x is
optimal from every state, kicked or not; "cost ratio" below is a controller's total cost over the cost of
-K_dare x under the same kicks.

Sampling as the trainer will do it: the first iteration runs the initial controllers; then each
condition's teacher (MPCController from algorithm.teacher_problem(m) and teacher_noise(m, eps)) runs
half of the trials undisturbed and half with a random velocity kick of 2 (at a random step), and the
algorithm is told which were kicked (their transitions are left out of the dynamics fit). The policy is
a tanh MLP, which sees only x and extrapolates from the states it was trained on.

Claim measured: the network alone ends within 1% of the optimum on the undisturbed trials and within 2%
under kicks, while MDGPS's network, trained the same way without kicks (it has no teacher to recover
from them), is near-optimal undisturbed but far off under the same kicks (measured here: MPC-GPS 1.001
and 1.005, MDGPS 1.00002 and 1.16).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from gps_controllers.mpc_controller import MPCController, MPCSpec
from gps_core.algorithms.mdgps import MDGPSAlgorithm
from gps_core.algorithms.mpcgps import MPCGPSAlgorithm
from gps_core.config import AlgorithmConfig, DynamicsConfig
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.policy_config import PolicyConfig, PolicyPriorConfig
from gps_core.samples import SampleBatch
from gps_core.traj_opt import TrajOptConfig
from gps_core.traj_opt.mpc import MPCConfig, teacher_actions

from test_mdgps_lqr import A, B, Q, R, T, QuadraticCost

N, KICK, ITERATIONS = 8, 2.0, 5
X0 = [np.array([1.0, -0.5, 0.0, 0.2]), np.array([-0.8, 0.6, 0.3, 0.0])]
P_DARE = scipy.linalg.solve_discrete_are(A, B, Q, R)
K_DARE = np.linalg.solve(R + B.T @ P_DARE @ B, B.T @ P_DARE @ A)
COST = QuadraticCost(P_DARE)


def kicks(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, T, 4]: one velocity kick of size KICK per trial, at a step in [3, T-8), random direction."""
    out = np.zeros((n, T, 4))
    for i in range(n):
        d = rng.standard_normal(2)
        out[i, rng.integers(3, T - 8), 2:] = KICK * d / np.linalg.norm(d)
    return out


def rollout(x0: np.ndarray, act, kick: np.ndarray, rng: np.random.Generator, spread: float = 0.01) -> SampleBatch:
    """Trials on the true system; act(i, t, x, eps) -> u; kick[i, t] is added to x_t before it is seen."""
    n = kick.shape[0]
    X, U = np.empty((n, T, 4)), np.empty((n, T, 2))
    for i in range(n):
        x = x0 + spread * rng.standard_normal(4)
        eps = rng.standard_normal((T, 2))
        for t in range(T):
            x = x + kick[i, t]
            X[i, t], U[i, t] = x, act(i, t, x, eps[t])
            x = A @ x + B @ U[i, t]
    return SampleBatch(X, U)


def make(cls, seed: int = 0, **kw):
    init = [LinearGaussianPolicy.from_covar(np.zeros((T, 2, 4)), np.zeros((T, 2)), np.tile(np.eye(2), (T, 1, 1)))
            for _ in X0]
    policy = PolicyConfig(hidden=(16,), activation='tanh', iterations=300, batch_size=64, learning_rate=1e-2,
                          regularization=1e-12, prior=PolicyPriorConfig(strength=1e-6))
    return cls(AlgorithmConfig(type='mdgps', base_kl_step=0.3, max_step_mult=3.0), DynamicsConfig(regularization=1e-12),
               TrajOptConfig(), policy, [COST] * len(X0), init, np.random.default_rng(seed),
               torch.Generator().manual_seed(seed), **kw)


def sample_teachers(alg: MPCGPSAlgorithm, rng: np.random.Generator) -> tuple[list[SampleBatch], list[np.ndarray]]:
    batches, masks = [], []
    kicked = np.arange(N) >= N // 2
    for m, x0 in enumerate(X0):
        specs = [MPCSpec(alg.teacher_problem(m), alg.teacher_noise(m, rng.standard_normal((T, 2)))) for _ in range(N)]
        ctrls = [MPCController(s, T, 4, 2) for s in specs]
        out = np.empty(2)
        kick = kicks(rng, N) * kicked[:, None, None]
        batches.append(rollout(x0, lambda i, t, x, e: ctrls[i].command(t, x, out).copy(), kick, rng))
        masks.append(kicked)
    return batches, masks


def sample_controllers(alg, rng: np.random.Generator) -> list[SampleBatch]:
    return [rollout(x0, lambda i, t, x, e, p=p: p.act(t, x, e), np.zeros((N, T, 4)), rng)
            for x0, p in zip(X0, alg.policies)]


def cost_ratio(act, kicked: bool) -> float:
    """Total cost of act(x) over that of -K_dare x, both noiseless from each X0 under the same 20 kicks."""
    kick = kicks(np.random.default_rng(7), 20) if kicked else np.zeros((1, T, 4))
    rng = np.random.default_rng(0)
    total = optimum = 0.0
    for x0 in X0:
        b = rollout(x0, lambda i, t, x, e: act(x), kick, rng, spread=0.0)
        o = rollout(x0, lambda i, t, x, e: -K_DARE @ x, kick, rng, spread=0.0)
        total += COST.eval(b.X, b.U).l.sum()
        optimum += COST.eval(o.X, o.U).l.sum()
    return total / optimum


def network(alg):
    return lambda x: alg.network.mean_np(x[None])[0]


def test_mpcgps_network_ends_near_the_optimum_and_recovers_from_kicks_where_mdgps_does_not():
    rng = np.random.default_rng(0)
    alg = make(MPCGPSAlgorithm, mpc=MPCConfig(horizon=10, replan_every=1))
    assert not alg.samples_from_teacher and not alg.samples_from_network
    alg.iteration(sample_controllers(alg, rng))
    start = cost_ratio(network(alg), kicked=True)
    for _ in range(ITERATIONS - 1):
        assert alg.samples_from_teacher
        alg.iteration(*sample_teachers(alg, rng))
    mpc_calm, mpc_kicked = cost_ratio(network(alg), False), cost_ratio(network(alg), True)

    base, rng = make(MDGPSAlgorithm), np.random.default_rng(0)
    for _ in range(ITERATIONS):
        base.iteration(sample_controllers(base, rng))
    md_calm, md_kicked = cost_ratio(network(base), False), cost_ratio(network(base), True)

    assert start > 3.0                              # the first network is far from the optimum
    assert mpc_calm < 1.01 and mpc_kicked < 1.02
    assert md_calm < 1.01                           # MDGPS solves the undisturbed task ...
    assert md_kicked > mpc_kicked + 0.1             # ... but its network has not learnt the recoveries


def test_s_step_targets_are_the_teacher_actions_and_the_disturbed_trials_stay_out_of_the_fit():
    rng = np.random.default_rng(1)
    alg = make(MPCGPSAlgorithm, mpc=MPCConfig(horizon=6, replan_every=2))
    alg.iteration(sample_controllers(alg, rng))
    batches, masks = sample_teachers(alg, rng)
    teachers = [alg.teacher_problem(m) for m in range(len(X0))]
    # the recorded actions hold the exploration noise; the replayed teacher is the recorded minus the noise
    replay = teacher_actions(teachers[0], batches[0].X)
    assert np.abs(replay - batches[0].U).max() > 0.1
    alg.iteration(batches, masks)
    AB = np.hstack([A, B])
    for cond in alg.conditions:
        assert cond.batch.N == N                    # the S-step and the linearization saw every trial
        # the model is of the undisturbed system at every step (fitted through the kicks it is off by
        # O(1) at the kicked steps: see the unmasked fit below)
        assert np.abs(cond.dyn.Fm[:-1] - AB).max() < 0.05
    unmasked = make(MPCGPSAlgorithm, mpc=MPCConfig(horizon=6, replan_every=2))
    unmasked.iteration(sample_controllers(unmasked, np.random.default_rng(1)))
    unmasked.iteration(batches)
    assert np.abs(unmasked.conditions[0].dyn.Fm[:-1] - AB).max() > 0.3
    # the network was fitted to the replayed teacher actions: the loss against them is far below the
    # loss against the noisy recorded actions
    with torch.no_grad():
        pred = alg.network(torch.from_numpy(batches[0].X.reshape(-1, 4))).numpy().reshape(N, T, 2)
    assert np.mean((pred - replay) ** 2) < 0.2 * np.mean((pred - batches[0].U) ** 2)


def test_teacher_noise_has_the_covariance_of_the_controller_it_tracks():
    rng = np.random.default_rng(2)
    alg = make(MPCGPSAlgorithm)
    alg.iteration(sample_controllers(alg, rng))
    tracked = alg.conditions[1].local.policy        # the C-step's controller, no longer the initial one
    assert np.abs(tracked.pol_covar[5] - np.eye(2)).max() > 0.1
    noise = np.stack([alg.teacher_noise(1, rng.standard_normal((T, 2)))[5] for _ in range(4000)])
    np.testing.assert_allclose(np.cov(noise.T), tracked.pol_covar[5], rtol=0.1, atol=0.05 * tracked.pol_covar[5].max())


def test_resuming_from_the_state_continues_bit_identically():
    """Oracle: the uninterrupted run. A fresh algorithm loads the state after two iterations (the
    teachers included; built with other seeds, so nothing agrees by coincidence) and both run one more
    iteration on the same teacher-run samples."""
    rng = np.random.default_rng(3)
    alg = make(MPCGPSAlgorithm, mpc=MPCConfig(horizon=6, replan_every=2))
    alg.iteration(sample_controllers(alg, rng))
    alg.iteration(*sample_teachers(alg, rng))
    resumed = make(MPCGPSAlgorithm, seed=11, mpc=MPCConfig(horizon=6, replan_every=2))
    resumed.load_state_dict(alg.state_dict())
    assert resumed.samples_from_teacher
    for m in range(len(X0)):
        np.testing.assert_array_equal(resumed.teacher_problem(m).Cm, alg.teacher_problem(m).Cm)
    batches, masks = sample_teachers(alg, rng)
    alg.iteration(batches, masks)
    resumed.iteration(batches, masks)
    for a, b in zip(alg.network.state_dict().values(), resumed.network.state_dict().values()):
        assert torch.equal(a, b)
    for m in range(len(X0)):
        np.testing.assert_array_equal(resumed.teacher_problem(m).cv, alg.teacher_problem(m).cv)
