"""End to end on the simulated UR5e: gps-train solves the shipped task, reproducibly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gps_agent_ros.experiment import Experiment
from gps_agent_ros.inprocess_agent import InProcessAgent
from gps_agent_ros.train_cli import main as gps_train
from gps_controllers.trial_spec import LinearGaussianSpec
from gps_core.algorithms import TrajOptAlgorithm
from gps_core.checkpoint import load_checkpoint
from gps_core.config import load_experiment
from gps_core.policies import smoothed_noise
from gps_core.samples import SampleBatch
from gps_core.traj_opt import forward_pass, traj_kl

REPO = Path(__file__).resolve().parents[2]
UR5E = REPO / 'config' / 'ur5e_reach.yaml'


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('ur5e')
    assert gps_train([str(UR5E), '--agent', 'inprocess', '--out', str(out), '--iterations', '6']) == 0
    return out


def test_solves_all_four_conditions(trained):
    metrics = json.loads((trained / 'metrics.json').read_text())
    assert metrics['experiment'] == 'ur5e_reach' and metrics['agent'] == 'inprocess'
    its = metrics['iterations']
    assert [r['iteration'] for r in its] == list(range(1, 7))
    assert all(r['samples'] == 20 for r in its)
    first, last = its[0]['final_ee_distance'], its[-1]['final_ee_distance']
    assert min(first) > 0.1                      # the initial controller only holds the start pose
    assert metrics['solved_at_iteration'] is not None and metrics['solved_at_iteration'] <= 6
    assert max(last) <= 0.05
    assert its[-1]['mean_cost'] < its[0]['mean_cost']
    assert set(its[0]['seconds']) >= {'sampling', 'dynamics', 'traj_opt'}
    assert (trained / 'training.png').stat().st_size > 1000


def test_checkpoint_round_trip(trained):
    it, policies, scalars = load_checkpoint(trained / 'checkpoints' / 'iteration_006.npz')
    assert it == 6 and len(policies) == 4
    assert policies[0].K.shape == (100, 6, 30) and scalars['eta'].shape == (4,)
    again = load_experiment(trained / 'checkpoints' / 'experiment.yaml')
    assert again.conditions == load_experiment(UR5E).conditions


def test_seeded_runs_are_bit_for_bit_reproducible(tmp_path):
    runs = []
    for name in ('a', 'b'):
        assert gps_train([str(UR5E), '--out', str(tmp_path / name), '--iterations', '2', '--seed', '3']) == 0
        _, pols, scalars = load_checkpoint(tmp_path / name / 'checkpoints' / 'iteration_002.npz')
        metrics = json.loads((tmp_path / name / 'metrics.json').read_text())
        runs.append((pols, scalars, [(r['mean_cost'], r['final_ee_distance'], r['kl']) for r in metrics['iterations']]))
    (pa, sa, ma), (pb, sb, mb) = runs
    assert ma == mb
    for a, b in zip(pa, pb):
        assert np.array_equal(a.K, b.K) and np.array_equal(a.k, b.k) and np.array_equal(a.pol_covar, b.pol_covar)
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_kl_constraint_holds_on_arm_data():
    """On the nonlinear arm's fitted dynamics, the achieved KL is within 10% of epsilon."""
    cfg = load_experiment(UR5E)
    exp = Experiment(cfg)
    agent = InProcessAgent(exp)
    rng = np.random.default_rng(0)
    alg = TrajOptAlgorithm(cfg.algorithm, cfg.dynamics, cfg.traj_opt, exp.costs()[:1], exp.init_policies()[:1], rng)
    try:
        for _ in range(2):
            prior = alg.policies[0]
            trials = [agent.run(exp.conditions[0], LinearGaussianSpec(prior.K, prior.fold_noise(
                smoothed_noise(rng, cfg.T, exp.dU, cfg.algorithm.init.smooth_noise_sigma))))
                for _ in range(cfg.samples_per_condition)]
            stats = alg.iteration([SampleBatch(np.stack([t.X for t in trials]), np.stack([t.U for t in trials]))])
            assert abs(stats.kl[0] - stats.kl_step[0]) <= 0.1 * stats.kl_step[0]
            # recompute the KL independently of the optimizer's bookkeeping
            dyn = alg.conditions[0].prev[1]
            mu, sigma = forward_pass(alg.policies[0], dyn)
            assert np.sum(traj_kl(mu, sigma, alg.policies[0], prior)) == pytest.approx(stats.kl[0], rel=1e-9)
    finally:
        agent.close()


