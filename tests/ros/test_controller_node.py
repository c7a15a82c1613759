"""The real controller_node (a subprocess) against a fake arm and an action client in this process.

The fake arm is a trivial integrator in lockstep: every command u it receives advances it one step
(qd <- gain * u, q <- q + DT * qd, stamp <- stamp + DT, its clock topic too) and publishes the
new joint state, so every recorded state and action can be checked by hand. The controller runs on
sim time (its /clock remapped to the fake arm's), as it would against the PyBullet sim node.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from gps_agent_ros.conversions import (joint_state_msg, result_timing, result_to_arrays,
                                       run_trial_goal, seconds_to_time)
from gps_controllers.state_encoder import StateEncoder
from gps_controllers.trial_runner import TrialStatus
from gps_controllers.trial_spec import LinearGaussianSpec, NetworkSpec, TrialSpec
from gps_core.policies.nn_policy import PolicyNetwork
from gps_core.policies.spec import PolicySpec, policy_spec
from gps_interfaces.action import RunTrial
from gps_interfaces.srv import ResetArm

REPO = Path(__file__).resolve().parents[2]
URDF = REPO / "urdf" / "ur5e.urdf"
JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
          "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
POINTS = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.05], [-0.05, 0.0, 0.05]])  # ur5e_reach.yaml
Q0 = np.array([0.0, -1.5707963, 1.5707963, -1.5707963, -1.5707963, 0.0])
TARGETS_POS = np.array([0.6419, 0.2833, 0.4379])
EFFORT = np.array([150.0, 150.0, 150.0, 28.0, 28.0, 28.0])
DT = 0.01
DX, DU = 30, 6
WAIT = 10.0  # s: bound on any single wait
# namespaces unique to this run: runs whose ROS_DOMAIN_ID happens to coincide stay apart
NS_A, NS_B = f"/arm_a_{os.getpid()}", f"/arm_b_{os.getpid()}"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)


class FakeArm(Node):
    """joint_states + <controller>/commands + ResetArm, lockstep or on a timer."""

    def __init__(self, namespace: str, sim_clock: bool) -> None:
        super().__init__("fake_arm", namespace=namespace)
        self.sim_clock = sim_clock          # stamps from a sim clock (and /clock), else wall
        self.lockstep = True                # False: publish every DT on a timer
        self.gain = 0.001                   # qd = gain * u
        self.stop_after: int | None = None  # lockstep: no states after this many commands
        self.reset_ok = True
        self.q, self.qd, self.u = Q0.copy(), np.zeros(6), np.zeros(6)
        self.t = 1000.0
        self.lock = threading.Lock()
        self.commands: list[np.ndarray] = []
        self.resets = 0
        self._since_reset = 0
        self.state_pub = self.create_publisher(JointState, "joint_states", 10)
        self.clock_pub = self.create_publisher(Clock, "clock", 10) if sim_clock else None
        self.create_subscription(Float64MultiArray, "forward_effort_controller/commands",
                                 self._on_command, 10)
        self.create_service(ResetArm, "reset", self._on_reset)
        self.create_timer(DT, self._on_timer)
        if sim_clock:  # a simulator's clock runs from its start (sim time 0 = "no time yet")
            self.create_timer(0.05, self._on_clock_timer)

    def _on_command(self, msg: Float64MultiArray) -> None:
        u = np.array(msg.data)
        with self.lock:
            self.commands.append(u)
            self._since_reset += 1
            self.u = u
            if self.lockstep and (self.stop_after is None or self._since_reset <= self.stop_after):
                self._step()

    def _on_timer(self) -> None:
        with self.lock:
            if not self.lockstep:
                self._step()

    def _on_clock_timer(self) -> None:
        with self.lock:
            self.clock_pub.publish(Clock(clock=seconds_to_time(self.t)))

    def _on_reset(self, request: ResetArm.Request, response: ResetArm.Response):
        with self.lock:
            self.resets += 1
            if self.reset_ok:
                where = {n: i for i, n in enumerate(request.joint_names)}
                self.q = np.array([request.joint_positions[where[n]] for n in JOINTS])
                self.qd[:] = 0.0
                self.u = np.zeros(6)
                self._since_reset = 0
                # before the response: the controller must cope with the order
                response.stamp = seconds_to_time(self._publish())
            response.success = self.reset_ok
            response.message = "" if self.reset_ok else "gripper stuck"
        return response

    def _step(self) -> None:
        self.qd = self.gain * self.u
        self.q = self.q + DT * self.qd
        self._publish()

    def _publish(self) -> float:
        """joint_states now; returns its stamp (a reset, too, takes one DT of sim time)."""
        if self.sim_clock:
            self.t += DT
            self.clock_pub.publish(Clock(clock=seconds_to_time(self.t)))
            stamp = self.t
        else:
            stamp = self.get_clock().now().nanoseconds * 1e-9
        # joint order of the message differs from the controller's: matched by name
        order = [5, 0, 4, 1, 3, 2]
        self.state_pub.publish(joint_state_msg([JOINTS[i] for i in order], self.q[order],
                                               self.qd[order], stamp))
        return stamp

    def take_commands(self) -> list[np.ndarray]:
        with self.lock:
            out, self.commands = self.commands, []
        return out


def start_controller(namespace: str, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"controller{namespace.replace('/', '_')}.log"
    params = {"joints": "[" + ", ".join(JOINTS) + "]", "ee_link": "tool0",
              "base_link": "base_link",
              "ee_points": "[" + ", ".join(f"{v:.2f}" for v in POINTS.ravel()) + "]",
              "command_interface": "effort", "controller_name": "forward_effort_controller",
              "reset_service": "reset", "reset_timeout_s": "2.0", "stale_timeout_s": "0.4",
              "velocity_margin": "1.0"}
    args = [sys.executable, "-m", "gps_agent_ros.controller_node", "--ros-args",
            "-r", f"__ns:={namespace}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    args += list(extra)
    with open(log, "w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ))
    return proc, log


def stop_process(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    print(f"--- {log.name} ---\n" + log.read_text()[-4000:])


class Harness:
    """Fake arm + action client, spun by their own EventsExecutor in a thread."""

    def __init__(self, namespace: str, sim_clock: bool, *extra: Node) -> None:
        self.arm = FakeArm(namespace, sim_clock)
        self.client_node = Node("trial_client", namespace=namespace)
        self.client = ActionClient(self.client_node, RunTrial, "run_trial")
        self.feedback: list[int] = []
        self._nodes = (self.arm, self.client_node, *extra)
        self._executor = EventsExecutor()
        for node in self._nodes:
            self._executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        # spin_once with a timeout: EventsExecutor.spin() busy-waits in this rclpy release
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        for node in self._nodes:
            self._executor.remove_node(node)
            node.destroy_node()

    def wait_ready(self, proc: subprocess.Popen, model: bool = True) -> None:
        """Up when a probe goal (invalid: no joints) gets its response and result, and (model)
        the robot model is loaded (from robot_description, which arrives on its own schedule).

        server_is_ready() only says this side sees the server; the server may not yet see our
        response readers, and Fast DDS then drops the goal response. An invalid probe finishes
        at once, so a lost probe leaves no trial running.
        """
        def matched():
            assert proc.poll() is None, "controller_node exited"
            return (self.client.server_is_ready()
                    and self.arm.count_publishers("forward_effort_controller/commands") > 0
                    and self.arm.count_subscribers("joint_states") > 0)
        wait_for(matched, 30.0, "controller_node to come up")
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            future = self.client.send_goal_async(RunTrial.Goal(condition="probe"))
            try:
                wait_for(future.done, 1.0, "probe goal response")
            except AssertionError:
                continue
            result = self.result(future.result())
            assert result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER, result
            if model and "no robot model" in result.reason:
                time.sleep(0.05)
                continue
            time.sleep(0.05)
            self.arm.take_commands()
            return
        raise AssertionError("controller_node never answered a goal")

    def send(self, goal: RunTrial.Goal):
        self.feedback = []
        future = self.client.send_goal_async(goal, feedback_callback=lambda fb: self.feedback.append(
            fb.feedback.step))
        wait_for(future.done, WAIT, "goal response")
        return future.result()

    def run(self, goal: RunTrial.Goal, timeout: float = WAIT) -> RunTrial.Result:
        handle = self.send(goal)
        assert handle.accepted
        return self.result(handle, timeout)

    @staticmethod
    def result(handle, timeout: float = WAIT) -> RunTrial.Result:
        future = handle.get_result_async()
        wait_for(future.done, timeout, "result")
        return future.result().result


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="module")
def arm_a(ros, tmp_path_factory):
    """Controller on /arm_a with urdf_path, sim time from the lockstep fake arm."""
    proc, log = start_controller(NS_A, tmp_path_factory.mktemp("a"),
                                 "-p", f"urdf_path:={URDF}", "-p", "use_sim_time:=true",
                                 "-r", f"/clock:={NS_A}/clock")
    h = Harness(NS_A, sim_clock=True)
    try:
        h.wait_ready(proc)
        yield h
    finally:
        stop_process(proc, log)
        h.close()


@pytest.fixture(scope="module")
def encoder() -> StateEncoder:
    return StateEncoder(URDF, JOINTS, "tool0", POINTS, "base_link")


@pytest.fixture(scope="module")
def targets(encoder) -> np.ndarray:
    _, R = encoder.ee_pose(Q0)
    return encoder.targets_from_pose(TARGETS_POS, R)


@pytest.fixture
def arm(arm_a):
    arm_a.arm.lockstep, arm_a.arm.gain, arm_a.arm.stop_after = True, 0.001, None
    arm_a.arm.reset_ok = True
    arm_a.arm.take_commands()
    return arm_a


def goal(targets, K, k, **overrides) -> RunTrial.Goal:
    return with_fields(run_trial_goal(TrialSpec("test/0", tuple(JOINTS), Q0, targets, K.shape[0], DT,
                                                LinearGaussianSpec(K, k))), **overrides)


def policy_goal(targets, network, T, noise=None, **overrides) -> RunTrial.Goal:
    return with_fields(run_trial_goal(TrialSpec("test/0", tuple(JOINTS), Q0, targets, T, DT,
                                                NetworkSpec(policy_spec(network), noise))), **overrides)


def with_fields(g: RunTrial.Goal, **overrides) -> RunTrial.Goal:
    for key, value in overrides.items():
        setattr(g, key, value)
    return g


def expected_states(encoder, targets, U, gain):
    """States of the fake arm under U, from Q0 at rest (x_t before u_t is applied)."""
    q, qd = Q0.copy(), np.zeros(6)
    X = []
    for u in U:
        X.append(encoder.encode(q, qd, targets))
        qd = gain * u
        q = q + DT * qd
    return np.array(X)


def assert_zero_at_end(arm: FakeArm, commands: list[np.ndarray]) -> None:
    """The last command the arm received (now or within 2 s) is all zeros."""
    def last_is_zero():
        commands.extend(arm.take_commands())
        return bool(commands) and not commands[-1].any()
    wait_for(last_is_zero, 2.0, "a zero command")
    assert commands[-1].shape == (6,)


# -------------------------------------------------------------------- cases
def test_invalid_nan_gains_never_command(arm, targets):
    T = 20
    K, k = np.zeros((T, DU, DX)), np.full((T, DU), 5.0)
    K[3, 2, 7] = np.nan
    resets = arm.arm.resets
    result = arm.run(goal(targets, K, k))
    assert result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER
    assert "non-finite" in result.reason and "(3, 2, 7)" in result.reason
    assert result.steps == 0 and arm.arm.resets == resets  # refused before the reset
    time.sleep(0.2)
    commands = arm.arm.take_commands()
    assert commands, "a zero command is published on an invalid goal"
    assert all(not c.any() for c in commands), f"non-zero command sent: {commands}"


@pytest.mark.parametrize("overrides, words", [
    (dict(gains=[0.0] * (20 * DU * DX - 1)), ["gains must have", "3600", "got 3599"]),
    (dict(dx=29), ["gains must have T*du*dx = 20*6*29"]),
    (dict(dx=29, gains=[0.0] * (20 * DU * 29)), ["dx=29", "robot's dx=30"]),
    (dict(controller_type=7), ["controller_type 7 is not one of"]),
    (dict(joint_names=JOINTS[::-1]), ["in its order"]),
    (dict(joint_names=JOINTS[:5]), ["missing ['wrist_3_joint']"]),
    (dict(ee_targets=[0.0] * 6), ["ee_targets must have 9 entries, got 6"]),
    (dict(dt=0.0), ["dt must be a finite number > 0, got 0.0"]),
    (dict(horizon=0), ["horizon T must be >= 1, got 0"]),
])
def test_invalid_goal_names_the_problem(arm, targets, overrides, words):
    T = 20
    result = arm.run(goal(targets, np.zeros((T, DU, DX)), np.ones((T, DU)), **overrides))
    assert result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER
    for word in words:
        assert word in result.reason, result.reason
    time.sleep(0.05)
    assert all(not c.any() for c in arm.arm.take_commands())


def test_constant_offsets_run_T_steps(arm, encoder, targets):
    T = 50
    k = np.tile([200.0, -200.0, 10.0, 50.0, -50.0, 5.0], (T, 1))
    result = arm.run(goal(targets, np.zeros((T, DU, DX)), k))
    assert result.status == RunTrial.Result.STATUS_COMPLETED, result.reason
    X, U = result_to_arrays(result)
    assert X.shape == (T, DX) and U.shape == (T, DU) and result.steps == T
    np.testing.assert_array_equal(U, np.tile([150.0, -150.0, 10.0, 28.0, -28.0, 5.0], (T, 1)))
    np.testing.assert_allclose(X, expected_states(encoder, targets, U, arm.arm.gain), atol=1e-9)
    stamps, latencies, compute = result_timing(result)
    np.testing.assert_allclose(np.diff(stamps), DT, atol=1e-6)
    assert np.all(compute > 0)
    # sim time: no sim time passes between a state and its command (the arm waits for it)
    assert np.all(np.abs(latencies) <= DT + 1e-9), latencies
    print(f"compute per step: median {np.median(compute) * 1e6:.1f} us, max "
          f"{compute.max() * 1e6:.1f} us")
    # progress (every 10 steps, at most at 20 Hz: test_trial_lifecycle) and heartbeats, in order
    assert arm.feedback == sorted(arm.feedback) and all(s <= T for s in arm.feedback)
    commands = arm.arm.take_commands()
    nonzero = [c for c in commands if c.any()]
    np.testing.assert_array_equal(np.array(nonzero), U)  # exactly what was recorded was sent
    assert_zero_at_end(arm.arm, commands)


def test_feedback_gains_and_controller_swap(arm, encoder, targets):
    T = 40
    kp, kd = np.array([40.0, 40.0, 40.0, 8.0, 8.0, 8.0]), np.array([2.0, 2.0, 2.0, 0.5, 0.5, 0.5])
    q_goal = Q0 + 0.3
    K = np.zeros((T, DU, DX))
    K[:, :, :6] = -np.diag(kp)
    K[:, :, 6:12] = -np.diag(kd)
    k = np.tile(kp * q_goal, (T, 1))
    arm.arm.gain = 0.002
    result = arm.run(goal(targets, K, k))
    assert result.status == RunTrial.Result.STATUS_COMPLETED, result.reason
    X, U = result_to_arrays(result)
    np.testing.assert_allclose(U, np.clip(np.einsum("tij,tj->ti", K, X) + k, -EFFORT, EFFORT),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(X, expected_states(encoder, targets, U, 0.002), atol=1e-9)
    assert np.abs(U).max() > 0 and np.abs(U[0]).max() == pytest.approx(12.0)  # kp * 0.3


def test_velocity_limit_aborts(arm, targets):
    T = 20
    arm.arm.gain = 0.05  # 150 N m -> 7.5 rad/s > pi
    result = arm.run(goal(targets, np.zeros((T, DU, DX)), np.full((T, DU), 150.0)))
    assert result.status == RunTrial.Result.STATUS_ABORTED_LIMIT
    assert "velocity" in result.reason and "exceeds" in result.reason, result.reason
    assert result.steps == 1
    assert_zero_at_end(arm.arm, arm.arm.take_commands())


def test_stale_joint_states_abort(arm, targets):
    T = 50
    arm.arm.stop_after = 5  # states 1..5 follow commands 1..5; command 6 gets no answer
    t0 = time.monotonic()
    result = arm.run(goal(targets, np.zeros((T, DU, DX)), np.full((T, DU), 1.0)))
    assert result.status == RunTrial.Result.STATUS_ABORTED_STALE_STATE
    assert "/joint_states for" in result.reason and "6 of 50" in result.reason, result.reason
    assert result.steps == 6 and time.monotonic() - t0 > 0.4
    X, U = result_to_arrays(result)
    assert X.shape == (6, DX) and np.all(U == 1.0)
    commands = arm.arm.take_commands()
    assert len(commands) >= 7 and commands[5].any()  # the unanswered command 6, then zeros
    assert_zero_at_end(arm.arm, commands)


def test_reset_failure(arm, targets):
    arm.arm.reset_ok = False
    result = arm.run(goal(targets, np.zeros((10, DU, DX)), np.ones((10, DU))))
    assert result.status == RunTrial.Result.STATUS_RESET_FAILED
    assert "gripper stuck" in result.reason
    time.sleep(0.05)
    assert all(not c.any() for c in arm.arm.take_commands())


def test_cancel_and_second_goal_rejected(arm, targets):
    T = 1000  # 10 s of arm time at DT on a timer: cancelled long before
    arm.arm.lockstep = False
    handle = arm.send(goal(targets, np.zeros((T, DU, DX)), np.full((T, DU), 2.0)))
    assert handle.accepted
    wait_for(lambda: max(arm.feedback, default=0) >= 20, WAIT, "20 steps")
    second = arm.send(goal(targets, np.zeros((5, DU, DX)), np.zeros((5, DU))))
    assert not second.accepted  # one trial at a time
    cancel = handle.cancel_goal_async()
    wait_for(cancel.done, WAIT, "cancel response")
    result = arm.result(handle)
    assert result.status == RunTrial.Result.STATUS_CANCELLED
    assert "cancelled" in result.reason
    assert 20 <= result.steps < T
    _, U = result_to_arrays(result)
    assert np.all(U == 2.0)
    time.sleep(0.1)
    commands = arm.arm.take_commands()
    assert_zero_at_end(arm.arm, commands)
    arm.arm.lockstep = True


# ------------------------------------------------------------ network policies
@pytest.fixture(scope="module")
def network(encoder, targets) -> PolicyNetwork:
    """A small tanh MLP with fitted normalization, as the trainer sends it."""
    import torch
    net = PolicyNetwork(DX, DU, (16, 16), "tanh", torch.Generator().manual_seed(3))
    rng = np.random.default_rng(0)
    q = Q0 + 0.1 * rng.standard_normal((200, 6))
    net.fit_normalization(np.stack([encoder.encode(qi, 0.1 * rng.standard_normal(6), targets) for qi in q]))
    with torch.no_grad():
        net.net[-1].weight.mul_(100.0)  # torques of tens of N m: a trajectory that moves
    return net


@pytest.mark.parametrize("noisy", [False, True])
def test_policy_trial_runs_the_network(arm, encoder, targets, network, noisy):
    """u_t = clip(mu_theta(x_t) + noise_t): checked against the network itself, and the states
    against the fake arm's integrator."""
    T = 30
    noise = np.random.default_rng(1).normal(scale=5.0, size=(T, DU)) if noisy else None
    result = arm.run(policy_goal(targets, network, T, noise))
    assert result.status == RunTrial.Result.STATUS_COMPLETED, result.reason
    X, U = result_to_arrays(result)
    expected_u = network.mean_np(X) + (0.0 if noise is None else noise)
    np.testing.assert_allclose(U, np.clip(expected_u, -EFFORT, EFFORT), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(X, expected_states(encoder, targets, U, arm.arm.gain), atol=1e-9)
    assert np.abs(U).max() > 1.0
    assert_zero_at_end(arm.arm, arm.arm.take_commands())


def _nan_weight(net: PolicyNetwork) -> dict:
    spec = policy_spec(net)
    weight = spec.parameters["net.0.weight"].copy()
    weight[2, 5] = np.nan
    _, values = PolicySpec(spec.architecture, {**spec.parameters, "net.0.weight": weight}).flat()
    return dict(policy_parameters=values.tolist())


@pytest.mark.parametrize("make, words", [
    (lambda net, g: _nan_weight(net), ["'net.0.weight'", "1 non-finite"]),
    (lambda net, g: dict(policy_parameters=list(g.policy_parameters)[:-1]), ["needs", "values"]),
    (lambda net, g: dict(policy_parameter_names=list(g.policy_parameter_names)[1:]), ["missing ['obs_mean']"]),
    (lambda net, g: dict(policy_architecture='{"kind": "transformer", "dO": 30, "dU": 6}'),
     ["unknown policy architecture kind 'transformer'", "mlp"]),
    (lambda net, g: dict(policy_architecture="not json"), ["not valid JSON"]),
    (lambda net, g: dict(policy_noise=[0.0] * 7), ["policy_noise must be empty or have T*du"]),
    (lambda net, g: dict(policy_noise=[np.inf] * (20 * DU)), ["noise", "non-finite"]),
])
def test_invalid_policy_is_rejected_with_a_reason(arm, targets, network, make, words):
    g = policy_goal(targets, network, 20, np.zeros((20, DU)))
    g = with_fields(g, **make(network, g))
    resets = arm.arm.resets
    result = arm.run(g)
    assert result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER, result.reason
    for word in words:
        assert word in result.reason, result.reason
    assert result.steps == 0 and arm.arm.resets == resets  # refused before the reset
    time.sleep(0.1)
    commands = arm.arm.take_commands()
    assert commands and all(not c.any() for c in commands), f"non-zero command sent: {commands}"


@pytest.mark.parametrize("dO, dU, words", [
    (DX - 1, DU, ["observation size dO=29", "30"]),
    (DX, DU - 1, ["action size dU=5", "du=6"]),
])
def test_policy_for_another_robot_is_rejected(arm, targets, dO, dU, words):
    import torch
    net = PolicyNetwork(dO, dU, (8,), "tanh", torch.Generator().manual_seed(0))
    result = arm.run(policy_goal(targets, net, 10))
    assert result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER
    for word in words:
        assert word in result.reason, result.reason
    time.sleep(0.05)
    assert all(not c.any() for c in arm.arm.take_commands())


def test_status_codes_match_the_action():
    for status in TrialStatus:
        assert getattr(RunTrial.Result, f"STATUS_{status.name}") == status.value


# --------------------- robot_description instead of urdf_path, then SIGTERM mid-trial
def test_robot_description_and_sigterm_zeroes(ros, tmp_path, targets):
    proc, log = start_controller(NS_B, tmp_path)  # urdf_path empty: robot_description
    description_node = Node("description", namespace=NS_B)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    description_node.create_publisher(String, "robot_description", latched).publish(
        String(data=URDF.read_text()))
    h = Harness(NS_B, False, description_node)
    h.arm.lockstep = False
    try:
        h.wait_ready(proc)
        T = 10
        ok = h.run(goal(targets, np.zeros((T, DU, DX)), np.full((T, DU), 3.0)))
        assert ok.status == RunTrial.Result.STATUS_COMPLETED, ok.reason
        assert ok.steps == T and ok.dx == DX
        handle = h.send(goal(targets, np.zeros((1000, DU, DX)), np.full((1000, DU), 3.0)))
        assert handle.accepted
        result_future = handle.get_result_async()
        wait_for(lambda: max(h.feedback, default=0) >= 10, WAIT, "the long trial to run")
        h.arm.take_commands()
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(result_future.done, 5.0, "the result after SIGTERM")
        answered = time.monotonic() - signalled
        result = result_future.result().result
        assert result.status == RunTrial.Result.STATUS_CANCELLED, result.reason
        assert "SIGTERM" in result.reason and 10 <= result.steps < 1000
        assert answered < 1.0, f"the CANCELLED result took {answered:.2f} s"
        assert proc.wait(timeout=5) == 0
        time.sleep(0.2)
        commands = h.arm.take_commands()
        assert commands and not commands[-1].any(), "the last command before exit is zero"
    finally:
        stop_process(proc, log)
        h.close()
