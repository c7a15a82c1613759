"""A fake of ur_robot_driver's ROS side, for tests that need the real arm's peer without the
driver: what `ros2 launch ur_robot_driver ur_control.launch.py` brings up, as far as the GPS
stack talks to it, built from the driver's documented interfaces and the releases recorded in
tests/fixtures/ur_driver/.

- `DriverRelease`: one recorded release (its launch arguments, what its spawners load and
  activate, its controllers' types and parameters).
- `ControllerManagerModel`: controller_manager's list_controllers / switch_controller as these
  releases behave: STRICT switches refuse to activate an active controller or deactivate an
  inactive one, unknown names and resource conflicts fail, and the UR hardware runs one motion
  mode at a time.
- `ArmModel`: the arm under a (scaled) JointTrajectoryController executing one goal, with the
  driver's goal tolerances (0.1 rad: a move that ends 0.05 rad short still reports success) and
  optional faults: stop short of the goal, stall; and under a forward command controller
  (`set_forward` / `command`): velocity commands integrate, effort commands drive a
  unit-inertia, viscously damped joint (gravity compensated, as the UR does itself), position
  commands are followed at once.
- `FakeURDriver`: a node serving /controller_manager/list_controllers and switch_controller,
  /<jtc>/follow_joint_trajectory for every trajectory controller the release loads (goals only
  while that controller is active), subscribing /<forward controller>/commands for every
  forward command controller it loads (applied only while that controller is active, as
  ros2_control does; wrong lengths and non-finite values dropped, as ForwardCommandController
  does), publishing joint_states (the driver's joint names and order),
  io_and_status_controller/robot_program_running (transient local, on change) and, when given,
  /robot_description (transient local, as the driver's robot_state_publisher).
- `Spinning`: a node on its own context and executor thread, as if it were another process.

Both models are plain classes, so logic tests can drive them with an injected clock.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import yaml

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'ur_driver'
UR_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
             'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
HOME = (0.0, -1.5707963, 1.5707963, -1.5707963, -1.5707963, 0.0)
STRICT, BEST_EFFORT = 2, 1            # controller_manager_msgs/srv/SwitchController
SUCCESSFUL, GOAL_TOLERANCE_VIOLATED = 0, -5   # control_msgs/action/FollowJointTrajectory

# controller type -> the command interface it claims on every arm joint when active
JOINT_COMMAND = {
    'joint_trajectory_controller/JointTrajectoryController': 'position',
    'ur_controllers/ScaledJointTrajectoryController': 'position',
    'position_controllers/JointGroupPositionController': 'position',
    'velocity_controllers/JointGroupVelocityController': 'velocity',
    'effort_controllers/JointGroupEffortController': 'effort',
}
FORWARD_COMMAND = 'forward_command_controller/ForwardCommandController'  # interface_name parameter
TRAJECTORY_TYPES = ('joint_trajectory_controller/JointTrajectoryController',
                    'ur_controllers/ScaledJointTrajectoryController')
# UR controllers that claim non-joint command interfaces (their prefix); the ones that move the
# arm share the hardware's single motion mode with the joint controllers
OTHER_CLAIMS = {
    'ur_controllers/PassthroughTrajectoryController': 'trajectory_passthrough',
    'ur_controllers/FreedriveModeController': 'freedrive_mode',
    'ur_controllers/TwistController': 'twist',
    'motion_primitives_controllers/MotionPrimitivesForwardController': 'motion_primitive',
    'ur_controllers/ForceModeController': 'force_mode',
    'ur_controllers/GPIOController': 'gpio',
    'ur_controllers/ToolContactController': 'tool_contact',
}
# forward command controllers: they take std_msgs/Float64MultiArray on /<name>/commands
FORWARD_TYPES = (FORWARD_COMMAND, 'position_controllers/JointGroupPositionController',
                 'velocity_controllers/JointGroupVelocityController',
                 'effort_controllers/JointGroupEffortController')
NON_JOINT_MOTION = ('ur_controllers/PassthroughTrajectoryController', 'ur_controllers/FreedriveModeController',
                    'ur_controllers/TwistController',
                    'motion_primitives_controllers/MotionPrimitivesForwardController')


# ----------------------------------------------------------------------------- releases
@dataclass(frozen=True)
class DriverRelease:
    name: str                                  # fixture file stem, e.g. 'jazzy-3.0'
    release: str                               # e.g. 'jazzy 3.0.x'
    launch_arguments: Mapping[str, Mapping]    # name -> {default, choices}
    spawned_active: tuple[str, ...]
    spawned_inactive: tuple[str, ...]
    activates_initial_joint_controller: bool
    removed_with_mock_hardware: tuple[str, ...]
    controllers: Mapping[str, str]             # configured controller -> type
    controller_parameters: Mapping[str, Mapping]

    @classmethod
    def load(cls, path: Path) -> DriverRelease:
        doc = yaml.safe_load(path.read_text())
        spawned = doc['spawned']
        return cls(path.stem, doc['release'], doc['launch_arguments'], tuple(spawned['active']),
                   tuple(spawned['inactive']), bool(spawned['activates_initial_joint_controller']),
                   tuple(spawned['removed_with_mock_hardware']), doc['controllers'],
                   doc.get('controller_parameters', {}))

    @property
    def spawned(self) -> tuple[str, ...]:
        return self.spawned_active + self.spawned_inactive

    def default(self, argument: str) -> str | None:
        return self.launch_arguments[argument].get('default')

    def initial_states(self, arguments: Mapping[str, str] | None = None) -> dict[str, str]:
        """Controller -> state right after the driver's launch with these launch arguments
        (the release's defaults for the rest): every spawned controller is loaded."""
        args = {k: v['default'] for k, v in self.launch_arguments.items() if 'default' in v}
        args.update(arguments or {})
        active, inactive = list(self.spawned_active), list(self.spawned_inactive)
        initial = args['initial_joint_controller']
        if self.activates_initial_joint_controller and args['activate_joint_controller'] == 'true':
            active.append(initial)
            inactive.remove(initial)
        if args['use_mock_hardware'] == 'true':
            active = [c for c in active if c not in self.removed_with_mock_hardware]
        return {**{c: 'inactive' for c in inactive}, **{c: 'active' for c in active}}

    def interface_of(self, controller: str) -> str | None:
        """The joint command interface a controller claims, or None (no joint interface)."""
        ctype = self.controllers.get(controller, '')
        if ctype == FORWARD_COMMAND:
            return self.controller_parameters.get(controller, {}).get('interface_name')
        return JOINT_COMMAND.get(ctype)

    def goal_tolerance(self, controller: str, joint: str) -> float:
        constraints = self.controller_parameters.get(controller, {}).get('constraints', {})
        return float(constraints.get(f'$(var tf_prefix){joint}', {}).get('goal', 0.0))


def releases() -> list[DriverRelease]:
    return [DriverRelease.load(p) for p in sorted(FIXTURES.glob('*.yaml'))]


# ----------------------------------------------------------------------------- controller manager
@dataclass
class FakeController:
    name: str
    type: str
    state: str                           # unconfigured | inactive | active | finalized
    command_interfaces: tuple[str, ...]  # what it claims while active


class ControllerManagerModel:
    """list_controllers / switch_controller of controller_manager with a UR hardware interface."""

    def __init__(self, release: DriverRelease, joints: Sequence[str] = UR_JOINTS,
                 states: Mapping[str, str] | None = None) -> None:
        self.release = release
        self.joints = tuple(joints)
        self.lock = threading.Lock()
        self.switch_requests: list[tuple[tuple[str, ...], tuple[str, ...], int]] = []
        states = release.initial_states() if states is None else states
        self.controllers = {name: FakeController(name, release.controllers[name], state,
                                                 self._claims(name))
                            for name, state in states.items()}

    def _claims(self, name: str) -> tuple[str, ...]:
        interface = self.release.interface_of(name)
        if interface is not None:
            return tuple(f'{j}/{interface}' for j in self.joints)
        prefix = OTHER_CLAIMS.get(self.release.controllers[name])
        return (f'{prefix}/{name}_cmd',) if prefix else ()

    def states(self) -> dict[str, str]:
        with self.lock:
            return {c.name: c.state for c in self.controllers.values()}

    def active(self) -> set[str]:
        return {n for n, s in self.states().items() if s == 'active'}

    def listing(self) -> list[FakeController]:
        with self.lock:
            return [FakeController(c.name, c.type, c.state, c.command_interfaces)
                    for c in self.controllers.values()]

    def switch(self, activate: Sequence[str], deactivate: Sequence[str], strictness: int) -> tuple[bool, str]:
        with self.lock:
            self.switch_requests.append((tuple(activate), tuple(deactivate), strictness))
            ok, message, new_active = self._check(list(activate), list(deactivate), strictness)
            if ok:
                for c in self.controllers.values():
                    if c.state in ('active', 'inactive'):
                        c.state = 'active' if c.name in new_active else 'inactive'
            return ok, message

    def _check(self, activate: list[str], deactivate: list[str], strictness: int) -> tuple[bool, str, set[str]]:
        active = {c.name for c in self.controllers.values() if c.state == 'active'}
        problems: list[str] = []
        for name in list(deactivate):
            c = self.controllers.get(name)
            if c is None or c.state != 'active':
                problems.append(f'could not deactivate {name}: ' + ('not loaded' if c is None else f'it is {c.state}'))
                deactivate.remove(name)
        for name in list(activate):
            c = self.controllers.get(name)
            if c is None or c.state not in ('inactive', 'active') or (c.state == 'active' and name not in deactivate):
                why = 'not loaded' if c is None else ('it is already active' if c.state == 'active' else f'it is {c.state}')
                problems.append(f'could not activate {name}: {why}')
                activate.remove(name)
        if problems and strictness == STRICT:
            return False, '; '.join(problems), active
        new_active = (active - set(deactivate)) | set(activate)
        claims: dict[str, str] = {}
        for name in sorted(new_active):
            for interface in self.controllers[name].command_interfaces:
                if interface in claims:
                    return False, f'resource conflict: {interface} is claimed by {claims[interface]} and {name}', active
                claims[interface] = name
        motion = sorted(n for n in new_active if self.release.interface_of(n) is not None
                        or self.controllers[n].type in NON_JOINT_MOTION)
        if len(motion) > 1:
            return False, f'UR hardware runs one control mode at a time, not {motion}', active
        return True, '; '.join(problems) or 'switched', new_active


# ----------------------------------------------------------------------------- arm
@dataclass
class _Move:
    start_time: float
    q_start: tuple[float, ...]
    q_end: tuple[float, ...]          # where the arm really ends (the goal, plus any fault offset)
    goal: tuple[float, ...]
    duration: float
    goal_time_tolerance: float
    stall: bool


def _per_joint(value: Sequence[float] | float, n: int) -> list[float]:
    return [float(value)] * n if isinstance(value, (int, float)) else [float(v) for v in value]


class ArmModel:
    """The joints under a trajectory controller (smoothstep moves) or a forward command
    controller (see `set_forward`); position hold otherwise.

    Under effort commands each joint is I qdd = tau - b qd (the UR compensates gravity itself),
    integrated semi-implicitly in sub-steps of at most `max_substep_s` up to each `step(now)`.
    """

    def __init__(self, joints: Sequence[str] = UR_JOINTS, q: Sequence[float] = HOME,
                 goal_tolerance: Sequence[float] | float = 0.1, inertia: Sequence[float] | float = 1.0,
                 damping: Sequence[float] | float = 2.0, max_substep_s: float = 0.002) -> None:
        self.joints = tuple(joints)
        self.q = [float(v) for v in q]
        self.qd = [0.0] * len(self.joints)
        self.goal_tolerance = _per_joint(goal_tolerance, len(self.joints))
        self.inertia = _per_joint(inertia, len(self.joints))      # [kg m^2]
        self.damping = _per_joint(damping, len(self.joints))      # [N m s/rad]
        self.max_substep_s = float(max_substep_s)
        self.stop_short: dict[str, float] = {}      # joint -> offset the arm ends away from the goal
        self.stall = False                           # the next move never progresses
        self.move: _Move | None = None
        self.goals: list[tuple[float, ...]] = []
        self.forward: str | None = None              # interface of the active forward controller
        self.held: tuple[float, ...] | None = None   # its command; None: none since it was activated
        self._stepped: float | None = None           # `now` of the last step

    def set_forward(self, interface: str | None) -> None:
        """The active forward command controller's interface ('effort', 'velocity',
        'position'; None: none is active). On a change the held command is forgotten:
        ros2_control's forward controllers discard what arrived while inactive, and
        JointGroupEffort/VelocityController write zeros when deactivated, so the arm holds."""
        if interface != self.forward:
            self.forward, self.held = interface, None

    def command(self, values: Sequence[float]) -> None:
        """The active forward controller's new command (held until the next, as it does)."""
        if len(values) != len(self.joints):
            raise ValueError(f'{len(values)} command values for {len(self.joints)} joints')
        self.held = tuple(float(v) for v in values)

    def start(self, goal: Sequence[float], duration: float, goal_time_tolerance: float, now: float) -> None:
        goal = tuple(float(v) for v in goal)
        end = tuple(g + self.stop_short.get(j, 0.0) for j, g in zip(self.joints, goal))
        self.goals.append(goal)
        self.move = _Move(now, tuple(self.q), end, goal, max(float(duration), 1e-6),
                          float(goal_time_tolerance), self.stall)

    def step(self, now: float) -> None:
        dt = 0.0 if self._stepped is None else max(0.0, now - self._stepped)
        self._stepped = now
        m = self.move
        if m is None and self.forward is not None and self.held is not None:
            self._follow_command(dt)
            return
        if m is None or m.stall:
            self.qd = [0.0] * len(self.q)
            return
        s = min(max((now - m.start_time) / m.duration, 0.0), 1.0)
        blend, rate = s * s * (3.0 - 2.0 * s), 6.0 * s * (1.0 - s) / m.duration
        self.q = [a + (b - a) * blend for a, b in zip(m.q_start, m.q_end)]
        self.qd = [(b - a) * rate for a, b in zip(m.q_start, m.q_end)]

    def _follow_command(self, dt: float) -> None:
        u = self.held
        if self.forward == 'velocity':
            self.qd = list(u)
            self.q = [q + v * dt for q, v in zip(self.q, u)]
        elif self.forward == 'position':
            self.qd = [(p - q) / dt if dt > 0 else 0.0 for p, q in zip(u, self.q)]
            self.q = list(u)
        elif self.forward == 'effort':
            n = max(1, math.ceil(dt / self.max_substep_s))
            h = dt / n
            q, qd = self.q, self.qd
            for _ in range(n):
                qd = [v + h * (tau - b * v) / inertia for v, tau, b, inertia in zip(qd, u, self.damping, self.inertia)]
                q = [p + h * v for p, v in zip(q, qd)]
            self.q, self.qd = q, qd
        else:
            raise ValueError(f'unknown forward command interface {self.forward!r}')

    def result(self, now: float) -> tuple[int, str] | None:
        """The controller's verdict on the current move, None while it runs or waits."""
        m = self.move
        if m is None or m.stall or now < m.start_time + m.duration:
            return None
        off = [(j, abs(q - g), tol) for j, q, g, tol in zip(self.joints, self.q, m.goal, self.goal_tolerance)]
        violated = [(j, e, tol) for j, e, tol in off if tol > 0 and e > tol]
        if not violated:
            self.move = None
            return SUCCESSFUL, ''
        if m.goal_time_tolerance > 0 and now > m.start_time + m.duration + m.goal_time_tolerance:
            self.move = None
            j, e, tol = violated[0]
            return GOAL_TOLERANCE_VIOLATED, f'{j} goal error {e:.4f} exceeds goal tolerance {tol}'
        return None    # goal_time 0 (the driver's default) and not there: JTC waits

    def cancel(self) -> None:
        self.move = None
        self.qd = [0.0] * len(self.q)


# ----------------------------------------------------------------------------- DDS fake
class FakeURDriver:
    """The driver's services, actions and topics on one node (created in `context`).

    answer_list / answer_switch = False: that service never answers (timeout tests).
    """

    def __init__(self, context, release: DriverRelease, *, states: Mapping[str, str] | None = None,
                 q: Sequence[float] = HOME, program_running: bool | None = True, rate_hz: float = 100.0,
                 answer_list: bool = True, answer_switch: bool = True, controller_stopper: bool = True,
                 robot_description: str | None = None) -> None:
        import rclpy
        from control_msgs.action import FollowJointTrajectory
        from controller_manager_msgs.srv import ListControllers, SwitchController
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64MultiArray, String

        self._JointState, self._Bool = JointState, Bool
        self._GoalResponse, self._CancelResponse = GoalResponse, CancelResponse
        self._FJT = FollowJointTrajectory
        self.release = release
        self.cm = ControllerManagerModel(release, UR_JOINTS, states)
        tolerance = [release.goal_tolerance('scaled_joint_trajectory_controller', j) or 0.1 for j in UR_JOINTS]
        self.arm = ArmModel(UR_JOINTS, q, tolerance)
        self.answer_list, self.answer_switch = answer_list, answer_switch
        self.controller_stopper = controller_stopper
        self.node = rclpy.create_node('fake_ur_driver', context=context)
        group = ReentrantCallbackGroup()
        self.node.create_service(ListControllers, '/controller_manager/list_controllers',
                                 self._on_list, callback_group=group)
        self.node.create_service(SwitchController, '/controller_manager/switch_controller',
                                 self._on_switch, callback_group=group)
        self._goal: tuple[str, object, object] | None = None   # (controller, goal handle, verdict future)
        self._servers = [
            ActionServer(self.node, FollowJointTrajectory, f'/{name}/follow_joint_trajectory',
                         execute_callback=functools.partial(self._execute, name), callback_group=group,
                         goal_callback=lambda goal, name=name: self._on_goal(name, goal),
                         cancel_callback=lambda handle: CancelResponse.ACCEPT)
            for name in self.cm.controllers if self.cm.controllers[name].type in TRAJECTORY_TYPES]
        # forward command controllers: what each applied (time, controller, values) or dropped
        self.commands: list[tuple[float, str, tuple[float, ...]]] = []
        self.dropped_commands: list[tuple[float, str, tuple[float, ...], str]] = []   # ... and why
        for name, c in self.cm.controllers.items():
            if c.type in FORWARD_TYPES and release.interface_of(name) is not None:
                self.node.create_subscription(Float64MultiArray, f'/{name}/commands',
                                              functools.partial(self._on_command, name), 100,
                                              callback_group=group)
        self._states_pub = self.node.create_publisher(JointState, '/joint_states', 10)
        self.published: dict[int, tuple[float, ...]] = {}   # joint_states stamp [ns] -> positions
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        if robot_description is not None:
            self._description_pub = self.node.create_publisher(String, '/robot_description', latched)
            self._description_pub.publish(String(data=robot_description))
        self._program_pub = self.node.create_publisher(Bool, '/io_and_status_controller/robot_program_running', latched)
        self.program_running = False
        if program_running:
            self.set_program_running(True)
        self.node.create_timer(1.0 / rate_hz, self._on_timer, callback_group=group)

    # -------------------------------------------------------------- controls for tests
    def set_program_running(self, running: bool) -> None:
        """Like the robot: the topic changes; the driver's controller_stopper then deactivates
        every controller but the broadcasters (real hardware only)."""
        if running == self.program_running:
            return
        self.program_running = running
        self._program_pub.publish(self._Bool(data=running))
        if not running and self.controller_stopper:
            motion = [n for n, s in self.cm.states().items() if s == 'active'
                      and (self.release.interface_of(n) is not None or n in ('passthrough_trajectory_controller',))]
            if motion:
                self.cm.switch([], motion, BEST_EFFORT)

    def stamp_now(self):
        return self.node.get_clock().now().to_msg()

    # -------------------------------------------------------------- controller manager
    async def _on_list(self, request, response):
        from controller_manager_msgs.msg import ControllerState
        if not self.answer_list:
            await self._never()
        response.controller = [
            ControllerState(name=c.name, state=c.state, type=c.type,
                            claimed_interfaces=list(c.command_interfaces) if c.state == 'active' else [],
                            required_command_interfaces=list(c.command_interfaces))
            for c in self.cm.listing()]
        return response

    async def _on_switch(self, request, response):
        if not self.answer_switch:
            await self._never()
        response.ok, response.message = self.cm.switch(list(request.activate_controllers),
                                                       list(request.deactivate_controllers), request.strictness)
        return response

    @staticmethod
    async def _never() -> None:
        """A request that is never answered (rclpy answers whatever a callback returns)."""
        from rclpy.task import Future
        await Future()

    # -------------------------------------------------------------- forward command controllers
    def _sync_forward(self) -> None:
        """Tell the arm which forward controller (if any) is active now."""
        states = self.cm.states()
        active = [n for n, s in states.items() if s == 'active' and self.cm.controllers[n].type in FORWARD_TYPES]
        self.arm.set_forward(self.release.interface_of(active[0]) if active else None)

    def _on_command(self, controller: str, msg) -> None:
        now = self._now()
        self._sync_forward()
        values = tuple(msg.data)
        if self.cm.states().get(controller) != 'active':
            why = 'inactive'
        elif len(values) != len(UR_JOINTS):
            why = f'{len(values)} values for {len(UR_JOINTS)} joints'
        elif not all(math.isfinite(v) for v in values):
            why = 'non-finite'
        else:
            self.arm.step(now)           # the old command up to now, then hold the new one
            self.arm.command(values)
            self.commands.append((now, controller, values))
            return
        self.dropped_commands.append((now, controller, values, why))

    # -------------------------------------------------------------- trajectory controllers
    def _on_goal(self, controller: str, goal):
        points = goal.trajectory.points
        if (self.cm.states().get(controller) != 'active' or sorted(goal.trajectory.joint_names) != sorted(UR_JOINTS)
                or not points or self._goal is not None):
            return self._GoalResponse.REJECT
        return self._GoalResponse.ACCEPT

    async def _execute(self, controller: str, handle):
        from rclpy.task import Future
        goal = handle.request
        order = {n: i for i, n in enumerate(goal.trajectory.joint_names)}
        point = goal.trajectory.points[-1]
        target = [point.positions[order[j]] for j in UR_JOINTS]
        duration = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
        tolerance = goal.goal_time_tolerance.sec + goal.goal_time_tolerance.nanosec * 1e-9
        done = Future()
        self.arm.start(target, duration, tolerance, self._now())
        self._goal = (controller, handle, done)
        code, text = await done
        if code is None:      # like JTC: a cancelled goal ends with error_code SUCCESSFUL
            handle.canceled()
            return self._FJT.Result(error_code=SUCCESSFUL, error_string='Goal successfully canceled')
        if code == SUCCESSFUL:
            handle.succeed()
        else:
            handle.abort()
        return self._FJT.Result(error_code=code, error_string=text)

    def _on_timer(self) -> None:
        now = self._now()
        self._sync_forward()
        self.arm.step(now)
        if self._goal is not None:
            controller, handle, done = self._goal
            verdict = self.arm.result(now)
            if handle.is_cancel_requested or self.cm.states().get(controller) != 'active':
                self.arm.cancel()
                verdict = (None, 'canceled')
            if verdict is not None:
                self._goal = None
                done.set_result(verdict)
        msg = self._JointState(name=list(UR_JOINTS), position=list(self.arm.q), velocity=list(self.arm.qd),
                               effort=[0.0] * len(UR_JOINTS))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.published[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = tuple(self.arm.q)
        self._states_pub.publish(msg)

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def destroy(self) -> None:
        for server in self._servers:
            server.destroy()
        self.node.destroy_node()


# ----------------------------------------------------------------------------- threads
class Spinning:
    """`make(context)` -> node (or an object with .node), on its own context and executor
    thread: in-process, but as separate on the graph as another process."""

    def __init__(self, make: Callable[[object], object]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.obj = make(self.context)
        self.node = getattr(self.obj, 'node', self.obj)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.error: BaseException | None = None      # what stopped the thread, raised by close()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except BaseException as exc:   # noqa: BLE001 - surfaced in close()
            self.error = exc

    def close(self) -> None:
        name = self.node.get_name()
        self.executor.shutdown()
        self.thread.join(timeout=10.0)
        destroy = getattr(self.obj, 'destroy', None) or getattr(self.obj, 'destroy_node')
        destroy()
        self.context.try_shutdown()
        if self.error is not None:
            raise RuntimeError(f'{name} stopped spinning') from self.error
