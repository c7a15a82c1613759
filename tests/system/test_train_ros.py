"""gps-train --agent ros: the trainer as a ROS 2 node, sim_node and controller_node as processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Float64MultiArray

from gps_agent_ros.train_cli import main as gps_train
from gps_core.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
UR5E = REPO / 'config' / 'ur5e_reach.yaml'
MDGPS = REPO / 'config' / 'ur5e_reach_mdgps.yaml'


def _numbers(metrics: dict) -> list[dict]:
    """Per-iteration records without the wall-clock timings."""
    return [{k: v for k, v in r.items() if k != 'seconds'} for r in metrics['iterations']]


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


@pytest.mark.parametrize('algorithm, iterations, on_policy', [('mdgps', 2, True), ('badmm', 1, False)])
def test_network_algorithms_through_the_graph_equal_inprocess(tmp_path, algorithm, iterations, on_policy):
    """The network's trials (on-policy samples from iteration 2, the noiseless evaluation on the
    training and test conditions) run through controller_node; every number equals the in-process
    run with the same seed."""
    cfg = yaml.safe_load(MDGPS.read_text())
    cfg['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')
    cfg['algorithm']['mdgps']['sample_on_policy'] = on_policy
    cfg['test_conditions'] = cfg['test_conditions'][:4]
    path = tmp_path / 'experiment.yaml'
    path.write_text(yaml.safe_dump(cfg))
    runs = {}
    for agent in ('ros', 'inprocess'):
        assert gps_train([str(path), '--agent', agent, '--algorithm', algorithm, '--iterations', str(iterations),
                          '--out', str(tmp_path / agent)]) == 0
        runs[agent] = json.loads((tmp_path / agent / 'metrics.json').read_text())
    assert runs['ros']['agent'] == runs['ros']['policy_evaluation_agent'] == 'ros'
    assert runs['inprocess']['policy_evaluation_agent'] == 'inprocess'
    assert _numbers(runs['ros']) == _numbers(runs['inprocess'])
    assert len(runs['ros']['iterations'][-1]['policy_test_final_ee_distance']) == 4


def _node_pids(params_file: Path) -> list[int]:
    """PIDs of the processes started with this bringup's parameter file."""
    pids = []
    for proc in Path('/proc').iterdir():
        if proc.name.isdigit():
            try:
                if str(params_file).encode() in (proc / 'cmdline').read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_killing_the_trainer_mid_policy_trial_stops_the_arm(tmp_path):
    """SIGKILL of gps-train while controller_node runs the network: the nodes die with it (no
    process left), and the last command the arm gets is zero, well within the sim's watchdog."""
    cfg = yaml.safe_load(MDGPS.read_text())
    cfg['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')
    cfg['samples_per_condition'] = 2
    path = tmp_path / 'experiment.yaml'
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / 'run'
    env = dict(os.environ, ROS_DOMAIN_ID=str(101 + os.getpid() % 100))   # apart from this process's
    trainer = subprocess.Popen([sys.executable, '-m', 'gps_agent_ros.train_cli', str(path), '--agent', 'ros',
                                '--out', str(out), '--iterations', '3', '--namespace', 'arm_kill'],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('command_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    commands: list[tuple[float, np.ndarray]] = []
    node.create_subscription(Float64MultiArray, '/arm_kill/forward_effort_controller/commands',
                             lambda m: commands.append((time.monotonic(), np.array(m.data))), 100)
    log = out / 'logs' / 'controller_node.log'
    try:
        deadline = time.monotonic() + 240.0
        while not (log.exists() and 'controller_type 1' in log.read_text()):   # a network trial started
            assert trainer.poll() is None and time.monotonic() < deadline, 'no policy trial started'
            executor.spin_once(timeout_sec=0.05)
        n = len(commands)
        while len(commands) < n + 10:                                           # ... and is commanding
            executor.spin_once(timeout_sec=0.01)
        assert any(c.any() for _, c in commands[n:])
        pids = _node_pids(out / 'logs' / 'params.yaml')
        assert len(pids) == 2, pids
        trainer.kill()
        killed = time.monotonic()
        trainer.wait(timeout=10)
        end = time.monotonic() + 10.0
        while _node_pids(out / 'logs' / 'params.yaml') and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert not _node_pids(out / 'logs' / 'params.yaml'), 'a node outlived the trainer'
        zeros_at = [t for t, c in commands if t >= killed and not c.any()]
        assert zeros_at and not commands[-1][1].any(), 'the arm was not sent a zero command'
        assert zeros_at[0] - killed <= 1.0       # the sim's own watchdog would zero it after 0.25 s
    finally:
        if trainer.poll() is None:
            trainer.kill()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
