"""A rehearsal of training on a real UR arm, without a ROS install: `gps-train --attach` against
controller_node and ur_reset_node, started as processes with the parameters launch/ur.launch.py
gives them (its own code, run through the launch API stand-in), and the fake ur_robot_driver
(tests/fakes/ur_driver.py: controller_manager, the trajectory controllers' FollowJointTrajectory,
the forward command controllers, joint_states, robot_program_running, /robot_description).

For each recorded driver release and the initial controller states its launch leaves, one
training iteration runs every trial through the reset node (list_controllers, switches, the
move, verification) and controller_node (commands on the forward controller); the fake arm
moves under those commands. Then the ways a trial on a real arm ends early: the robot program
stops mid-trial, a reset stops short of the start pose.

Timing: the fake publishes joint_states at RATE_HZ (a real e-Series: 500 Hz) and integrates the
arm in real time, so a trial takes T * dt of wall time and each reset the reset node's
min_move_duration_s (ur.launch.py leaves it at its default); T and the samples per condition are
cut down, dt is the experiment's. Every wait is bounded generously; nothing asserts how fast
anything ran.
"""
from __future__ import annotations

import ctypes
import json
import math
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
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rosbags.highlevel import AnyReader

from fakes.launch_api import ament_prefix, evaluate
from fakes.ur_driver import HOME, UR_JOINTS, ArmModel, FakeURDriver, Spinning, releases
from gps_agent_ros.agent import trial_spec
from gps_agent_ros.bringup import node_executable, params_file, ros_environment
from gps_agent_ros.conversions import run_trial_goal
from gps_agent_ros.experiment import Experiment
from gps_controllers.trial_spec import LinearGaussianSpec
from gps_core.config import load_experiment
from gps_interfaces.action import RunTrial

REPO = Path(__file__).resolve().parents[2]
UR_LAUNCH, UR5E = REPO / 'launch' / 'ur.launch.py', REPO / 'config' / 'ur5e_reach.yaml'
URDF = REPO / 'urdf' / 'ur5e.urdf'
RELEASES = {r.name: r for r in releases()}
RATE_HZ = 100.0             # the fake's joint_states: 5 per control period of 0.05 s
HORIZON, SAMPLES = 20, 2    # per trial / per condition (the experiment: 100 / 5)
WAIT_S = 120.0
R = RunTrial.Result

# (release, trial command interface, driver launch arguments): each release's default launch,
# another initial joint controller (plain JTC active, the scaled one inactive), and no joint
# controller active at all. jazzy 3.0 has no forward_effort_controller: velocity trials there.
CASES = [('jazzy-3.0', 'velocity', {}),
         ('main-032aad6', 'effort', {}),
         ('main-032aad6', 'effort', {'initial_joint_controller': 'joint_trajectory_controller'}),
         ('main-032aad6', 'velocity', {'activate_joint_controller': 'false'})]


def case_id(case) -> str:
    release, interface, launch = case
    return f'{release}-{interface}-' + ('+'.join(f'{k}={v}' for k, v in launch.items()) or 'defaults')


# ----------------------------------------------------------------------------- the graph
def experiment_copy(folder: Path, interface: str, horizon: int = HORIZON, samples: int = SAMPLES) -> Path:
    """config/ur5e_reach.yaml with a shorter T and fewer samples (same dt, conditions, costs).
    For velocity trials the start controller's gains become velocity gains: with qd = u, the
    torque gains' kd = 5 would make u_t = -kd u_(t-1) + ... diverge."""
    doc = yaml.safe_load(UR5E.read_text())
    doc['robot']['urdf'] = str(URDF)
    doc.update(T=horizon, samples_per_condition=samples, iterations=1)
    if interface == 'velocity':
        doc['algorithm']['init'].update(kp=[2.0] * 6, kd=[0.0] * 6, init_var=[0.01] * 6)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'ur5e_reach_{interface}_T{horizon}.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


