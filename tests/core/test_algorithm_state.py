"""Resuming training from a saved state continues exactly as if it had never stopped.

Oracle: the uninterrupted run. Each algorithm trains K_BEFORE iterations on a small noisy linear
point mass (2 conditions) with samples drawn by the test's own seeded generator through the
algorithm's controllers or network; its state goes to files, a FRESH algorithm (same
configuration, other seeds, so nothing can agree by coincidence of seeding) loads them, and both
run M_AFTER more iterations, each sampling with its own copy of the test generator (restored from
the state's `extra`). Samples, statistics and the complete state_dict (controllers, priors and
their GMMs, eta, step sizes, duals, network weights, Adam state, generators) must agree bit for
bit, and so must the next draws of every generator.

Shapes: x [6] (position, velocity in 3-D), u [3]; T = 12 steps, N = 6 samples per condition.
Three action dimensions on purpose: with two, every sum over actions has two terms, whose rounding
does not depend on the order, so a restored array with another memory layout (which numpy's
einsum and BLAS sum in another order) would go unnoticed.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.linalg
import torch

from gps_core.algorithms.badmm import BADMMAlgorithm
from gps_core.algorithms.base import GPSAlgorithm, IterationStats
from gps_core.algorithms.mdgps import MDGPSAlgorithm
from gps_core.algorithms.pigps import PIGPSAlgorithm
from gps_core.algorithms.plain_state import numpy_rng_state, restore_numpy_rng
from gps_core.algorithms.traj_opt import TrajOptAlgorithm
from gps_core.checkpoint import latest_training_state, load_training_state, save_training_state
from gps_core.config import AlgorithmConfig, BADMMConfig, DynamicsConfig, MDGPSConfig
from gps_core.costs.base import CostDerivs
from gps_core.dynamics.gmm_prior import DynamicsPriorConfig
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.policy_config import PolicyConfig, PolicyPriorConfig
from gps_core.samples import SampleBatch
from gps_core.traj_opt import PI2Config, TrajOptConfig

DT, T, N = 0.1, 12, 6
K_BEFORE, M_AFTER = 2, 2
DIM = 3
dX, dU = 2 * DIM, DIM
A = np.block([[np.eye(DIM), DT * np.eye(DIM)], [np.zeros((DIM, DIM)), np.eye(DIM)]])
B = np.vstack([0.5 * DT ** 2 * np.eye(DIM), DT * np.eye(DIM)])
X0 = [np.array([1.0, -0.5, 0.4, 0.0, 0.2, -0.1]), np.array([-0.8, 0.6, -0.2, 0.3, 0.0, 0.1])]
PROCESS_NOISE = 0.01
# small windows, so that they fill up and slide (and the GMMs warm-start on carried rows) in the test
DYNAMICS = DynamicsConfig(prior=DynamicsPriorConfig(max_samples=10, min_samples_per_cluster=20))
POLICY = PolicyConfig(hidden=(8,), activation='tanh', iterations=40, batch_size=32, learning_rate=1e-2,
                      prior=PolicyPriorConfig(max_samples=10, min_samples_per_cluster=20))
KINDS = ('traj_opt', 'mdgps', 'badmm', 'pigps')


class QuadraticCost:
    """l_t = 1/2 [x;u]^T blkdiag(Q, R) [x;u] at every step."""

    C = scipy.linalg.block_diag(np.diag([1.0, 2.0, 1.5, 0.1, 0.1, 0.1]), np.diag([0.05, 0.1, 0.08]))

    def eval(self, X: np.ndarray, U: np.ndarray) -> CostDerivs:
        XU = np.concatenate([X, U], axis=2)
        g = XU @ self.C
        H = np.broadcast_to(self.C, X.shape[:2] + self.C.shape)
        return CostDerivs(0.5 * np.einsum('nti,nti->nt', XU, g), g[..., :dX], g[..., dX:],
                          H[..., :dX, :dX].copy(), H[..., dX:, dX:].copy(), H[..., dX:, :dX].copy())


def build(kind: str, seed: int, state_dim: int = dX, conditions: int = 2, policy: PolicyConfig = POLICY
          ) -> GPSAlgorithm:
    init = [LinearGaussianPolicy.from_covar(np.zeros((T, dU, state_dim)), np.zeros((T, dU)),
                                            np.tile(0.3 * np.eye(dU), (T, 1, 1)))
            for _ in range(conditions)]
    costs = [QuadraticCost()] * conditions
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    if kind == 'traj_opt':
        return TrajOptAlgorithm(AlgorithmConfig(), DYNAMICS, TrajOptConfig(), costs, init, rng)
    if kind == 'mdgps':
        cfg = AlgorithmConfig(type='mdgps', mdgps=MDGPSConfig(sample_on_policy=True))
        return MDGPSAlgorithm(cfg, DYNAMICS, TrajOptConfig(), policy, costs, init, rng, generator)
    if kind == 'badmm':
        cfg = AlgorithmConfig(type='badmm', badmm=BADMMConfig(inner_iterations=2, pol_wt_step=1.0))
        return BADMMAlgorithm(cfg, DYNAMICS, TrajOptConfig(), policy, costs, init, rng, generator)
    return PIGPSAlgorithm(AlgorithmConfig(type='mdgps'), DYNAMICS, TrajOptConfig(), policy, costs, init, rng,
                          generator, pi2=PI2Config(kl_threshold=1.0))


def sample(alg: GPSAlgorithm, rng: np.random.Generator) -> list[SampleBatch]:
    """N noisy trials per condition with the algorithm's controllers or, when it asks, its network.
    A controller's noise is folded into k per trial (LinearGaussianPolicy.fold_noise), as the
    trainer does."""
    batches = []
    for m, x0 in enumerate(X0):
        X, U = np.empty((N, T, dX)), np.empty((N, T, dU))
        x = x0 + 0.01 * rng.standard_normal((N, dX))
        eps = rng.standard_normal((N, T, dU))
        if alg.samples_from_network:
            net = alg.network
            noise = eps @ np.linalg.cholesky(net.covar_np()).T                     # [N, T, dU]
        else:
            p = alg.policies[m]
            folded = np.stack([p.fold_noise(e) for e in eps])                     # [N, T, dU]
        for t in range(T):
            U[:, t] = net.mean_np(x) + noise[:, t] if alg.samples_from_network else x @ p.K[t].T + folded[:, t]
            X[:, t] = x
            x = x @ A.T + U[:, t] @ B.T + PROCESS_NOISE * rng.standard_normal((N, dX))
        batches.append(SampleBatch(X, U))
    return batches


def differences(a, b, where: str = '') -> list[str]:
    """Where two nested states differ (exact: dtype, shape and every bit; NaN equals NaN)."""
    if type(a) is not type(b) and not (isinstance(a, float) and isinstance(b, float)):
        return [f'{where}: {type(a).__name__} vs {type(b).__name__}']
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return [f'{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}']
        return [d for k in a for d in differences(a[k], b[k], f'{where}/{k}')]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f'{where}: length {len(a)} vs {len(b)}']
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f'{where}/{i}')]
    if isinstance(a, np.ndarray):
        same = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == 'f')
        return [] if same else [f'{where}: arrays differ']
    if isinstance(a, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f'{where}: tensors differ']
    if isinstance(a, float) and np.isnan(a) and np.isnan(b):
        return []
    return [] if a == b else [f'{where}: {a!r} vs {b!r}']


def stats_record(stats: IterationStats) -> dict:
    """Everything an iteration reports except wall-clock seconds."""
    return {'kl': stats.kl, 'kl_step': stats.kl_step, 'eta': stats.eta, 'step_mult': stats.step_mult,
            'eta_iterations': stats.eta_iterations, 'extra': stats.extra}


def trained(kind: str, iterations: int = K_BEFORE) -> tuple[GPSAlgorithm, np.random.Generator]:
    alg, sampler = build(kind, seed=0), np.random.default_rng(100)
    for _ in range(iterations):
        alg.iteration(sample(alg, sampler))
    return alg, sampler


@pytest.mark.parametrize('kind', KINDS)
def test_resumed_run_continues_bit_identically(kind, tmp_path):
    original, sampler = trained(kind)
    path = save_training_state(tmp_path, K_BEFORE, original.state_dict(), {'sampler': numpy_rng_state(sampler)})
    assert path == tmp_path / 'state_002' and latest_training_state(tmp_path) == path

    loaded = load_training_state(path)
    assert loaded['iteration'] == K_BEFORE
    restored = build(kind, seed=1)
    assert differences(restored.state_dict(), original.state_dict())     # the comparison can tell them apart
    restored.load_state_dict(loaded['state'])
    restored_sampler = np.random.default_rng(999)
    restore_numpy_rng(restored_sampler, loaded['extra']['sampler'])
    assert isinstance(restored, GPSAlgorithm)
    assert differences(restored.state_dict(), original.state_dict()) == []

    for _ in range(M_AFTER):
        assert restored.samples_from_network == original.samples_from_network
        batches, restored_batches = sample(original, sampler), sample(restored, restored_sampler)
        for a, b in zip(batches, restored_batches):
            assert np.array_equal(a.X, b.X) and np.array_equal(a.U, b.U)
        stats, restored_stats = original.iteration(batches), restored.iteration(restored_batches)
        assert stats_record(stats) == stats_record(restored_stats)
    if kind in ('mdgps', 'pigps'):
        assert original.samples_from_network          # the resumed iterations did sample the network
    assert differences(restored.state_dict(), original.state_dict()) == []
    for a, b in zip(original.policies, restored.policies):
        for name in ('K', 'k', 'pol_covar', 'chol_pol_covar', 'inv_pol_covar'):
            assert np.array_equal(getattr(a, name), getattr(b, name))
    # every generator continues with the same draws
    assert np.array_equal(original.rng.random(4), restored.rng.random(4))
    assert np.array_equal(sampler.random(4), restored_sampler.random(4))
    if original.network is not None:
        for (name, p), q in zip(original.network.state_dict().items(), restored.network.state_dict().values()):
            assert torch.equal(p, q), name
        g, h = original.policy_opt.generator, restored.policy_opt.generator
        assert torch.equal(torch.randperm(50, generator=g), torch.randperm(50, generator=h))


def test_state_holds_what_the_next_iterations_use():
    """Spot checks of the layout, against the objects themselves."""
    alg, _ = trained('badmm')
    state = alg.state_dict()
    assert state['header'] == {'format': 1, 'algorithm': 'badmm', 'conditions': 2, 'T': T, 'dX': dX, 'dU': dU,
                               'dO': dX, 'network': alg.network.architecture()}
    assert state['iteration_count'] == K_BEFORE
    assert np.array_equal(state['variant']['lambda'][1], alg.lambda_k[1]) and np.any(alg.lambda_k[1] != 0)
    assert np.array_equal(state['variant']['pol_wt'][0], alg.pol_wt[0])
    cond = state['conditions'][0]
    assert cond['dynamics_prior']['X'].shape == (10, T, dX)                 # the window was capped
    assert cond['policy_prior']['obs'].shape == (10, T, dX)
    assert cond['previous']['dynamics']['Fm'].shape == (T, dX, dX + dU)
    assert state['policy_opt']['normalization_fitted'] is True
    assert state['policy_opt']['optimizer']['state'][0]['exp_avg'].shape == (8, dX)
    # a copy: the next iteration updates the duals, the weights and Adam's moments in place, yet a
    # state already taken keeps its values
    lam = state['variant']['lambda'][0].copy()
    weight = state['policy_opt']['network']['net.0.weight'].clone()
    moment = state['policy_opt']['optimizer']['state'][0]['exp_avg'].clone()
    alg.iteration(sample(alg, np.random.default_rng(5)))
    assert np.array_equal(state['variant']['lambda'][0], lam) and not np.array_equal(alg.lambda_k[0], lam)
    assert torch.equal(state['policy_opt']['network']['net.0.weight'], weight)
    assert not torch.equal(alg.network.net[0].weight, weight)
    assert torch.equal(state['policy_opt']['optimizer']['state'][0]['exp_avg'], moment)
    assert not torch.equal(alg.policy_opt.optimizer.state_dict()['state'][0]['exp_avg'], moment)


def test_files_are_plain_data_and_keep_the_memory_layout(tmp_path):
    big = np.random.default_rng(3).bit_generator.state['state']['state']       # a 128-bit int
    view = np.arange(24.0).reshape(2, 3, 4).swapaxes(1, 2)                     # strided, as chol_pol_covar is
    state = {'view': view, 'ints': np.arange(3, dtype=np.int32), 'pair': (1, 'a'), 'by_index': {0: 1.5, 2: None},
             'nan': float('nan'), 'big': big, 'tensor': torch.arange(4, dtype=torch.float64)}
    path = save_training_state(tmp_path, 0, state)
    assert sorted(p.name for p in path.iterdir()) == ['arrays.npz', 'manifest.json', 'state.json', 'tensors.pt']
    np.load(path / 'arrays.npz', allow_pickle=False).close()
    torch.load(path / 'tensors.pt', weights_only=True)
    back = load_training_state(path)['state']
    assert differences(back, state) == []
    assert back['view'].strides == view.strides
    assert back['big'] == big and isinstance(back['pair'], tuple)


def test_non_plain_data_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match='state/conditions/0/policy: LinearGaussianPolicy is not plain data'):
        save_training_state(tmp_path, 1, {'conditions': [{'policy': build('traj_opt', 0).policies[0]}]})
    with pytest.raises(TypeError, match='state/a: an array of Python objects'):
        save_training_state(tmp_path, 1, {'a': np.array([object()])})
    assert list(tmp_path.iterdir()) == []


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize('damage, message', [
    (lambda p: (p / 'manifest.json').unlink(), 'manifest.json is missing: the state is incomplete'),
    (lambda p: (p / 'arrays.npz').unlink(), 'incomplete: arrays.npz is missing'),
    (lambda p: (p / 'tensors.pt').unlink(), 'incomplete: tensors.pt is missing'),
    (lambda p: _flip_a_byte(p / 'arrays.npz'), 'arrays.npz is corrupted'),
    (lambda p: _flip_a_byte(p / 'tensors.pt'), 'tensors.pt is corrupted'),
    (lambda p: (p / 'state.json').write_text('{"format": 1'), 'state.json is corrupted'),
    (lambda p: (p / 'manifest.json').write_text('{"format": 1'), 'manifest.json is unreadable'),
], ids=['no-manifest', 'no-arrays', 'no-tensors', 'arrays-flipped', 'tensors-flipped', 'state-truncated',
        'manifest-truncated'])
def test_damaged_state_is_refused_naming_the_part(tmp_path, damage, message):
    alg, _ = trained('mdgps', iterations=1)
    path = save_training_state(tmp_path, 1, alg.state_dict())
    load_training_state(path)
    damage(path)
    with pytest.raises(ValueError, match=message):
        load_training_state(path)


def test_interrupted_save_leaves_the_previous_state(tmp_path, monkeypatch):
    alg, _ = trained('traj_opt', iterations=1)
    first = alg.state_dict()
    path = save_training_state(tmp_path, 1, first)
    alg.iteration(sample(alg, np.random.default_rng(4)))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt                     # as if the process died while writing the arrays
    monkeypatch.setattr(np, 'savez', killed)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(tmp_path, 1, alg.state_dict())           # would replace state_001
    with pytest.raises(KeyboardInterrupt):
        save_training_state(tmp_path, 2, alg.state_dict())
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['state_001']
    assert differences(load_training_state(path)['state'], first) == []
    # a half-written directory from a hard kill is never taken for a state
    half = tmp_path / '.state_002.x1y2.tmp'
    shutil.copytree(path, half)
    (half / 'manifest.json').unlink()
    assert latest_training_state(tmp_path) == path
    save_training_state(tmp_path, 2, alg.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ['state_001', 'state_002']      # and cleaned up


@pytest.mark.parametrize('saved_kind, target, mismatch', [
    ('traj_opt', lambda: build('mdgps', 0), "algorithm='traj_opt' (this run: 'mdgps')"),
    ('mdgps', lambda: build('badmm', 0), "algorithm='mdgps' (this run: 'badmm')"),
    ('traj_opt', lambda: build('traj_opt', 0, conditions=3), 'conditions=2 (this run: 3)'),
    ('traj_opt', lambda: build('traj_opt', 0, state_dim=8), 'dX=6 (this run: 8)'),
    ('pigps', lambda: build('pigps', 0, state_dim=8), 'dX=6 (this run: 8), dO=6 (this run: 8)'),
    ('mdgps', lambda: build('mdgps', 0, policy=PolicyConfig(hidden=(16,), activation='tanh')),
     "'hidden': [8]"),
], ids=['traj_opt-into-mdgps', 'mdgps-into-badmm', 'conditions', 'dX', 'dX-network', 'architecture'])
def test_state_of_another_run_is_refused_naming_the_mismatch(tmp_path, saved_kind, target, mismatch):
    alg, _ = trained(saved_kind, iterations=1)
    state = load_training_state(save_training_state(tmp_path, 1, alg.state_dict()))['state']
    other = target()
    untouched = other.state_dict()
    with pytest.raises(ValueError, match='does not fit this run') as err:
        other.load_state_dict(state)
    assert mismatch in str(err.value)
    assert differences(other.state_dict(), untouched) == []         # nothing was half-loaded
