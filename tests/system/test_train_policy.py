"""End to end on the simulated UR5e: MDGPS trains a network that reaches targets it never trained
on, the saved policy reproduces the recorded numbers, and --algorithm switches to BADMM."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gps_agent_ros.experiment import Experiment
from gps_agent_ros.inprocess_agent import InProcessAgent
from gps_agent_ros.train_cli import main as gps_train
from gps_controllers.trial_spec import NetworkSpec
from gps_core.config import load_experiment
from gps_core.policies.export import load_policy, load_scripted_policy
from gps_core.policies.spec import policy_spec

REPO = Path(__file__).resolve().parents[2]
MDGPS = REPO / 'config' / 'ur5e_reach_mdgps.yaml'
ITERATIONS = 3


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('mdgps')
    assert gps_train([str(MDGPS), '--out', str(out), '--iterations', str(ITERATIONS)]) == 0
    return out


def test_network_alone_reaches_unseen_targets(trained):
    metrics = json.loads((trained / 'metrics.json').read_text())
    its = metrics['iterations']
    assert [r['iteration'] for r in its] == list(range(1, ITERATIONS + 1))
    for r in its:
        assert len(r['policy_final_ee_distance']) == 4 and len(r['policy_test_final_ee_distance']) == 11
        assert r['seconds']['policy'] > 0 and len(r['policy_loss']) >= 1
    first, last = its[0], its[-1]
    # after one iteration the network only imitates the hold-pose controllers: far from every target
    assert np.mean(first['policy_test_final_ee_distance']) > 0.06
    assert last['policy_test_success_rate'] >= 0.9
    assert np.mean(np.array(last['policy_test_final_ee_distance']) <= 0.05) == last['policy_test_success_rate']
    assert max(last['policy_final_ee_distance']) <= 0.05
    assert metrics['policy_solved_at_iteration'] is not None


def test_saved_policy_reproduces_the_recorded_distance(trained):
    """The checkpoint's plain-data policy (architecture + state_dict), sent to the agent as a
    spec, gives the metric's numbers bit for bit; the TorchScript export computes the same means."""
    ckpt = trained / 'checkpoints'
    net = load_policy(ckpt, f'policy_iteration_{ITERATIONS:03d}')
    exp = Experiment(load_experiment(MDGPS))
    agent = InProcessAgent(exp)
    recorded = json.loads((trained / 'metrics.json').read_text())['iterations'][-1]['policy_test_final_ee_distance']
    try:
        for i in (0, 5):
            trial = agent.run(exp.test_conditions[i], NetworkSpec(policy_spec(net)))
            assert float(exp.final_distance(trial.X[None])[0]) == recorded[i]
    finally:
        agent.close()
    scripted = load_scripted_policy(ckpt / f'policy_iteration_{ITERATIONS:03d}.pt')
    assert torch.equal(scripted.covar, net.covar)
    with torch.no_grad():
        np.testing.assert_allclose(scripted(torch.from_numpy(trial.X)).numpy(), net.mean_np(trial.X),
                                   rtol=1e-12, atol=1e-12)


def test_algorithm_override_runs_badmm(tmp_path):
    assert gps_train([str(MDGPS), '--out', str(tmp_path), '--iterations', '1', '--algorithm', 'badmm']) == 0
    saved = yaml.safe_load((tmp_path / 'checkpoints' / 'experiment.yaml').read_text())
    assert saved['algorithm']['type'] == 'badmm'
    record = json.loads((tmp_path / 'metrics.json').read_text())['iterations'][0]
    assert len(record['pol_wt_mean']) == 4 and len(record['policy_test_final_ee_distance']) == 11
    assert (tmp_path / 'checkpoints' / 'policy_iteration_001.pt').is_file()


def test_unknown_algorithm_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gps_train([str(MDGPS), '--out', str(tmp_path / 'o'), '--algorithm', 'ppo'])
    assert 'ppo' in capsys.readouterr().err and not (tmp_path / 'o').exists()
