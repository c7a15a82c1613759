"""The real node graph over DDS on loopback: sim_node and controller_node started as separate
processes by the bringup, driven from this process through the RunTrial action."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from gps_agent_ros.bringup import Bringup
from gps_agent_ros.agent import TrialRequest, trial_spec
from gps_agent_ros.conversions import run_trial_goal
from gps_agent_ros.experiment import Experiment
from gps_agent_ros.inprocess_agent import InProcessAgent
from gps_agent_ros.ros_agent import RosAgent
from gps_controllers.mpc_controller import MPCSpec
from gps_controllers.trial_spec import LinearGaussianSpec, NetworkSpec
from gps_core.config import load_experiment
from gps_core.disturbance_plan import DisturbancePlan, Impulse
from gps_core.policies import smoothed_noise
from gps_core.policies.nn_policy import PolicyNetwork
from gps_core.policies.spec import policy_spec
from gps_core.traj_opt.mpc import MPCProblem
from gps_interfaces.action import RunTrial
from gps_interfaces.srv import ResetArm

REPO = Path(__file__).resolve().parents[2]
CFG = load_experiment(REPO / 'config' / 'ur5e_reach.yaml')


class Probe:
    """A test node that records the arm's commands and efforts, plus a RosAgent on it."""

    def __init__(self, namespace: str, bringup: Bringup):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f'probe_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.commands: list[np.ndarray] = []
        self.efforts: list[tuple[float, np.ndarray]] = []
        self.node.create_subscription(Float64MultiArray, f'/{namespace}/forward_effort_controller/commands',
                                      lambda m: self.commands.append(np.array(m.data)), 100)
        self.node.create_subscription(JointState, f'/{namespace}/joint_states',
                                      lambda m: self.efforts.append((time.monotonic(), np.array(m.effort))), 100)
        self.exp = Experiment(CFG)
        self.agent = RosAgent(self.node, self.executor, self.exp, namespace, arm_health=lambda _ns: bringup.dead())

    def accepted(self, goal: RunTrial.Goal, timeout: float = 10.0):
        """Send a raw goal to the arm's controller_node; its (accepted) goal handle."""
        future = self.agent.arms[0].client.send_goal_async(goal)
        self.spin_until(future.done, timeout, 'the goal response')
        handle = future.result()
        assert handle.accepted
        return handle

    def result(self, goal: RunTrial.Goal, timeout: float = 20.0) -> RunTrial.Result:
        future = self.accepted(goal).get_result_async()
        self.spin_until(future.done, timeout, 'the result')
        return future.result().result

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, predicate, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f'timed out after {timeout} s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self.agent.close()
        self.node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


