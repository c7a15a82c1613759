"""ur_reset_node: the `reset` service (gps_interfaces/srv/ResetArm) of a UR arm under ur_robot_driver.

A thin node over gps_agent_ros.ur_reset.ResetSequence, which decides every step: read
controller_manager's list_controllers, switch (STRICT, only what the states need) to the reset
controller (scaled_joint_trajectory_controller, or joint_trajectory_controller where the driver
has no scaled one), move to the start pose with one FollowJointTrajectory goal, verify it from
joint_states, switch back to the trial controller, and answer with the stamp of the joint_states
the start pose was verified from. Each step has a timeout; failures name the step and the cause.

  service  reset                                  gps_interfaces/srv/ResetArm
  sub      joint_states                           sensor_msgs/JointState
  sub      <robot_program_topic>                  std_msgs/Bool, transient local (the driver's
                                                  io_and_status_controller/robot_program_running)
  client   <controller_manager>/list_controllers  controller_manager_msgs/srv/ListControllers
  client   <controller_manager>/switch_controller controller_manager_msgs/srv/SwitchController
  action   /<reset controller>/follow_joint_trajectory  control_msgs/action/FollowJointTrajectory

Parameters: every field of ResetSettings (same name), plus controller_manager and
robot_program_topic. Started by launch/ur.launch.py.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import rclpy
from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Duration, Time
from control_msgs.action import FollowJointTrajectory
from controller_manager_msgs.srv import ListControllers, SwitchController
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_services_default
from rclpy.service_introspection import ServiceIntrospectionState
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectoryPoint

from gps_agent_ros.ur_controllers import PROGRAM_RUNNING_TOPIC, ControllerInfo
from gps_agent_ros.ur_reset import (CancelTrajectory, Command, ListControllersCall, ResetDone, ResetSequence,
                                    ResetSettings, SwitchCall, TrajectoryGoal)
from gps_interfaces.srv import ResetArm

_NS = 1_000_000_000
_GOAL_STATUS = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
                GoalStatus.STATUS_CANCELED: 'canceled'}
_TICK_S = 0.05
_DESCRIPTIONS = {
    'joints': 'the arm joints, as joint_states and the trajectory controllers name them',
    'trial_controller': 'the forward controller the trials command (given the arm after a reset)',
    'reset_controllers': 'trajectory controllers to reset with, in order of preference (first loaded wins)',
    'exclusive_controllers': 'controllers that move the arm without claiming joint interfaces '
                             '(deactivated when they are active)',
    'require_robot_program': 'refuse resets while the robot program does not run (false: mock hardware)',
    'position_tolerance': 'max |q - q0| per joint for the start pose to count [rad]',
    'velocity_tolerance': 'max |qd| per joint for the arm to count as stopped there [rad/s]',
    'max_joint_velocity': 'the move takes (largest joint distance) / this [rad/s]',
    'min_move_duration_s': 'shortest move [s]',
    'max_move_duration_s': 'longest move; start poses farther away are refused [s]',
    'goal_time_tolerance_s': 'sent with the goal: the controller fails this long after the end [s]',
    'speed_scaling_margin': 'a move may take this times its duration (teach pendant speed slider)',
    'service_timeout_s': 'wait for list_controllers and for the goal to be accepted [s]',
    'switch_timeout_s': 'switch_controller timeout (sent with the request, and waited for) [s]',
    'settle_timeout_s': 'after the move, wait this long for joint_states to show q0 [s]',
    'state_timeout_s': 'the latest joint_states must be this recent to start a move [s]',
}


def declare_reset_parameters(node: Node) -> tuple[ResetSettings, str, str]:
    """Declare the parameters (read-only, with descriptors); return the settings, the
    controller manager's name and the robot program topic. Raises ValueError naming a bad one."""
    defaults = ResetSettings()
    values = {}
    for f in dataclasses.fields(ResetSettings):
        default = getattr(defaults, f.name)
        declared = list(default) if isinstance(default, tuple) else default
        value = node.declare_parameter(f.name, declared, ParameterDescriptor(
            description=_DESCRIPTIONS[f.name], read_only=True)).value
        values[f.name] = tuple(value) if isinstance(default, tuple) else value
    manager = node.declare_parameter('controller_manager', '/controller_manager', ParameterDescriptor(
        description="controller_manager's node name", read_only=True)).value
    topic = node.declare_parameter('robot_program_topic', PROGRAM_RUNNING_TOPIC, ParameterDescriptor(
        description='std_msgs/Bool saying whether the robot program runs (empty: none)', read_only=True)).value
    return ResetSettings(**values), manager.rstrip('/'), topic


