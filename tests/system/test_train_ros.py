"""gps-train --agent ros: the trainer as a ROS 2 node, sim_node and controller_node as processes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gps_agent_ros.train_cli import main as gps_train
from gps_core.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
UR5E = REPO / 'config' / 'ur5e_reach.yaml'


def test_ros_agent_solves_the_task_and_matches_inprocess(tmp_path):
    assert gps_train([str(UR5E), '--agent', 'ros', '--out', str(tmp_path / 'ros'), '--iterations', '6']) == 0
    metrics = json.loads((tmp_path / 'ros' / 'metrics.json').read_text())
    assert metrics['agent'] == 'ros'
    assert metrics['solved_at_iteration'] is not None and metrics['solved_at_iteration'] <= 6
    assert max(metrics['iterations'][-1]['final_ee_distance']) <= 0.05
    assert (tmp_path / 'ros' / 'logs' / 'sim_node.log').exists()       # the bringup's node logs

    # the same seed in-process gives the very same controllers: the graph adds transport, not numbers
    assert gps_train([str(UR5E), '--agent', 'inprocess', '--out', str(tmp_path / 'ip'), '--iterations', '2']) == 0
    _, ros_pols, _ = load_checkpoint(tmp_path / 'ros' / 'checkpoints' / 'iteration_002.npz')
    _, ip_pols, _ = load_checkpoint(tmp_path / 'ip' / 'checkpoints' / 'iteration_002.npz')
    for a, b in zip(ros_pols, ip_pols):
        assert np.array_equal(a.K, b.K) and np.array_equal(a.k, b.k)


def test_attach_without_nodes_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr('gps_agent_ros.ros_agent.RosAgent.SERVER_TIMEOUT_S', 2.0, raising=False)
    rc = gps_train([str(UR5E), '--agent', 'ros', '--attach', '--namespace', 'nobody_here',
                    '--out', str(tmp_path / 'x'), '--iterations', '1'])
    assert rc == 1
    assert 'no RunTrial action server at /nobody_here/run_trial' in capsys.readouterr().out