def controller(exp: Experiment, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    pol = exp.init_policies()[0]
    return pol.K, pol.fold_noise(smoothed_noise(np.random.default_rng(seed), pol.T, pol.dU, 2.0))


def lg_goal(exp: Experiment, m: int, K: np.ndarray, k: np.ndarray) -> RunTrial.Goal:
    return run_trial_goal(trial_spec(exp, exp.conditions[m], LinearGaussianSpec(K, k)))


def network(exp: Experiment) -> PolicyNetwork:
    """An untrained tanh MLP whose torques hold the start pose roughly and then move (its
    normalization fitted on states near the start)."""
    import torch
    net = PolicyNetwork(exp.dX, exp.dU, (32, 32), 'tanh', torch.Generator().manual_seed(7))
    cond = exp.conditions[0]
    rng = np.random.default_rng(0)
    net.fit_normalization(np.stack([exp.encoder.encode(cond.q0 + 0.05 * rng.standard_normal(6),
                                                       0.1 * rng.standard_normal(6), cond.targets)
                                    for _ in range(100)]))
    with torch.no_grad():
        net.net[-1].weight.mul_(2.0)
    return net


def mpc_teacher(exp: Experiment, horizon: int = 10, replan_every: int = 2) -> MPCSpec:
    """An MPC teacher of the arm's state size on a crude model (unit joint inertia, q += dt qd,
    qd += dt u, the end-effector block held): its cost damps the joint velocities and rewards a
    small constant torque, so the re-solved law moves the arm gently."""
    T, dX, dU, dt, nj = CFG.T, exp.dX, exp.dU, CFG.dt, exp.dU
    Fm = np.zeros((T, dX, dX + dU))
    Fm[:, :, :dX] = np.eye(dX)
    Fm[:, :nj, nj:2 * nj] = dt * np.eye(nj)
    Fm[:, nj:2 * nj, dX:] = dt * np.eye(nj)
    Cm = np.zeros((T, dX + dU, dX + dU))
    Cm[:, nj:2 * nj, nj:2 * nj] = 1.0 * np.eye(nj)
    Cm[:, dX:, dX:] = 0.1 * np.eye(dU)
    cv = np.zeros((T, dX + dU))
    cv[:, dX:] = -0.2
    return MPCSpec(MPCProblem(Fm, np.zeros((T, dX)), Cm, cv, horizon, replan_every),
                   0.5 * smoothed_noise(np.random.default_rng(5), T, dU, 2.0))


def push(start_step: int = 20) -> DisturbancePlan:
    """25 N on the forearm for 40 ms, starting inside control step start_step (physics substeps)."""
    n = CFG.sim.substeps
    return DisturbancePlan('forearm_link', 'force', CFG.dt / n, (Impulse(start_step * n + 3, 16, (0.0, 25.0, 0.0)),))


@pytest.fixture(scope='module')
def lockstep(tmp_path_factory):
    ns = f'graph_lockstep_{os.getpid()}'
    bringup = Bringup(CFG, ns, 'lockstep', tmp_path_factory.mktemp('lockstep_logs')).start()
    probe = Probe(ns, bringup)
    yield bringup, probe
    probe.close()
    bringup.stop()


def test_trial_through_the_graph_equals_the_inprocess_trial(lockstep):
    _, probe = lockstep
    K, k = controller(probe.exp)
    net = network(probe.exp)
    noise = smoothed_noise(np.random.default_rng(3), CFG.T, 6, 2.0) * 0.5
    specs = [LinearGaussianSpec(K, k), NetworkSpec(policy_spec(net), noise), NetworkSpec(policy_spec(net))]
    trials = probe.agent.run_many([TrialRequest(probe.exp.conditions[0], c) for c in specs])
    local = InProcessAgent(probe.exp)
    try:
        references = [local.run(probe.exp.conditions[0], c) for c in specs]
    finally:
        local.close()
    for trial, reference in zip(trials, references):
        assert trial.X.shape == (100, 30) and trial.U.shape == (100, 6)
        # same physics, same encoder, same controller: the graph adds transport, not numbers
        assert np.array_equal(trial.X, reference.X) and np.array_equal(trial.U, reference.U)
    # the network really ran: its actions are mu(x) + noise (clipped), and the arm moved
    np.testing.assert_allclose(trials[1].U, np.clip(net.mean_np(trials[1].X) + noise, -150, 150)[:, :6],
                               rtol=1e-12, atol=1e-9)
    assert np.abs(trials[2].X[-1, :6] - trials[2].X[0, :6]).max() > 1e-3


@pytest.mark.parametrize('corrupt,words', [('nan', 'non-finite'), ('shape', '29')])
def test_invalid_controller_is_rejected_and_only_zeros_are_sent(lockstep, corrupt, words):
    _, probe = lockstep
    K, k = controller(probe.exp)
    if corrupt == 'nan':
        K = K.copy()
        K[10, 2, 5] = np.nan
    else:
        K = K[:, :, :29]
    probe.spin_for(0.2)
    probe.commands.clear()
    result = probe.result(lg_goal(probe.exp, 1, K, k))
    assert result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER
    assert words in result.reason
    probe.spin_for(0.3)
    assert probe.commands, 'the controller publishes a zero command on an invalid goal'
    assert all(np.all(c == 0.0) for c in probe.commands)


def test_stale_joint_states_abort_the_trial(lockstep):
    bringup, probe = lockstep
    K, k = controller(probe.exp, seed=1)
    K, k = np.tile(K, (20, 1, 1)), np.tile(k, (20, 1))     # 2000 steps: seconds, not a blink, to interrupt
    goal = lg_goal(probe.exp, 2, K, k)
    goal.horizon = 2000
    probe.commands.clear()
    handle = probe.accepted(goal)
    result_future = handle.get_result_async()
    probe.spin_until(lambda: len(probe.commands) >= 5, 20.0, 'the trial to start')
    sim = bringup.procs['sim_node']
    sim.send_signal(signal.SIGSTOP)              # the simulator freezes: joint_states stop
    try:
        probe.spin_until(result_future.done, 10.0, 'the trial to abort')
    finally:
        sim.send_signal(signal.SIGCONT)
    result = result_future.result().result
    assert result.status == RunTrial.Result.STATUS_ABORTED_STALE_STATE
    assert 'joint_states' in result.reason or 'stale' in result.reason
    assert 0 < result.steps < 2000
    probe.spin_for(0.2)
    assert np.all(probe.commands[-1] == 0.0)
    bringup.check()                              # both nodes survived


def test_killing_the_controller_mid_trial_zeroes_the_torque(tmp_path):
    ns = f'graph_realtime_{os.getpid()}'
    bringup = Bringup(CFG, ns, 'realtime', tmp_path).start()
    probe = Probe(ns, bringup)
    try:
        exp = probe.exp
        T, dU, dX = 100, 6, exp.dX
        k = np.tile([8.0, 0.0, 0.0, 0.0, 0.0, 0.0], (T, 1))          # a steady torque on the base joint
        goal = lg_goal(exp, 0, np.zeros((T, dU, dX)), k)
        probe.accepted(goal)
        probe.spin_until(lambda: probe.efforts and probe.efforts[-1][1][0] == 8.0, 10.0, 'the torque to be applied')
        bringup.procs['controller_node'].kill()                        # SIGKILL: no goodbye zero
        killed = time.monotonic()
        probe.spin_until(lambda: probe.efforts[-1][1][0] == 0.0, 5.0, 'the sim watchdog to zero the torque')
        zeroed = next(t for t, e in probe.efforts if t >= killed and e[0] == 0.0)
        # command_timeout_s (0.25 s) + scheduling of three processes on a loaded 2-core machine
        assert zeroed - killed <= 0.25 + 0.75
    finally:
        probe.close()
        bringup.stop()


@pytest.mark.parametrize('intrusion', ['publisher', 'reset'])
def test_a_trial_someone_else_disturbs_is_not_trusted(tmp_path, intrusion):
    """Another process commanding the arm or resetting it during a trial: the trial ends
    ABORTED_INTERFERENCE with the reason (and the trainer would not train on it)."""
    ns = f'graph_intrusion_{intrusion}_{os.getpid()}'
    bringup = Bringup(CFG, ns, 'realtime', tmp_path).start()
    probe = Probe(ns, bringup)
    try:
        exp = probe.exp
        k = np.tile([2.0, 0.0, 0.0, 0.0, 0.0, 0.0], (CFG.T, 1))       # 5 s of arm time
        handle = probe.accepted(lg_goal(exp, 0, np.zeros((CFG.T, exp.dU, exp.dX)), k))
        result_future = handle.get_result_async()
        probe.spin_until(lambda: probe.efforts and probe.efforts[-1][1][0] == 2.0, 10.0, 'the trial to run')
        if intrusion == 'publisher':
            intruder = probe.node.create_publisher(Float64MultiArray, f'/{ns}/forward_effort_controller/commands', 10)
            # the trial's own command: what is caught is the second publisher (graph API), not a
            # harmful value (10 N m on the wrist could trip the velocity limit first, ABORTED_LIMIT)
            intruder.publish(Float64MultiArray(data=[2.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
            # named once DDS has discovered the node's name; a publisher seen before that is
            # reported as rmw's _NODE_NAME_UNKNOWN_ (the endpoint is known first)
            words = ['another publisher on the command topic']
        else:
            client = probe.node.create_client(ResetArm, f'/{ns}/reset')
            probe.spin_until(client.service_is_ready, 10.0, 'the reset service')
            client.call_async(ResetArm.Request(joint_names=list(CFG.robot.joints),
                                               joint_positions=list(exp.conditions[1].q0)))
            words = ['reset during the trial']
        probe.spin_until(result_future.done, 10.0, 'the trial to end')
        result = result_future.result().result
        assert result.status == RunTrial.Result.STATUS_ABORTED_INTERFERENCE, result.reason
        for w in words:
            assert w in result.reason, result.reason
        if intrusion == 'publisher':
            assert 'probe_' in result.reason or '_NODE_NAME_UNKNOWN_' in result.reason, result.reason
        assert result.steps < CFG.T
        probe.spin_for(0.3)
        assert np.all(probe.commands[-1] == 0.0)
    finally:
        probe.close()
        bringup.stop()


def test_the_mpc_teacher_and_the_pushes_through_the_graph_equal_the_inprocess_trials(lockstep):
    """MPC-GPS's teacher goes to controller_node as data (CONTROLLER_MPC) and a push plan to sim_node
    with the reset: both sides run them to the same numbers, and the push really moves the arm."""
    _, probe = lockstep
    K, k = controller(probe.exp)
    plan = push(20)
    requests = [TrialRequest(probe.exp.conditions[0], LinearGaussianSpec(K, k)),
                TrialRequest(probe.exp.conditions[0], LinearGaussianSpec(K, k), disturbance=plan),
                TrialRequest(probe.exp.conditions[1], mpc_teacher(probe.exp)),
                TrialRequest(probe.exp.conditions[1], mpc_teacher(probe.exp), disturbance=plan)]
    trials = probe.agent.run_many(requests)
    local = InProcessAgent(probe.exp)
    try:
        references = local.run_many(requests)
    finally:
        local.close()
    for i, (trial, reference) in enumerate(zip(trials, references)):
        assert np.array_equal(trial.X, reference.X) and np.array_equal(trial.U, reference.U), f'trial {i}'
    calm, pushed = trials[0].X, trials[1].X
    nj = probe.exp.dU
    # identical until the push, then the forearm's joints are knocked off the calm trajectory
    assert np.array_equal(calm[:21], pushed[:21])
    assert np.abs(pushed[21:25, nj:2 * nj] - calm[21:25, nj:2 * nj]).max() > 0.05
    # the teacher re-solved from the pushed state: its actions differ after the push, not before
    assert np.array_equal(trials[2].U[:21], trials[3].U[:21])
    assert np.abs(trials[3].U[22:] - trials[2].U[22:]).max() > 1e-3
    assert np.abs(trials[2].X[-1, :nj] - trials[2].X[0, :nj]).max() > 1e-3


def test_a_trial_past_a_joint_limit_comes_back_as_a_safety_stop(lockstep):
    """Full torque on wrist_3 spins it past its velocity limit within a step: controller_node ends
    the trial ABORTED_LIMIT, and the agent hands it back as a SafetyStop (or raises SafetyStopped)
    without running it again, as the in-process agent does."""
    from gps_agent_ros.agent import SafetyStop, SafetyStopped
    _, probe = lockstep
    K, k = controller(probe.exp)
    k = k.copy()
    k[:, 5] = 28.0                                   # wrist_3's effort limit
    request = TrialRequest(probe.exp.conditions[0], LinearGaussianSpec(K, k), sample=3)
    (stop,) = probe.agent.run_many([request], safety_stops=True)
    assert isinstance(stop, SafetyStop) and (stop.condition, stop.sample) == ('train/0', 3)
    assert 'ABORTED_LIMIT' in stop.reason and 'wrist_3_joint' in stop.reason
    with pytest.raises(SafetyStopped, match='wrist_3_joint'):
        probe.agent.run_many([request])
    local = InProcessAgent(probe.exp)
    try:
        (here,) = local.run_many([request], safety_stops=True)
    finally:
        local.close()
    assert isinstance(here, SafetyStop) and 'wrist_3_joint' in here.reason
