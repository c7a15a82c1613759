"""ur_reset_node over DDS against the fake UR driver (tests/fakes/ur_driver.py): the real
controller_manager_msgs / control_msgs types (test stand-ins with the upstream definitions),
the driver's topic, service and action names, each recorded release's controllers in the
states its launch leaves them in.

The fake driver and the node under test each run on their own context and executor thread; the
test calls the reset service from this thread. Every wait is bounded generously (a loaded
2-core machine), and no assertion depends on how fast anything ran.
"""
from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.action import get_action_names_and_types
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from fakes.ur_driver import HOME, UR_JOINTS, FakeURDriver, Spinning, releases
from gps_agent_ros.ur_reset_node import URResetNode
from gps_interfaces.srv import ResetArm

RELEASES = {r.name: r for r in releases()}
Q0 = (0.4, -1.3, 1.4, -1.9, -1.5707963, 0.2)
FAST = {'max_joint_velocity': 1.0, 'min_move_duration_s': 0.5, 'service_timeout_s': 10.0,
        'settle_timeout_s': 2.0}
WAIT_S = 60.0


class Graph:
    """Fake driver + ur_reset_node + this test's probe (reset client, joint_states log)."""

    def __init__(self, release: str, *, states=None, params=None, **driver) -> None:
        self.release = RELEASES[release]
        driver = {'rate_hz': 50.0, **driver}
        self.driver_spin = Spinning(lambda ctx: FakeURDriver(ctx, self.release, states=states, **driver))
        self.driver: FakeURDriver = self.driver_spin.obj
        overrides = [Parameter(k, value=list(v) if isinstance(v, tuple) else v)
                     for k, v in {**FAST, **(params or {})}.items()]
        self.node_spin = Spinning(lambda ctx: URResetNode(context=ctx, parameter_overrides=overrides))
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.probe = rclpy.create_node('reset_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self.states: dict[int, tuple[float, ...]] = {}       # stamp [ns] -> positions (UR_JOINTS order)
        # deep queue: the probe may read them well after they were sent (loaded machine)
        self.probe.create_subscription(JointState, '/joint_states', self._on_state, 10_000)
        self.client = self.probe.create_client(ResetArm, 'reset')

    def _on_state(self, msg: JointState) -> None:
        order = {n: i for i, n in enumerate(msg.name)}
        self.states[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = tuple(
            msg.position[order[j]] for j in UR_JOINTS)

    def spin_until(self, done, timeout_s: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def wait_discovered(self) -> None:
        """The node under test sees the driver's services and actions, the probe sees the node."""
        node = self.node_spin.node
        services = lambda: {n for n, _ in node.get_service_names_and_types()}  # noqa: E731
        actions = lambda: {n for n, _ in get_action_names_and_types(node)}  # noqa: E731
        ok = self.spin_until(lambda: self.client.service_is_ready()
                             and {'/controller_manager/list_controllers', '/controller_manager/switch_controller'}
                             <= services()
                             and '/scaled_joint_trajectory_controller/follow_joint_trajectory' in actions()
                             and node.count_publishers('/joint_states') > 0 and len(self.states) > 0)
        assert ok, f'the graph was not discovered within {WAIT_S} s'
        time.sleep(0.5)    # let the servers match the node's request writers too

    def reset(self, q0=Q0) -> ResetArm.Response:
        future = self.client.call_async(ResetArm.Request(joint_names=list(UR_JOINTS), joint_positions=list(q0)))
        assert self.spin_until(future.done), f'the reset service did not answer within {WAIT_S} s'
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.probe.destroy_node()
        self.context.try_shutdown()
        self.node_spin.close()
        self.driver_spin.close()


@pytest.fixture
def graph_factory():
    made: list[Graph] = []

    def make(release: str, **kwargs) -> Graph:
        g = Graph(release, **kwargs)
        made.append(g)
        g.wait_discovered()
        return g
    yield make
    for g in made:
        g.close()


def motion_controllers(g: Graph) -> list[str]:
    return sorted(n for n, s in g.driver.cm.states().items()
                  if s == 'active' and g.release.interface_of(n) is not None)


CASES = [('jazzy-3.0', 'velocity', None), ('main-032aad6', 'effort', None),
         ('main-032aad6', 'effort', {'initial_joint_controller': 'joint_trajectory_controller'}),
         ('main-032aad6', 'velocity', {'activate_joint_controller': 'false'})]


@pytest.mark.parametrize('release,interface,launch', CASES,
                         ids=[f'{r}-{i}-{"+".join(f"{k}={v}" for k, v in (l or {}).items()) or "defaults"}'
                              for r, i, l in CASES])
def test_reset_from_each_releases_initial_controller_states(graph_factory, release, interface, launch):
    trial = f'forward_{interface}_controller'
    states = RELEASES[release].initial_states(launch)
    g = graph_factory(release, states=states, params={'trial_controller': trial})
    for q0 in (Q0, HOME):                    # the first reset and the next one (from the trial state)
        response = g.reset(q0)
        assert response.success, response.message
        assert motion_controllers(g) == [trial]
        stamp = response.stamp.sec * 1_000_000_000 + response.stamp.nanosec
        # the stamp is a real joint_states stamp, and that message shows the start pose
        assert g.spin_until(lambda: stamp in g.states), 'the answered stamp is no joint_states stamp'
        assert max(abs(a - b) for a, b in zip(g.states[stamp], q0)) <= 0.01
    assert g.driver.arm.goals == [pytest.approx(Q0), pytest.approx(HOME)]


def test_a_reset_that_stops_short_of_q0_fails_with_the_error(graph_factory):
    g = graph_factory('main-032aad6')
    g.driver.arm.stop_short = {'elbow_joint': 0.04}
    response = g.reset()
    assert not response.success
    assert 'the arm did not reach the start pose: elbow_joint is 0.0400 rad from q0' in response.message
    assert (response.stamp.sec, response.stamp.nanosec) == (0, 0)
    assert motion_controllers(g) == ['scaled_joint_trajectory_controller']   # holding, not handed over


def test_a_switch_that_is_never_answered_is_reported(graph_factory):
    release = RELEASES['main-032aad6']
    g = graph_factory('main-032aad6', states=release.initial_states({'activate_joint_controller': 'false'}),
                      answer_switch=False, params={'switch_timeout_s': 0.5, 'service_timeout_s': 2.0})
    response = g.reset()
    assert not response.success
    assert ("switch_controller (activate ['scaled_joint_trajectory_controller'], deactivate []) "
            "did not answer within 2.5 s") in response.message
    assert g.driver.arm.goals == []


def test_effort_trials_need_a_driver_with_forward_effort_controller(graph_factory):
    g = graph_factory('jazzy-3.0')
    response = g.reset()
    assert not response.success
    assert 'forward_effort_controller is not loaded' in response.message
    assert g.driver.cm.switch_requests == [] and g.driver.arm.goals == []


def test_resets_wait_for_the_robot_program(graph_factory):
    # controller_stopper=False: the node itself must notice the program stopping
    g = graph_factory('main-032aad6', program_running=False, controller_stopper=False,
                      params={'max_joint_velocity': 0.05})
    response = g.reset()
    assert not response.success and 'the robot program has not run since the driver started' in response.message
    g.driver.set_program_running(True)
    assert g.spin_until(lambda: g.reset(HOME).success, WAIT_S)          # the latched True arrives
    # the program stops during the next move (0.4 rad at 0.05 rad/s: 8 s): the node cancels it
    future = g.client.call_async(ResetArm.Request(joint_names=list(UR_JOINTS), joint_positions=list(Q0)))
    assert g.spin_until(lambda: len(g.driver.arm.goals) == 2)
    g.driver.set_program_running(False)
    assert g.spin_until(future.done)
    assert not future.result().success
    # the driver has the goal; whether its acceptance reached the node before the program's stop
    # is up to the scheduler (a loaded machine: often not), and either way the move is cancelled
    message = future.result().message
    assert any(f'while {phase}: the robot program stopped' in message
               for phase in ('moving to the start pose', 'sending the trajectory to the start pose')), message
    assert g.spin_until(lambda: g.driver.arm.move is None, 10.0), 'the move was not cancelled'
    assert max(abs(a - b) for a, b in zip(g.driver.arm.q, Q0)) > 0.1