def ur_launch_parameters(prefix: Path, experiment: Path, interface: str) -> dict[str, dict]:
    """node -> parameters, as `ros2 launch gps_agent_ros ur.launch.py` gives them on a real arm."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('AMENT_PREFIX_PATH', os.pathsep.join([str(prefix), os.environ.get('AMENT_PREFIX_PATH', '')]))
        record = evaluate(UR_LAUNCH, {'robot_ip': '192.168.1.10', 'ur_type': 'ur5e', 'command_interface': interface,
                                      'experiment': str(experiment)})
    nodes = {n.executable: n for n in record.nodes}
    assert set(nodes) == {'controller_node', 'ur_reset_node'} and all(not n.namespace for n in nodes.values())
    return {name: node.parameters for name, node in nodes.items()}


def _die_with_this_process() -> None:
    """preexec_fn: SIGTERM when the test process dies, however it dies (Linux prctl)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)   # PR_SET_PDEATHSIG


class NodeProcesses:
    """The nodes as separate processes (the installed console scripts), in the root namespace
    as ur.launch.py starts them, each with its log file; they die with the test process."""

    def __init__(self, parameters: dict[str, dict], log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        pfile = log_dir / 'params.yaml'
        pfile.write_text(yaml.safe_dump(params_file(parameters, '')))
        self.procs: dict[str, subprocess.Popen] = {}
        for name in parameters:
            with open(log_dir / f'{name}.log', 'wb') as log:
                self.procs[name] = subprocess.Popen(
                    [node_executable(name), '--ros-args', '--params-file', str(pfile)],
                    env=ros_environment(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_this_process)

    def log(self, name: str) -> str:
        return (self.log_dir / f'{name}.log').read_text(errors='replace')

    def check(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f'{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}'

    def stop(self) -> None:
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in self.procs.values() if p.poll() is None]
            for p in alive:
                p.send_signal(sig)
            for p in alive:
                try:
                    p.wait(wait)
                except subprocess.TimeoutExpired:
                    pass


class Probe:
    """This test's RunTrial client on /run_trial (its own context, spun from the test thread);
    every wait also checks that the nodes still run."""

    def __init__(self, nodes: NodeProcesses) -> None:
        self.nodes = nodes
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('rehearsal_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.client = ActionClient(self.node, RunTrial, '/run_trial')
        self.feedback: list[tuple[int, str]] = []
        assert self.spin_until(self.client.server_is_ready), 'no /run_trial server'

    def spin_until(self, done, timeout_s: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            self.nodes.check()
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def send(self, goal: RunTrial.Goal, timeout_s: float | None = None):
        """The accepted goal's result future (feedback into self.feedback). With timeout_s: None
        when no goal response came within it; without: fail after WAIT_S."""
        self.feedback = []
        future = self.client.send_goal_async(
            goal, feedback_callback=lambda m: self.feedback.append((m.feedback.step, m.feedback.phase)))
        if not self.spin_until(future.done, WAIT_S if timeout_s is None else timeout_s):
            assert timeout_s is not None, 'no goal response'
            return None
        assert future.result().accepted
        return future.result().get_result_async()

    def result(self, future) -> RunTrial.Result:
        assert self.spin_until(future.done), f'no result within {WAIT_S} s'
        return future.result().result

    def close(self) -> None:
        self.client.destroy()
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


class Rehearsal:
    """Fake driver (own context and thread) + controller_node and ur_reset_node processes, and
    this test's RunTrial client; ready for trials when built (what an operator waits for)."""

    def __init__(self, tmp: Path, release: str, interface: str, launch: dict[str, str], horizon: int = HORIZON,
                 samples: int = SAMPLES) -> None:
        self.release = RELEASES[release]
        self.interface = interface
        self.trial_controller = f'forward_{interface}_controller'
        self.experiment = experiment_copy(tmp, interface, horizon, samples)
        params = ur_launch_parameters(ament_prefix(tmp / 'prefix', REPO), self.experiment, interface)
        assert params['controller_node']['robot_program_topic'] == 'io_and_status_controller/robot_program_running'
        assert params['controller_node']['urdf_path'] == ''    # the URDF comes from /robot_description
        states = self.release.initial_states(launch)
        self.driver_spin = Spinning(lambda ctx: FakeURDriver(ctx, self.release, states=states, rate_hz=RATE_HZ,
                                                             robot_description=URDF.read_text()))
        self.driver: FakeURDriver = self.driver_spin.obj
        self.nodes = NodeProcesses(params, tmp / 'logs')
        self.probe: Probe | None = None
        try:
            self.probe = Probe(self.nodes)
            self.wait_ready()
        except BaseException:
            self.close()
            raise

    def wait_ready(self) -> None:
        """The reset node's requests reach the driver (seen from the driver's side of discovery)
        and controller_node has its robot model from /robot_description: an empty goal is then
        refused for what it lacks, not for want of a model."""
        driver = self.driver.node
        reset = f'/{self.reset_controller()}/follow_joint_trajectory/_action/send_goal'
        assert self.probe.spin_until(lambda: driver.count_clients('/controller_manager/list_controllers') > 0
                                     and driver.count_clients('/controller_manager/switch_controller') > 0
                                     and driver.count_clients(reset) > 0
                                     and driver.count_subscribers('/joint_states') >= 2), 'nodes not discovered'
        time.sleep(0.5)     # and the driver's servers match the nodes' request writers

        def has_model() -> bool:
            # a server that has not yet matched this client's response reader drops its answer
            # (DDS discovery is not symmetric): a handshake without an answer is sent again
            pending = self.probe.send(RunTrial.Goal(condition='handshake'), timeout_s=5.0)
            if pending is None:
                return False
            result = self.probe.result(pending)
            assert result.status == R.STATUS_INVALID_CONTROLLER, result.reason
            if 'robot_description' in result.reason:
                time.sleep(0.2)
                return False
            return True
        assert self.probe.spin_until(has_model), 'controller_node never got the robot model'

    def reset_controller(self) -> str:
        return next(c for c in ('scaled_joint_trajectory_controller', 'joint_trajectory_controller')
                    if c in self.release.controllers)

    def motion_controllers(self) -> list[str]:
        return sorted(n for n, s in self.driver.cm.states().items()
                      if s == 'active' and self.release.interface_of(n) is not None)

    def close(self) -> None:
        if self.probe is not None:
            self.probe.close()
        self.nodes.stop()
        self.driver_spin.close()


# ----------------------------------------------------------------------------- the fake arm
def test_the_fake_arm_follows_only_the_active_forward_controllers_commands():
    """The plain model behind the fake (injected time): what the rehearsal's arm does."""
    arm = ArmModel(UR_JOINTS, [0.0] * 6, inertia=2.0, damping=1.0)
    arm.step(0.0)
    arm.command([1.0] * 6)                  # no forward controller active: never applied
    arm.step(0.1)
    assert arm.q == [0.0] * 6 and arm.qd == [0.0] * 6

    arm.set_forward('velocity')
    arm.command([0.5, -0.5, 0.0, 0.1, 0.0, 0.0])
    arm.step(0.3)                           # 0.2 s at the held velocities
    assert arm.q == pytest.approx([0.1, -0.1, 0.0, 0.02, 0.0, 0.0])
    arm.set_forward('effort')               # a new controller: the old command is gone
    arm.step(0.4)
    assert arm.held is None and arm.qd == [0.0] * 6

    q_start = list(arm.q)
    arm.command([2.0] * 6)                  # I qdd = tau - b qd from rest: qd(t) = tau/b (1 - e^(-b t / I))
    arm.step(1.4)
    tau, b, inertia, t = 2.0, 1.0, 2.0, 1.0
    assert arm.qd == pytest.approx([tau / b * (1 - math.exp(-b * t / inertia))] * 6, rel=5e-3)
    travelled = tau / b * (t - inertia / b * (1 - math.exp(-b * t / inertia)))
    assert [q - q0 for q, q0 in zip(arm.q, q_start)] == pytest.approx([travelled] * 6, rel=1e-2)
    arm.set_forward(None)                   # deactivated (e.g. the reset controller takes over): holds
    held = list(arm.q)
    arm.step(2.0)
    assert arm.q == held and arm.qd == [0.0] * 6


# ----------------------------------------------------------------------------- training
def recorded_trials(path: Path) -> list[dict]:
    """The MCAP recording's trials (read with rosbags): record, stamps [T] ns, q [T, 6], U [T, 6]."""
    trials: list[dict] = []
    with AnyReader([path]) as reader:
        for conn, _t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic.endswith('gps/trial'):
                trials.append({'record': json.loads(msg.data), 'stamps': [], 'q': [], 'U': []})
            elif conn.topic.endswith('joint_states'):
                trials[-1]['stamps'].append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
                order = [list(msg.name).index(j) for j in UR_JOINTS]
                trials[-1]['q'].append(np.asarray(msg.position)[order])
            elif conn.topic.endswith('commands'):
                trials[-1]['U'].append(tuple(msg.data))
    return trials


@pytest.mark.parametrize('case', CASES, ids=[case_id(c) for c in CASES])
def test_an_iteration_runs_through_the_reset_and_controller_nodes(tmp_path, case):
    release, interface, launch = case
    g = Rehearsal(tmp_path, release, interface, launch)
    try:
        out = tmp_path / 'run'
        train = subprocess.run([sys.executable, '-m', 'gps_agent_ros.train_cli', str(g.experiment), '--agent', 'ros',
                                '--attach', '--namespace', '/', '--iterations', '1', '--out', str(out)],
                               env=ros_environment(), capture_output=True, text=True, timeout=600)
        g.nodes.check()
        assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
        trials = 4 * SAMPLES

        metrics = json.loads((out / 'metrics.json').read_text())
        (record,) = metrics['iterations']
        assert record['samples'] == trials and math.isfinite(record['mean_cost'])
        assert all(math.isfinite(d) for d in record['final_ee_distance'])
        # every trial was reset by one trajectory goal to its start pose (none failed and was
        # retried), from whatever state the driver's launch left the controllers in; the
        # trials' controller has the arm now
        assert [np.round(goal, 6).tolist() for goal in g.driver.arm.goals] == [np.round(HOME, 6).tolist()] * trials
        assert g.motion_controllers() == [g.trial_controller]
        # controller_node commanded only the trial controller; what it sent while another
        # controller had the arm (and was dropped) was zeros
        applied = g.driver.commands
        assert {c for _, c, _ in applied} == {g.trial_controller}
        assert len(applied) >= trials * HORIZON
        assert all(not any(v) for _, _, v, _ in g.driver.dropped_commands)

        # the samples are the fake arm's own states under those commands
        recorded = recorded_trials(out / 'trials' / 'iteration_001.mcap')
        assert len(recorded) == trials
        sent = {v for _, _, v in applied}
        published = np.array(sorted(g.driver.published))
        for trial in recorded:
            name = f"{trial['record']['condition']} sample {trial['record']['sample']}"
            assert len(trial['q']) == HORIZON and set(trial['U']) <= sent, name
            q = np.array(trial['q'])
            assert np.abs(q[0] - HOME).max() <= 0.01, f'{name} did not start at q0'
            # rows taken from a joint_states message (skipped steps are interpolated) equal
            # what the fake published with that stamp (the stamps went through float seconds)
            stamps = np.array(trial['stamps'])
            right = np.searchsorted(published, stamps).clip(1, len(published) - 1)
            nearest = np.where(np.abs(published[right] - stamps) < np.abs(published[right - 1] - stamps),
                               published[right], published[right - 1])
            measured = [(i, int(s)) for i, s in enumerate(nearest) if abs(int(s) - int(stamps[i])) < 1000]
            assert len(measured) >= 2, name
            for i, stamp in measured:
                assert q[i] == pytest.approx(g.driver.published[stamp], abs=1e-12), name
            moved = float(np.abs(q - q[0]).max())
            assert moved > 1e-3, f'{name}: the arm did not move under the commands (max |q - q_0| {moved:g} rad)'
    finally:
        g.close()


# ----------------------------------------------------------------------------- trials ending early
def hold_goal(experiment: Path) -> RunTrial.Goal:
    """A trial of the experiment's start controller without noise, on its first condition."""
    exp = Experiment(load_experiment(experiment))
    pol = exp.init_policies()[0]
    return run_trial_goal(trial_spec(exp, exp.conditions[0], LinearGaussianSpec(pol.K, pol.k)))


@pytest.fixture(scope='module')
def arm(tmp_path_factory):
    """main-032aad6 with its default launch, effort trials; a long and a short trial."""
    tmp = tmp_path_factory.mktemp('rehearsal')
    g = Rehearsal(tmp, 'main-032aad6', 'effort', {}, horizon=HORIZON)
    probe = g.probe
    g.long_goal = hold_goal(experiment_copy(tmp / 'long', 'effort', horizon=400))     # 20 s
    g.short_goal = hold_goal(g.experiment)
    try:
        yield g, probe
    finally:
        g.close()


def test_a_trial_aborts_when_the_robot_program_stops_and_runs_again_once_it_is_back(arm):
    g, probe = arm
    pending = probe.send(g.long_goal)
    assert probe.spin_until(lambda: any(phase == 'running' and step >= 10 for step, phase in probe.feedback))
    stopped = g.driver.node.get_clock().now().nanoseconds * 1e-9
    g.driver.set_program_running(False)     # the controller_stopper deactivates the forward controller
    result = probe.result(pending)
    assert result.status == R.STATUS_ABORTED_ROBOT, result.reason
    assert 'the robot program stopped (io_and_status_controller/robot_program_running turned false)' in result.reason
    assert 10 <= result.steps < 400
    # controller_node's last word is a zero command (applied or, once the stopper deactivated the
    # forward controller, dropped: the two race, as they do on the driver)
    received = sorted([(t, v) for t, _, v in g.driver.commands if t >= stopped]
                      + [(t, v) for t, _, v, _ in g.driver.dropped_commands if t >= stopped])
    assert received and not any(received[-1][1])

    # while the program is stopped, a trial is refused before the arm is touched
    goals = len(g.driver.arm.goals)
    result = probe.result(probe.send(g.short_goal))
    assert result.status == R.STATUS_ABORTED_ROBOT and 'the robot program is not running' in result.reason
    assert result.steps == 0 and len(g.driver.arm.goals) == goals

    # the program runs again: the next trial resets (re-activating the controllers the stopper
    # deactivated) and completes
    g.driver.set_program_running(True)

    def completed() -> bool:
        result = probe.result(probe.send(g.short_goal))
        assert result.status in (R.STATUS_COMPLETED, R.STATUS_ABORTED_ROBOT), result.reason
        return result.status == R.STATUS_COMPLETED
    assert probe.spin_until(completed)
    assert g.motion_controllers() == ['forward_effort_controller']


def test_a_reset_that_stops_short_of_q0_fails_the_trial_with_the_error(arm):
    g, probe = arm
    g.driver.set_program_running(True)
    g.driver.arm.stop_short = {'elbow_joint': 0.04}
    try:
        applied = len(g.driver.commands)
        result = probe.result(probe.send(g.short_goal))
    finally:
        g.driver.arm.stop_short = {}
    assert result.status == R.STATUS_RESET_FAILED
    assert result.reason.startswith('reset service /reset failed: reset failed while verifying the start pose')
    assert 'the arm did not reach the start pose: elbow_joint is 0.0400 rad from q0' in result.reason
    assert result.steps == 0 and len(g.driver.commands) == applied       # the trial never commanded the arm
    assert g.motion_controllers() == ['scaled_joint_trajectory_controller']  # holding where it stopped
    # the next trial starts from there and runs
    result = probe.result(probe.send(g.short_goal))
    assert result.status == R.STATUS_COMPLETED, result.reason
