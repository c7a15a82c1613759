"""gps-train --agent ros: the trainer as a ROS 2 node, sim_node and controller_node as processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rosbags.highlevel import AnyReader
from std_msgs.msg import Float64MultiArray

from gps_agent_ros.experiment import Experiment
from gps_agent_ros.inprocess_agent import InProcessAgent
from gps_agent_ros.train_cli import main as gps_train
from gps_agent_ros.trainer import NOISE_CONTROLLER, trial_rng
from gps_controllers.trial_spec import LinearGaussianSpec
from gps_core.checkpoint import load_checkpoint
from gps_core.config import load_experiment
from gps_core.policies import smoothed_noise

REPO = Path(__file__).resolve().parents[2]
UR5E = REPO / 'config' / 'ur5e_reach.yaml'
MDGPS = REPO / 'config' / 'ur5e_reach_mdgps.yaml'


def _numbers(metrics: dict) -> list[dict]:
    """Per-iteration records without the wall-clock timings."""
    return [{k: v for k, v in r.items() if k != 'seconds'} for r in metrics['iterations']]


def _recorded_trials(path: Path) -> dict[tuple[str, int], dict]:
    """(condition, sample) -> q [T, nj], U [T, nj], the arm, read with rosbags (not our writer).
    A trial's record is logged at its first state's time; its states and commands follow."""
    records, states, commands = [], [], []
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            msg, arm = reader.deserialize(raw, conn.msgtype), conn.topic.strip('/').split('/')[0]
            if conn.topic.endswith('gps/trial'):
                records.append((t, arm, json.loads(msg.data)))
            elif conn.topic.endswith('joint_states'):
                states.append((t, arm, list(msg.position)))
            elif conn.topic.endswith('commands'):
                commands.append((t, arm, list(msg.data)))
    out = {}
    for arm in {a for _, a, _ in records}:
        mine = sorted((t, r) for t, a, r in records if a == arm)
        starts = [t for t, _ in mine] + [float('inf')]
        for k, (t0, record) in enumerate(mine):
            inside = lambda rows: np.array([v for t, a, v in rows if a == arm and t0 <= t < starts[k + 1]])  # noqa: E731
            out[(record['condition'], record['sample'])] = {'arm': record['arm'], 'q': inside(states),
                                                             'U': inside(commands)}
    return out


def test_two_arms_solve_the_task_and_match_inprocess(tmp_path):
    """Two arms sample in parallel; every number equals the in-process run (a trial's result does
    not depend on the arm), and the MCAP recordings hold exactly the trials."""
    assert gps_train([str(UR5E), '--agent', 'ros', '--arms', '2', '--out', str(tmp_path / 'ros'),
                      '--iterations', '6']) == 0
    metrics = json.loads((tmp_path / 'ros' / 'metrics.json').read_text())
    assert metrics['agent'] == 'ros'
    assert metrics['solved_at_iteration'] is not None and metrics['solved_at_iteration'] <= 6
    assert max(metrics['iterations'][-1]['final_ee_distance']) <= 0.05
    for arm in ('arm0', 'arm1'):    # both arms ran trials
        assert 'ended COMPLETED' in (tmp_path / 'ros' / 'logs' / arm / 'controller_node.log').read_text()

    assert gps_train([str(UR5E), '--agent', 'inprocess', '--out', str(tmp_path / 'ip'), '--iterations', '2']) == 0
    inprocess = json.loads((tmp_path / 'ip' / 'metrics.json').read_text())
    assert _numbers(metrics)[:2] == _numbers(inprocess)
    _, ros_pols, _ = load_checkpoint(tmp_path / 'ros' / 'checkpoints' / 'iteration_002.npz')
    _, ip_pols, _ = load_checkpoint(tmp_path / 'ip' / 'checkpoints' / 'iteration_002.npz')
    for a, b in zip(ros_pols, ip_pols):
        assert np.array_equal(a.K, b.K) and np.array_equal(a.k, b.k)

    # the recordings: read back independently, the same trials both ways, on both arms
    ros_trials = _recorded_trials(tmp_path / 'ros' / 'trials' / 'iteration_001.mcap')
    ip_trials = _recorded_trials(tmp_path / 'ip' / 'trials' / 'iteration_001.mcap')
    assert set(ros_trials) == set(ip_trials) and len(ros_trials) == 4 * 5
    assert {t['arm'] for t in ros_trials.values()} == {'/arm0', '/arm1'}
    for key, t in ros_trials.items():
        assert np.array_equal(t['q'], ip_trials[key]['q']) and np.array_equal(t['U'], ip_trials[key]['U'])
    # ... and they are the trials themselves: trial (train/0, sample 0) re-run here
    exp = Experiment(load_experiment(UR5E))
    pol = exp.init_policies()[0]
    eps = smoothed_noise(trial_rng(exp.config.seed, 1, NOISE_CONTROLLER, 0, 0), exp.config.T, exp.dU,
                         exp.config.algorithm.init.smooth_noise_sigma)
    agent = InProcessAgent(exp)
    try:
        trial = agent.run(exp.conditions[0], LinearGaussianSpec(pol.K, pol.fold_noise(eps)))
    finally:
        agent.close()
    recorded = ros_trials[('train/0', 0)]
    assert np.array_equal(recorded['q'], trial.X[:, :6]) and np.array_equal(recorded['U'], trial.U)


def _two_arms_after_arm1_ran(out: Path, log_name: str, *options: str, domain_offset: int) -> subprocess.Popen:
    """gps-train --arms 2 (2 iterations) started in its own domain, returned once arm1 completed two
    trials (its node log `log_name` says so)."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(101 + (os.getpid() + domain_offset) % 100))
    trainer = subprocess.Popen([sys.executable, '-m', 'gps_agent_ros.train_cli', str(UR5E), '--agent', 'ros',
                                '--arms', '2', *options, '--out', str(out), '--iterations', '2'],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / 'logs' / 'arm1' / log_name
    deadline = time.monotonic() + 120.0
    while not (log.exists() and log.read_text().count('ended COMPLETED') >= 2):
        if trainer.poll() is not None or time.monotonic() >= deadline:
            trainer.kill()
            raise AssertionError('arm1 never ran a trial')
        time.sleep(0.05)
    return trainer


def test_an_arm_killed_mid_run_leaves_the_run_going_on_the_others(tmp_path):
    out = tmp_path / 'run'
    trainer = _two_arms_after_arm1_ran(out, 'controller_node.log', domain_offset=7)
    try:
        victim = [pid for pid in _node_pids(out / 'logs' / 'arm1' / 'params.yaml')
                  if b'controller_node' in Path(f'/proc/{pid}/cmdline').read_bytes()]
        assert len(victim) == 1
        os.kill(victim[0], signal.SIGKILL)
        output, _ = trainer.communicate(timeout=240)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.returncode == 0, output
    assert 'taking /arm1/run_trial out of the pool' in output and 'controller_node in /arm1 exited' in output
    assert gps_train([str(UR5E), '--agent', 'inprocess', '--out', str(tmp_path / 'ip'), '--iterations', '2']) == 0
    assert _numbers(json.loads((out / 'metrics.json').read_text())) == \
        _numbers(json.loads((tmp_path / 'ip' / 'metrics.json').read_text()))


def test_composed_arms_match_inprocess_and_a_killed_one_leaves_the_run_going(tmp_path):
    """--compose: each arm's sim_node and controller_node in one process. The trials are the
    same (every number equals the in-process run), and SIGKILL to one arm's process leaves the
    run going on the other."""
    out = tmp_path / 'run'
    trainer = _two_arms_after_arm1_ran(out, 'composed_arm.log', '--compose', domain_offset=11)
    try:
        arm1 = _node_pids(out / 'logs' / 'arm1' / 'params.yaml')
        assert len(arm1) == 1 and b'composed_arm' in Path(f'/proc/{arm1[0]}/cmdline').read_bytes()
        assert len(_node_pids(out / 'logs' / 'arm0' / 'params.yaml')) == 1
        os.kill(arm1[0], signal.SIGKILL)
        output, _ = trainer.communicate(timeout=240)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.returncode == 0, output
    assert 'composed, one process per arm' in output
    assert 'taking /arm1/run_trial out of the pool' in output and 'composed_arm in /arm1 exited' in output
    assert gps_train([str(UR5E), '--agent', 'inprocess', '--out', str(tmp_path / 'ip'), '--iterations', '2']) == 0
    assert _numbers(json.loads((out / 'metrics.json').read_text())) == \
        _numbers(json.loads((tmp_path / 'ip' / 'metrics.json').read_text()))


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
    log = out / 'logs' / 'arm_kill' / 'controller_node.log'
    try:
        deadline = time.monotonic() + 240.0
        while not (log.exists() and 'controller_type 1' in log.read_text()):   # a network trial started
            assert trainer.poll() is None and time.monotonic() < deadline, 'no policy trial started'
            executor.spin_once(timeout_sec=0.05)
        n = len(commands)
        while len(commands) < n + 10:                                           # ... and is commanding
            executor.spin_once(timeout_sec=0.01)
        assert any(c.any() for _, c in commands[n:])
        pids = _node_pids(out / 'logs' / 'arm_kill' / 'params.yaml')
        assert len(pids) == 2, pids
        trainer.kill()
        killed = time.monotonic()
        trainer.wait(timeout=10)
        end = time.monotonic() + 10.0
        while _node_pids(out / 'logs' / 'arm_kill' / 'params.yaml') and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert not _node_pids(out / 'logs' / 'arm_kill' / 'params.yaml'), 'a node outlived the trainer'
        zeros_at = [t for t, c in commands if t >= killed and not c.any()]
        assert zeros_at and not commands[-1][1].any(), 'the arm was not sent a zero command'
        assert zeros_at[0] - killed <= 1.0       # the sim's own watchdog would zero it after 0.25 s
    finally:
        if trainer.poll() is None:
            trainer.kill()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_sigkill_mid_sampling_then_resume_equals_an_uninterrupted_run(tmp_path):
    """SIGKILL gps-train --agent ros while iteration 2 samples: no node process is left, and
    --resume continues to metrics and controllers identical to an uninterrupted run."""
    out = tmp_path / 'run'
    env = dict(os.environ, ROS_DOMAIN_ID=str(101 + (os.getpid() + 13) % 100))
    cmd = [sys.executable, '-m', 'gps_agent_ros.train_cli', str(UR5E), '--agent', 'ros', '--out', str(out),
           '--iterations', '3']
    trainer = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / 'logs' / 'arm0' / 'controller_node.log'
    try:
        deadline = time.monotonic() + 180.0
        while not ((out / 'checkpoints' / 'state_001').is_dir() and log.read_text().count('ended COMPLETED') >= 23):
            assert trainer.poll() is None and time.monotonic() < deadline, 'iteration 2 never started sampling'
            time.sleep(0.05)
        pids = _node_pids(out / 'logs' / 'arm0' / 'params.yaml')
        assert len(pids) == 2
        trainer.kill()
        trainer.wait(timeout=10)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    end = time.monotonic() + 10.0
    while any(Path(f'/proc/{pid}').exists() and b'zombie' not in _status(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [pid for pid in pids if Path(f'/proc/{pid}').exists() and b'zombie' not in _status(pid)], \
        'a node outlived gps-train'
    assert not (out / 'checkpoints' / 'state_002').exists()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 2     # never mixed: refused
    resumed = subprocess.run(cmd + ['--resume'], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert 'resuming at iteration 2' in resumed.stdout

    assert gps_train([str(UR5E), '--agent', 'inprocess', '--out', str(tmp_path / 'ip'), '--iterations', '3']) == 0
    assert _numbers(json.loads((out / 'metrics.json').read_text())) == \
        _numbers(json.loads((tmp_path / 'ip' / 'metrics.json').read_text()))
    _, a, _ = load_checkpoint(out / 'checkpoints' / 'iteration_003.npz')
    _, b, _ = load_checkpoint(tmp_path / 'ip' / 'checkpoints' / 'iteration_003.npz')
    assert all(np.array_equal(x.K, y.K) and np.array_equal(x.k, y.k) for x, y in zip(a, b))


def _status(pid: int) -> bytes:
    try:
        return Path(f'/proc/{pid}/status').read_bytes().lower()
    except OSError:
        return b'zombie'


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_cleanly_with_one_line(tmp_path, sig):
    out = tmp_path / 'run'
    env = dict(os.environ, ROS_DOMAIN_ID=str(101 + (os.getpid() + 29 + sig) % 100))
    trainer = subprocess.Popen([sys.executable, '-m', 'gps_agent_ros.train_cli', str(UR5E), '--agent', 'ros',
                                '--out', str(out), '--iterations', '2', '--namespace', 'arm_stop'],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('command_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    commands: list[np.ndarray] = []
    node.create_subscription(Float64MultiArray, '/arm_stop/forward_effort_controller/commands',
                             lambda m: commands.append(np.array(m.data)), 100)
    log = out / 'logs' / 'arm_stop' / 'controller_node.log'
    try:
        deadline = time.monotonic() + 120.0
        while not (log.exists() and log.read_text().count('ended COMPLETED') >= 3):
            assert trainer.poll() is None and time.monotonic() < deadline, 'no trial ran'
            executor.spin_once(timeout_sec=0.05)
        pids = _node_pids(out / 'logs' / 'arm_stop' / 'params.yaml')
        trainer.send_signal(sig)
        out_text, err = trainer.communicate(timeout=30)
        for _ in range(20):
            executor.spin_once(timeout_sec=0.05)
    finally:
        if trainer.poll() is None:
            trainer.kill()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
    # on failure, what gps-train said (a 'gps-train: ...' line on stdout names a failed run)
    assert trainer.returncode == 128 + sig, \
        f'exit {trainer.returncode}\nstdout:\n{out_text[-3000:]}\nstderr:\n{err[-3000:]}'
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f'gps-train: {signal.Signals(sig).name}: stopped; no iteration was complete'], err
    assert not [p for p in pids if Path(f'/proc/{p}').exists() and b'zombie' not in _status(p)]
    assert commands and not commands[-1].any(), 'the arm was not left at zero'


@pytest.mark.parametrize('fault', ['controller_hangs', 'sim_killed'])
def test_a_node_fault_under_attach_fails_within_seconds_naming_the_node(tmp_path, fault):
    """Nodes started elsewhere (--attach): a hung controller_node (SIGSTOP) or a killed sim_node
    ends the run within 5 s with a message naming what went silent."""
    from gps_agent_ros.bringup import Bringup
    ns = f'arm_fault_{fault}_{os.getpid()}'
    env = dict(os.environ, ROS_DOMAIN_ID=str(101 + (os.getpid() + 41 + len(fault)) % 100))
    bringup = Bringup(load_experiment(UR5E), ns, log_dir=tmp_path / 'nodes',
                      domain_id=int(env['ROS_DOMAIN_ID'])).start()
    trainer = subprocess.Popen([sys.executable, '-m', 'gps_agent_ros.train_cli', str(UR5E), '--agent', 'ros',
                                '--attach', '--namespace', ns, '--out', str(tmp_path / 'run'), '--iterations', '2'],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / 'nodes' / 'controller_node.log'
    victim = bringup.procs['controller_node' if fault == 'controller_hangs' else 'sim_node']
    try:
        deadline = time.monotonic() + 120.0
        while log.read_text().count('ended COMPLETED') < 3:
            assert trainer.poll() is None and time.monotonic() < deadline, 'no trial ran'
            time.sleep(0.05)
        victim.send_signal(signal.SIGSTOP if fault == 'controller_hangs' else signal.SIGKILL)
        faulted = time.monotonic()
        output, _ = trainer.communicate(timeout=30)
        took = time.monotonic() - faulted
    finally:
        if trainer.poll() is None:
            trainer.kill()
        victim.send_signal(signal.SIGCONT)
        bringup.stop()
    assert trainer.returncode == 1, output
    # what went silent, named: the controller, or the sim's states (mid-trial) or its reset service
    named = ([f'controller_node at /{ns}/run_trial sent nothing'] if fault == 'controller_hangs'
             else [f'/{ns}/joint_states for', f'reset service /{ns}/reset did not answer'])
    assert any(w in output.splitlines()[-1] for w in named), output
    assert took < 5.0, f'the fault was reported {took:.1f} s after it happened'


def test_panda_with_uncontrolled_fingers_equals_inprocess_through_the_graph(tmp_path):
    """A Franka Panda from pybullet_data (fingers not controlled, reset with the arm at every
    trial): the graph and the in-process agent give the very same numbers."""
    cfg = yaml.safe_load((REPO / 'config' / 'panda_reach.yaml').read_text())
    cfg.update(samples_per_condition=2)
    path = tmp_path / 'panda.yaml'
    path.write_text(yaml.safe_dump(cfg))
    runs = {}
    for agent in ('ros', 'inprocess'):
        assert gps_train([str(path), '--agent', agent, '--iterations', '2', '--out', str(tmp_path / agent)]) == 0
        runs[agent] = json.loads((tmp_path / agent / 'metrics.json').read_text())
    assert _numbers(runs['ros']) == _numbers(runs['inprocess'])