def _duration(seconds: float) -> Duration:
    ns = int(round(seconds * _NS))
    return Duration(sec=ns // _NS, nanosec=ns % _NS)


class URResetNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('ur_reset_node', **kwargs)
        settings, manager, program_topic = declare_reset_parameters(self)
        self.sequence = ResetSequence(settings)
        group = ReentrantCallbackGroup()   # the service awaits answers arriving on other callbacks
        self._list = self.create_client(ListControllers, f'{manager}/list_controllers', callback_group=group)
        self._switch = self.create_client(SwitchController, f'{manager}/switch_controller', callback_group=group)
        self._trajectory = {name: ActionClient(self, FollowJointTrajectory, f'/{name}/follow_joint_trajectory',
                                               callback_group=group) for name in settings.reset_controllers}
        self._goals: dict[int, object] = {}        # token -> accepted ClientGoalHandle
        self._waiting: list[Command] = []          # requests whose server is not discovered yet
        self._pending: Future | None = None        # the reset being served
        self.create_subscription(JointState, 'joint_states', self._on_joint_state, 10, callback_group=group)
        if program_topic:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(Bool, program_topic, self._on_program, latched, callback_group=group)
        service = self.create_service(ResetArm, 'reset', self._on_reset, callback_group=group)
        # every request announced on reset/_service_event: controller_node sees resets not its own
        service.configure_introspection(self.get_clock(), qos_profile_services_default,
                                        ServiceIntrospectionState.METADATA)
        self.create_timer(_TICK_S, self._on_tick, callback_group=group)
        self.get_logger().info(f'resetting {list(settings.joints)} with the first of {list(settings.reset_controllers)}, '
                               f'trials on {settings.trial_controller}; a reset answers within '
                               f'{settings.worst_case_s:.0f} s')

    # ------------------------------------------------------------------ callbacks
    async def _on_reset(self, request: ResetArm.Request, response: ResetArm.Response) -> ResetArm.Response:
        if self.sequence.busy:
            response.success, response.message = False, 'reset refused: another reset is running'
            return response
        self._pending = Future()
        self._run(self.sequence.start(list(request.joint_names), list(request.joint_positions), self._now()))
        done: ResetDone = await self._pending
        response.success, response.message = done.success, done.message
        if done.stamp_ns is not None:
            response.stamp = Time(sec=done.stamp_ns // _NS, nanosec=done.stamp_ns % _NS)
        if done.success:
            self.get_logger().info(done.message)
        else:
            self.get_logger().error(done.message)
        return response

    def _on_joint_state(self, msg: JointState) -> None:
        stamp_ns = msg.header.stamp.sec * _NS + msg.header.stamp.nanosec
        self._run(self.sequence.on_joint_state(msg.name, msg.position, msg.velocity, stamp_ns, self._now()))

    def _on_program(self, msg: Bool) -> None:
        self.get_logger().info(f'robot program {"running" if msg.data else "not running"}')
        self._run(self.sequence.on_program_running(msg.data, self._now()))

    def _on_tick(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._run([cmd for cmd in waiting if self.sequence.expects(cmd.token)])
        self._run(self.sequence.tick(self._now()))

    def _on_listed(self, token: int, future: Future) -> None:
        controllers = [ControllerInfo(c.name, c.state, c.type, tuple(c.claimed_interfaces))
                       for c in future.result().controller]
        self._run(self.sequence.on_controllers(token, controllers, self._now()))

    def _on_switched(self, token: int, future: Future) -> None:
        answer = future.result()
        message = getattr(answer, 'message', '')   # jazzy's SwitchController has no message
        self._run(self.sequence.on_switch(token, answer.ok, message, self._now()))

    def _on_goal_response(self, token: int, future: Future) -> None:
        handle = future.result()
        if handle.accepted:
            self._goals[token] = handle
            handle.get_result_async().add_done_callback(partial(self._on_result, token))
        self._run(self.sequence.on_goal_response(token, handle.accepted, self._now()))

    def _on_result(self, token: int, future: Future) -> None:
        self._goals.pop(token, None)
        answer = future.result()
        status = _GOAL_STATUS.get(answer.status, f'ended with status {answer.status}')
        self._run(self.sequence.on_trajectory_result(token, status, answer.result.error_code,
                                                     answer.result.error_string, self._now()))

    # ------------------------------------------------------------------ commands
    def _run(self, commands: list[Command]) -> None:
        for cmd in commands:
            if not self._server_ready(cmd):
                self._waiting.append(cmd)          # sent once discovered, or timed out by the sequence
            elif isinstance(cmd, ListControllersCall):
                self._list.call_async(ListControllers.Request()).add_done_callback(
                    partial(self._on_listed, cmd.token))
            elif isinstance(cmd, SwitchCall):
                request = SwitchController.Request(
                    activate_controllers=list(cmd.activate), deactivate_controllers=list(cmd.deactivate),
                    strictness=SwitchController.Request.STRICT, timeout=_duration(cmd.timeout_s))
                self._switch.call_async(request).add_done_callback(partial(self._on_switched, cmd.token))
            elif isinstance(cmd, TrajectoryGoal):
                self._trajectory[cmd.controller].send_goal_async(self._goal(cmd)).add_done_callback(
                    partial(self._on_goal_response, cmd.token))
            elif isinstance(cmd, CancelTrajectory):
                handle = self._goals.pop(cmd.token, None)
                if handle is not None:
                    handle.cancel_goal_async()
            elif isinstance(cmd, ResetDone) and self._pending is not None and not self._pending.done():
                self._pending.set_result(cmd)

    def _server_ready(self, cmd: Command) -> bool:
        if isinstance(cmd, ListControllersCall):
            return self._list.service_is_ready()
        if isinstance(cmd, SwitchCall):
            return self._switch.service_is_ready()
        if isinstance(cmd, TrajectoryGoal):
            return self._trajectory[cmd.controller].server_is_ready()
        return True

    @staticmethod
    def _goal(cmd: TrajectoryGoal) -> FollowJointTrajectory.Goal:
        goal = FollowJointTrajectory.Goal(goal_time_tolerance=_duration(cmd.goal_time_tolerance_s))
        goal.trajectory.joint_names = list(cmd.joint_names)
        goal.trajectory.points = [JointTrajectoryPoint(
            positions=list(cmd.positions), velocities=[0.0] * len(cmd.positions),
            time_from_start=_duration(cmd.duration_s))]
        return goal

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = URResetNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
