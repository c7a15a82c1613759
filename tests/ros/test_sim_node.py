"""sim_node as its own process, driven over DDS exactly as the controller node drives it.

Two nodes per module: a lockstep one (no namespace) and a realtime one at 200 Hz in /rt. The
test process talks to them with rclpy on its own context; every wait is bounded.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from gps_agent_ros.pybullet_arm import PyBulletArm
from gps_agent_ros.sim_arm import CommandKind, CommandWatchdog, SimArm, SimArmConfig, realtime_substeps
from gps_interfaces.srv import ResetArm

REPO = Path(__file__).resolve().parents[2]
URDF = REPO / 'urdf' / 'ur5e.urdf'
JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
          'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
HOME = [0.0, -1.5707963, 1.5707963, -1.5707963, -1.5707963, 0.0]
DT, SUBSTEPS, ARMATURE, DAMPING = 0.05, 20, 0.1, [5.0, 5.0, 5.0, 1.0, 1.0, 1.0]
TIMEOUT_S = 0.25
RT_RATE_HZ = 200.0
SIM_PARAMS = {'urdf_path': str(URDF), 'joints': list(JOINTS), 'dt': DT, 'substeps': SUBSTEPS,
              'gravity_compensation': True, 'armature': ARMATURE, 'damping': DAMPING,
              'initial_positions': HOME, 'command_timeout_s': TIMEOUT_S}


# ------------------------------------------------------------------ plumbing
class Probe:
    """The test's side of the graph: publishers, subscriptions and the reset client for one
    sim_node namespace, spun on this thread."""

    def __init__(self, namespace: str = '', clock: bool = False) -> None:
        self.expect_clock = clock  # lockstep: every joint_states comes with a /clock
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sim_probe', namespace=namespace or '/', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.states: list[tuple[float, JointState]] = []   # (arrival monotonic s, msg)
        self.clocks: list[Clock] = []
        self.node.create_subscription(JointState, 'joint_states',
                                      lambda m: self.states.append((time.monotonic(), m)), 100)
        self.node.create_subscription(Clock, '/clock', self.clocks.append,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.pubs = {CommandKind.EFFORT: self.node.create_publisher(
                         Float64MultiArray, 'forward_effort_controller/commands', 10),
                     CommandKind.VELOCITY: self.node.create_publisher(
                         Float64MultiArray, 'forward_velocity_controller/commands', 10)}
        self.reset_client = self.node.create_client(ResetArm, 'reset')

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_connected(self, timeout_s: float = 20.0) -> None:
        ok = self.spin_until(lambda: self.reset_client.service_is_ready()
                             and all(p.get_subscription_count() > 0 for p in self.pubs.values()), timeout_s)
        assert ok, f'sim_node in {self.node.get_namespace()!r} not discovered within {timeout_s} s'
        self.spin_for(0.2)  # let the other side match our writers too

    def publish(self, values: list[float], kind: CommandKind = CommandKind.EFFORT) -> None:
        self.pubs[kind].publish(Float64MultiArray(data=[float(v) for v in values]))

    def reset(self, names: list[str], positions: list[float]) -> ResetArm.Response:
        future = self.reset_client.call_async(ResetArm.Request(joint_names=names, joint_positions=positions))
        assert self.spin_until(future.done, 5.0), 'reset service did not answer within 5 s'
        return future.result()

    def _wait_state(self, n: int, nc: int, what: str) -> JointState:
        """The joint_states number n (and, lockstep, /clock number nc: a separate topic, so it
        may arrive after the state)."""
        done = lambda: len(self.states) > n and (not self.expect_clock or len(self.clocks) > nc)  # noqa: E731
        assert self.spin_until(done, 2.0), f'no joint_states (+ /clock) within 2 s of {what}'
        return self.states[n][1]

    def reset_home(self) -> JointState:
        """Reset to HOME; the response names the stamp of the state it published (in realtime
        ticks keep coming: that state is found by its stamp), later than every state before it."""
        n = len(self.states)
        response = self.reset(list(JOINTS), HOME)
        assert response.success
        stamp = response.stamp.sec * 1_000_000_000 + response.stamp.nanosec
        found = lambda: [m for _, m in self.states[n:] if stamp_ns(m) == stamp]  # noqa: E731
        assert self.spin_until(lambda: bool(found()), 2.0), 'no joint_states with the reset answer\'s stamp'
        state = found()[0]
        if n:
            assert stamp_ns(state) > stamp_ns(self.states[n - 1][1]), 'a reset state stamped no later than before'
        if self.expect_clock:
            assert self.spin_until(lambda: any(stamp_ns(c) == stamp for c in self.clocks), 2.0)
        return state

    def step(self, values: list[float], kind: CommandKind = CommandKind.EFFORT) -> JointState:
        """Lockstep: one command -> the joint_states it produces."""
        n, nc = len(self.states), len(self.clocks)
        self.publish(values, kind)
        return self._wait_state(n, nc, 'a command')

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def stamp_ns(msg: JointState | Clock) -> int:
    t = msg.header.stamp if isinstance(msg, JointState) else msg.clock
    return t.sec * 1_000_000_000 + t.nanosec


@pytest.fixture(scope='module')
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., subprocess.Popen]]:
    """Factory starting sim_node processes; all are stopped (SIGINT, then SIGKILL) at teardown."""
    procs: list[subprocess.Popen] = []
    folder = tmp_path_factory.mktemp('sim_node')

    def start(name: str, namespace: str = '', **params: object) -> subprocess.Popen:
        pfile = folder / f'{name}.yaml'
        pfile.write_text(yaml.safe_dump({'/**': {'ros__parameters': {**SIM_PARAMS, **params}}}))
        cmd = [str(Path(sys.executable).parent / 'sim_node'), '--ros-args', '--params-file', str(pfile)]
        if namespace:
            cmd += ['-r', f'__ns:=/{namespace}']
        with open(folder / f'{name}.log', 'wb') as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        proc.log_path = folder / f'{name}.log'
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)


def _connect(proc: subprocess.Popen, namespace: str, clock: bool) -> Probe:
    probe = Probe(namespace, clock)
    try:
        probe.wait_connected()
    except AssertionError:
        probe.close()
        raise AssertionError(f'sim_node (exit code {proc.poll()}) log:\n{proc.log_path.read_text()[-3000:]}')
    return probe


@pytest.fixture(scope='module')
def lockstep(sim_process: Callable[..., subprocess.Popen]) -> Iterator[Probe]:
    probe = _connect(sim_process('lockstep', mode='lockstep'), '', clock=True)
    yield probe
    probe.close()


@pytest.fixture(scope='module')
def realtime(sim_process: Callable[..., subprocess.Popen]) -> Iterator[Probe]:
    probe = _connect(sim_process('realtime', 'rt', mode='realtime', publish_rate_hz=RT_RATE_HZ), 'rt', clock=False)
    yield probe
    probe.close()


# --------------------------------------------------------- plain classes
def test_watchdog_trips_once_after_timeout_with_passed_in_time():
    dog = CommandWatchdog(0.25)
    assert not dog.check(100.0)                      # never fed: unarmed
    dog.feed(10.0)
    assert not dog.check(10.25) and dog.check(10.2501)
    assert not dog.check(11.0)                       # reported once, then unarmed
    dog.feed(12.0)
    dog.disarm()
    assert not dog.check(20.0)
    with pytest.raises(ValueError, match='positive'):
        CommandWatchdog(0.0)


def test_sim_arm_rejects_bad_commands_and_resets_without_side_effects():
    assert realtime_substeps(1 / 500, DT / SUBSTEPS) == 1 and realtime_substeps(1 / 200, DT / SUBSTEPS) == 2
    sim = SimArm(SimArmConfig(str(URDF), JOINTS, DT, SUBSTEPS, armature=ARMATURE, damping=tuple(DAMPING)))
    try:
        sim.reset(JOINTS, HOME)
        sim.set_command(CommandKind.EFFORT, [1.0] * 6)
        for bad, match in (([1.0] * 5, 'has 5 values, expected 6'), ([math.nan] + [0.0] * 5, 'non-finite')):
            with pytest.raises(ValueError, match=match):
                sim.set_command(CommandKind.EFFORT, bad)
        assert sim.command[1].tolist() == [1.0] * 6
        assert np.all(sim.step() == np.clip([1.0] * 6, -sim.effort_limits, sim.effort_limits))
        q_before = sim.joint_state()[0]
        with pytest.raises(ValueError, match='outside the URDF position limits'):
            sim.reset(['elbow_joint'], [100.0])
        np.testing.assert_array_equal(sim.joint_state()[0], q_before)
        sim.reset(['wrist_3_joint'], [0.5])                       # partial reset keeps the others
        q, qd = sim.joint_state()
        assert q[5] == 0.5 and np.all(q[:5] == q_before[:5]) and np.all(qd == 0.0)
        assert np.all(sim.effort == 0.0) and np.all(sim.command[1] == 0.0)
        assert sim.sim_time_ns == 3 * 50_000_000   # one step and two resets (the refused one: none)
    finally:
        sim.close()


# -------------------------------------------------------------- lockstep
def test_robot_description_is_latched_urdf_text(lockstep: Probe):
    got: list[String] = []
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         reliability=ReliabilityPolicy.RELIABLE)
    lockstep.node.create_subscription(String, '/robot_description', got.append, latched)  # joins late
    assert lockstep.spin_until(lambda: bool(got), 5.0), 'no /robot_description within 5 s'
    assert got[0].data == URDF.read_text()


def test_lockstep_one_state_per_command_matches_pybullet_arm(lockstep: Probe):
    start = lockstep.reset_home()
    assert list(start.name) == list(JOINTS)
    assert list(start.position) == pytest.approx(HOME, abs=1e-12)
    assert list(start.velocity) == [0.0] * 6 and list(start.effort) == [0.0] * 6
    assert stamp_ns(lockstep.clocks[-1]) == stamp_ns(start)
    commands = [[0.0] * 6] * 4 + [[20.0, 0.0, 0.0, 0.0, 0.0, 0.0]] * 6
    n_states, n_clocks = len(lockstep.states), len(lockstep.clocks)
    with PyBulletArm(str(URDF), JOINTS, dt=DT, substeps=SUBSTEPS, gravity_compensation=True,
                     armature=ARMATURE, damping=DAMPING) as reference:
        reference.reset(np.array(start.position))
        prev, pan_speed = start, []
        for k, cmd in enumerate(commands):
            msg = lockstep.step(cmd)
            reference.step(cmd)
            q_ref, qd_ref = reference.joint_state()
            assert stamp_ns(msg) - stamp_ns(prev) == 50_000_000
            assert stamp_ns(lockstep.clocks[-1]) == stamp_ns(msg)
            np.testing.assert_allclose(msg.position, q_ref, rtol=0, atol=1e-9)
            np.testing.assert_allclose(msg.velocity, qd_ref, rtol=0, atol=1e-9)
            assert list(msg.effort) == cmd
            if k == 3:  # gravity compensated, zero torque: the pose holds
                np.testing.assert_allclose(msg.position, HOME, atol=1e-6)
                np.testing.assert_allclose(msg.velocity, 0.0, atol=1e-6)
            pan_speed.append(msg.velocity[0])
            prev = msg
    assert np.all(np.diff(pan_speed[3:]) > 0.0) and pan_speed[-1] > 0.1   # +torque speeds the pan up
    lockstep.spin_for(0.3)
    assert len(lockstep.states) - n_states == len(commands), 'not exactly one joint_states per command'
    assert len(lockstep.clocks) - n_clocks == len(commands), 'not exactly one /clock per command'


def test_lockstep_velocity_command_is_tracked_by_the_servo(lockstep: Probe):
    lockstep.reset_home()
    v_ref = [0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    for _ in range(10):  # 0.5 s, ~25 servo time constants
        msg = lockstep.step(v_ref, CommandKind.VELOCITY)
    np.testing.assert_allclose(msg.velocity, v_ref, atol=0.02)
    assert msg.effort[0] > 0.0


def test_reset_errors_name_the_problem(lockstep: Probe):
    n = len(lockstep.states)
    bad = lockstep.reset(['shoulder_pan_joint', 'bogus_joint'], [0.0, 0.0])
    assert not bad.success and 'bogus_joint' in bad.message
    short = lockstep.reset(['shoulder_pan_joint', 'elbow_joint'], [0.0])
    assert not short.success and '2 joint names but 1 positions' in short.message
    lockstep.spin_for(0.2)
    assert len(lockstep.states) == n, 'a refused reset published joint_states'


def test_non_finite_and_wrong_length_commands_are_dropped(lockstep: Probe):
    lockstep.reset_home()
    first = lockstep.step([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    n_states, n_clocks = len(lockstep.states), len(lockstep.clocks)
    lockstep.publish([math.nan] + [0.0] * 5)
    lockstep.publish([math.inf] * 6)
    lockstep.publish([1.0, 2.0])
    lockstep.publish([2.0] * 6, CommandKind.VELOCITY)
    lockstep.pubs[CommandKind.VELOCITY].publish(Float64MultiArray(data=[]))  # empty != zero
    lockstep.spin_for(0.3)
    assert len(lockstep.states) == n_states + 1, 'only the valid velocity command may step the sim'
    assert len(lockstep.clocks) == n_clocks + 1
    after = lockstep.step([3.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert stamp_ns(after) - stamp_ns(first) == 2 * 50_000_000
    assert list(after.effort) == [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]


# -------------------------------------------------------------- realtime
def test_realtime_watchdog_zeroes_a_stale_command(realtime: Probe):
    realtime.reset_home()
    cmd = [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    t_pub = time.monotonic()
    realtime.publish(cmd)
    realtime.spin_for(0.1)
    realtime.publish([math.nan] * 6)   # dropped: must not refresh the watchdog either
    realtime.publish([1.0])
    def zeroed() -> bool:   # a zero effort after the command's
        efforts = [list(m.effort) for t, m in realtime.states if t >= t_pub]
        return cmd in efforts and [0.0] * 6 in efforts[efforts.index(cmd):]
    assert realtime.spin_until(zeroed, 5.0), 'effort not zeroed after the command went stale'
    realtime.spin_for(0.1)
    seen = [(t, list(m.effort)) for t, m in realtime.states if t >= t_pub]
    on = [i for i, (_, e) in enumerate(seen) if e == cmd]
    assert on, 'the command never showed up as effort'
    off = next(i for i in range(on[0], len(seen)) if seen[i][1] == [0.0] * 6)
    assert all(e == cmd for _, e in seen[on[0]:off]), 'effort changed before the watchdog tripped'
    assert all(e == [0.0] * 6 for _, e in seen[off:])
    # causality only (a loaded machine delays the trip, never advances it); the trip time
    # itself is tested with injected time in test_watchdog_trips_once_after_timeout...
    assert seen[off][0] - t_pub >= TIMEOUT_S - 1e-3


def test_realtime_publishes_at_the_configured_rate(realtime: Probe):
    realtime.spin_for(0.3)
    n = len(realtime.states)
    realtime.spin_for(1.0)
    stamps = np.array([stamp_ns(m) for _, m in realtime.states[n:]], dtype=float) * 1e-9
    assert stamps.size > 10 and np.all(np.diff(stamps) > 0)
    # the median tick interval is the configured period (a loaded machine adds a few long gaps)
    assert np.median(np.diff(stamps)) == pytest.approx(1.0 / RT_RATE_HZ, rel=0.2)