def test_bad_experiment_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(UR5E.read_text().replace('samples_per_condition', 'samples_per_conditon'))
    assert gps_train([str(bad), '--out', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err
    assert 'samples_per_conditon' in err and str(bad) in err
    assert not (tmp_path / 'o').exists()


def test_a_sample_the_safety_filter_stops_is_drawn_again(tmp_path):
    """With the velocity limit at 0.48 x the URDF's (1.51 rad/s) some of the first iteration's 20
    samples trip it (they move at up to 1.1-1.7 rad/s). Each is drawn again from its next attempt's
    seed; the iteration trains on the others plus the redrawn ones, and says how many it redrew."""
    import sys
    sys.path.insert(0, str(REPO / 'benchmarks'))
    from bench_parallel import requests as first_iteration    # attempt 0 of iteration 1, as the trainer draws
    from gps_agent_ros.agent import SafetyStop
    from gps_agent_ros.trainer import Trainer
    from gps_agent_ros.recording import TrialRecorder
    from gps_controllers.safety import SafetyFilter

    exp = Experiment(load_experiment(UR5E))
    tight = SafetyFilter.from_urdf(exp.urdf_path, list(exp.config.robot.joints), velocity_margin=0.48,
                                   command_interface='effort')
    agent = InProcessAgent(exp)
    agent.safety = tight
    try:
        stops = [isinstance(t, SafetyStop) for t in agent.run_many(first_iteration(exp, 5, 1), safety_stops=True)]
        assert 0 < sum(stops) < 20
        lines: list[str] = []
        trainer = Trainer(exp, agent, 'inprocess', tmp_path, progress=lines.append)
        batches, _ = trainer._sample(1, TrialRecorder(tmp_path, 1, overwrite=True))
    finally:
        agent.close()
    # a stopped sample is redrawn until a draw passes (a draw may stop again: counted again)
    per_condition = [sum(stops[m * 5:(m + 1) * 5]) for m in range(4)]
    assert all(r >= s and (r > 0) == (s > 0) for r, s in zip(trainer.safety_redraws, per_condition))
    assert any('stopped by the safety filter, drawn again' in line for line in lines)
    limit = 0.48 * np.pi
    for m, batch in enumerate(batches):
        assert batch.N == 5 and np.abs(batch.X[:, :, 6:12]).max() <= limit
        kept = [i for i in range(5) if not stops[m * 5 + i]]
        # the samples that were not stopped are the first draws, untouched
        reference = InProcessAgent(exp)
        try:
            again = reference.run_many([first_iteration(exp, 5, 1)[m * 5 + i] for i in kept])
        finally:
            reference.close()
        for i, trial in zip(kept, again):
            assert np.array_equal(batch.X[i], trial.X)


def test_a_sample_stopped_on_every_draw_ends_the_run_in_one_line(tmp_path, capsys):
    """With the limit below what holding the start pose needs, every draw stops: the run ends
    saying which sample and why, not with a traceback."""
    import gps_agent_ros.inprocess_agent as inprocess
    original = inprocess.DEFAULT_VELOCITY_MARGIN
    inprocess.DEFAULT_VELOCITY_MARGIN = 0.01
    try:
        code = gps_train([str(UR5E), '--out', str(tmp_path / 'run'), '--iterations', '1'])
    finally:
        inprocess.DEFAULT_VELOCITY_MARGIN = original
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and 'Traceback' not in '\n'.join(err)
    assert 'ABORTED_LIMIT' in err[-1] and 'draws of its noise all stopped by the safety filter' in err[-1]
