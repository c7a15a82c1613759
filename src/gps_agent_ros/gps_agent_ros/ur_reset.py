"""Resetting a UR arm under ros2_control to a trial's start pose: the logic of ur_reset_node,
free of ROS (plain data in, commands out, time passed in).

One reset (`ResetSequence`), as an explicit state machine driven by events:

1. read `list_controllers`; pick the reset controller (the first of `reset_controllers` the
   driver loaded: `scaled_joint_trajectory_controller`, UR's default, or plain
   `joint_trajectory_controller` where the driver has no scaled one) and check the trial
   controller is loaded, before anything moves;
2. activate the reset controller and deactivate whatever active controller would fight it
   (any controller claiming a command interface of the arm's joints, and the UR motion
   controllers that claim none), asking only for the changes the current states need, then
   confirm the result with `list_controllers` (a switch is never assumed);
3. send one FollowJointTrajectory goal to the start pose q0, timed from the distance
   (`max_joint_velocity`), with the controller's own path/goal tolerances (the driver's
   configuration: none are overridden) and a `goal_time_tolerance` so the controller fails
   instead of waiting forever; the result must come within the move's duration times
   `speed_scaling_margin` (scaled JTC slows down with the teach pendant's speed slider);
4. verify from `joint_states` that |q - q0| <= `position_tolerance` and |qd| <=
   `velocity_tolerance` for every joint; the stamp of that joint_states is the reset's stamp;
5. switch back to the trial controller the same way, and confirm.

Every request has a deadline; a timeout or refusal fails the reset with a message naming the
step, the controller and what was wrong. After a failure the arm stays with whichever
controller is active (after step 2: the reset controller, which holds its position).

What the driver's controller manager reports (controllers, switch plans) and whether its robot
program runs (`RobotProgramMonitor`: trials and resets only run while External Control does)
are gps_agent_ros.ur_controllers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Mapping, Sequence, Union

from gps_agent_ros.ur_controllers import (EXCLUSIVE_CONTROLLERS, RESET_CONTROLLERS, TRIAL_CONTROLLERS, UR_JOINTS,
                                         ControllerInfo, RobotProgramMonitor, SwitchError, SwitchPlan, by_name,
                                         choose_reset_controller, plan_activation, trial_controller_problem)

# control_msgs/action/FollowJointTrajectory result codes
TRAJECTORY_ERRORS = {0: 'SUCCESSFUL', -1: 'INVALID_GOAL', -2: 'INVALID_JOINTS',
                     -3: 'OLD_HEADER_TIMESTAMP', -4: 'PATH_TOLERANCE_VIOLATED',
                     -5: 'GOAL_TOLERANCE_VIOLATED'}


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ResetSettings:
    """ur_reset_node's parameters (one per field, same names)."""
    joints: tuple[str, ...] = UR_JOINTS
    trial_controller: str = TRIAL_CONTROLLERS['effort']
    reset_controllers: tuple[str, ...] = RESET_CONTROLLERS
    exclusive_controllers: tuple[str, ...] = EXCLUSIVE_CONTROLLERS
    require_robot_program: bool = True
    position_tolerance: float = 0.01      # [rad] max |q - q0| for the start pose to count
    velocity_tolerance: float = 0.05      # [rad/s] max |qd|: the arm must have stopped there
    max_joint_velocity: float = 0.5       # [rad/s] the move takes (largest joint distance) / this
    min_move_duration_s: float = 2.0
    max_move_duration_s: float = 20.0     # a start pose farther away than this allows is refused
    goal_time_tolerance_s: float = 1.0    # sent with the goal: past the end + this, JTC fails
    speed_scaling_margin: float = 4.0     # the move may take this times its duration (speed slider)
    service_timeout_s: float = 3.0        # list_controllers, goal acceptance
    switch_timeout_s: float = 5.0         # switch_controller (also the request's own timeout)
    settle_timeout_s: float = 3.0         # after the move, for joint_states to show q0
    state_timeout_s: float = 1.0          # the latest joint_states must be this recent to start

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joints', tuple(self.joints))
        object.__setattr__(self, 'reset_controllers', tuple(self.reset_controllers))
        object.__setattr__(self, 'exclusive_controllers', tuple(self.exclusive_controllers))
        if not self.joints or len(set(self.joints)) != len(self.joints) or not all(self.joints):
            raise ValueError(f"'joints' must be distinct non-empty names, got {list(self.joints)}")
        if not self.trial_controller:
            raise ValueError("'trial_controller' is empty")
        if not self.reset_controllers or not all(self.reset_controllers):
            raise ValueError(f"'reset_controllers' must name controllers, got {list(self.reset_controllers)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{f.name!r} must be a finite number > 0, got {value}")
        if self.min_move_duration_s > self.max_move_duration_s:
            raise ValueError(f"'min_move_duration_s' ({self.min_move_duration_s}) exceeds "
                             f"'max_move_duration_s' ({self.max_move_duration_s})")

    @property
    def move_timeout_s(self) -> float:
        """Longest wait for a trajectory result (the longest move, slowed by speed scaling)."""
        return self.max_move_duration_s * self.speed_scaling_margin + self.goal_time_tolerance_s

    @property
    def worst_case_s(self) -> float:
        """Longest a reset can take before it answers: a caller's timeout must exceed this."""
        switch = self.switch_timeout_s + self.service_timeout_s
        return (4 * self.service_timeout_s + 2 * switch + self.move_timeout_s
                + self.settle_timeout_s)


# ----------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class ListControllersCall:
    token: int


@dataclass(frozen=True)
class SwitchCall:
    token: int
    activate: tuple[str, ...]
    deactivate: tuple[str, ...]
    timeout_s: float               # controller_manager's own wait (SwitchController.timeout)


@dataclass(frozen=True)
class TrajectoryGoal:
    token: int
    controller: str                # served at /<controller>/follow_joint_trajectory
    joint_names: tuple[str, ...]
    positions: tuple[float, ...]   # the single point, reached with zero velocity
    duration_s: float              # its time_from_start
    goal_time_tolerance_s: float


@dataclass(frozen=True)
class CancelTrajectory:
    token: int                     # of the goal to cancel


@dataclass(frozen=True)
class ResetDone:
    success: bool
    message: str
    stamp_ns: int | None = None    # joint_states stamp the start pose was verified from


Command = Union[ListControllersCall, SwitchCall, TrajectoryGoal, CancelTrajectory, ResetDone]


class ResetPhase(Enum):
    IDLE = 'idle'
    LISTING = 'reading list_controllers'
    SWITCHING_TO_RESET = 'activating the reset controller'
    CONFIRMING_RESET = 'confirming the reset controller is active'
    SENDING_GOAL = 'sending the trajectory to the start pose'
    MOVING = 'moving to the start pose'
    SETTLING = 'verifying the start pose from joint_states'
    LISTING_FOR_TRIAL = 'reading list_controllers before the switch back'
    SWITCHING_TO_TRIAL = 'activating the trial controller'
    CONFIRMING_TRIAL = 'confirming the trial controller is active'


@dataclass
class _JointSample:
    positions: tuple[float, ...]          # in settings.joints order
    velocities: tuple[float, ...] | None
    stamp_ns: int
    arrival: float                        # `now` when it arrived


# ----------------------------------------------------------------------------- the sequence
class ResetSequence:
    """One reset at a time, driven by events; each event returns the commands to carry out
    (service calls, goals, cancels, and finally exactly one ResetDone per started reset)."""

    def __init__(self, settings: ResetSettings, program: RobotProgramMonitor | None = None) -> None:
        self.settings = settings
        self.program = program if program is not None else RobotProgramMonitor(settings.require_robot_program)
        self.phase = ResetPhase.IDLE
        self._token = 0
        self._deadline = math.inf
        self._q0: tuple[float, ...] = ()
        self._reset_controller = ''
        self._goal_token: int | None = None      # accepted (or pending) goal that may need a cancel
        self._move_duration = 0.0
        self._latest: _JointSample | None = None
        self._state_problem = ''                 # why the last joint_states could not be read
        self._verified_stamp: int | None = None
        self._plan = SwitchPlan('', (), ())      # the switch in flight
        self._timeout_s = 0.0                    # of the current step, for its timeout message

    @property
    def busy(self) -> bool:
        return self.phase is not ResetPhase.IDLE

    def expects(self, token: int) -> bool:
        """Whether the request with this token is the one the current step waits for."""
        return self.busy and token == self._token

    # ------------------------------------------------------------------ events
    def start(self, joint_names: Sequence[str], positions: Sequence[float], now: float) -> list[Command]:
        """A reset request. Raises RuntimeError if one is already running (answer it busy)."""
        if self.busy:
            raise RuntimeError(f'a reset is already running ({self.phase.value})')
        problem = self._request_problem(joint_names, positions)
        if problem is None:
            problem = self.program.refusal()
        if problem is not None:
            return [ResetDone(False, f'reset refused: {problem}')]
        target = dict(zip(joint_names, (float(p) for p in positions)))
        self._q0 = tuple(target[j] for j in self.settings.joints)
        self._goal_token = None
        return self._enter(ResetPhase.LISTING, now, self.settings.service_timeout_s,
                           ListControllersCall(self._next_token()))

    def on_controllers(self, token: int, controllers: Sequence[ControllerInfo], now: float) -> list[Command]:
        if token != self._token or self.phase not in (ResetPhase.LISTING, ResetPhase.CONFIRMING_RESET,
                                                       ResetPhase.LISTING_FOR_TRIAL,
                                                       ResetPhase.CONFIRMING_TRIAL):
            return []
        loaded = by_name(controllers)
        s = self.settings
        try:
            if self.phase is ResetPhase.LISTING:
                self._reset_controller = choose_reset_controller(loaded, s.reset_controllers)
                problem = trial_controller_problem(loaded, s.trial_controller)
                if problem is not None:
                    return self._fail(problem)
                return self._switch_or_skip(loaded, self._reset_controller, ResetPhase.SWITCHING_TO_RESET, now)
            if self.phase is ResetPhase.LISTING_FOR_TRIAL:
                return self._switch_or_skip(loaded, s.trial_controller, ResetPhase.SWITCHING_TO_TRIAL, now)
            target = self._reset_controller if self.phase is ResetPhase.CONFIRMING_RESET else s.trial_controller
            plan = plan_activation(loaded, target, s.joints, s.exclusive_controllers)
        except SwitchError as exc:
            return self._fail(str(exc))
        if plan.needed:
            return self._fail(self._not_switched(plan, loaded))
        return self._after_switch(now)

    def on_switch(self, token: int, ok: bool, message: str, now: float) -> list[Command]:
        if token != self._token or self.phase not in (ResetPhase.SWITCHING_TO_RESET,
                                                       ResetPhase.SWITCHING_TO_TRIAL):
            return []
        if not ok:
            return self._fail(f'controller_manager refused the switch{": " + message if message else ""}')
        confirm = (ResetPhase.CONFIRMING_RESET if self.phase is ResetPhase.SWITCHING_TO_RESET
                   else ResetPhase.CONFIRMING_TRIAL)
        return self._enter(confirm, now, self.settings.service_timeout_s,
                           ListControllersCall(self._next_token()))

    def on_goal_response(self, token: int, accepted: bool, now: float) -> list[Command]:
        if token != self._token or self.phase is not ResetPhase.SENDING_GOAL:
            # accepted after this reset gave up on it: it must not move the arm now
            return [CancelTrajectory(token)] if accepted else []
        if not accepted:
            self._goal_token = None
            return self._fail(f'{self._reset_controller} rejected the trajectory goal')
        deadline = self._move_duration * self.settings.speed_scaling_margin + self.settings.goal_time_tolerance_s
        return self._enter(ResetPhase.MOVING, now, deadline)

    def on_trajectory_result(self, token: int, status: str, error_code: int, error_string: str,
                             now: float) -> list[Command]:
        """The goal's end: status 'succeeded', 'aborted' or 'canceled' (JTC cancels a goal
        with error_code SUCCESSFUL when it is deactivated or cancelled: only the status tells)."""
        if token != self._token or self.phase not in (ResetPhase.SENDING_GOAL, ResetPhase.MOVING):
            return []
        self._goal_token = None
        if status != 'succeeded' or error_code != 0:
            name = TRAJECTORY_ERRORS.get(error_code, 'unknown error code')
            detail = f': {error_string}' if error_string else ''
            verb = 'canceled' if status == 'canceled' else 'aborted'
            return self._fail(f'{self._reset_controller} {verb} the move with {name} ({error_code}){detail}')
        return self._enter(ResetPhase.SETTLING, now, self.settings.settle_timeout_s)

    def on_joint_state(self, names: Sequence[str], positions: Sequence[float],
                       velocities: Sequence[float], stamp_ns: int, now: float) -> list[Command]:
        sample = self._read(names, positions, velocities, stamp_ns, now)
        if sample is None:
            return []
        self._latest = sample
        if self.phase is not ResetPhase.SETTLING or self._pose_error(sample) is not None:
            return []
        self._verified_stamp = sample.stamp_ns
        return self._enter(ResetPhase.LISTING_FOR_TRIAL, now, self.settings.service_timeout_s,
                           ListControllersCall(self._next_token()))

    def on_program_running(self, running: bool, now: float) -> list[Command]:
        if self.program.update(running) and self.program.required and self.busy:
            return self._fail(self.program.stop_reason())
        return []

    def tick(self, now: float) -> list[Command]:
        """Fail the step whose deadline passed."""
        if not self.busy or now < self._deadline:
            return []
        return self._fail(self._timeout_message())

    # ------------------------------------------------------------------ steps
    def _switch_or_skip(self, loaded: Mapping[str, ControllerInfo], target: str,
                        switching: ResetPhase, now: float) -> list[Command]:
        plan = plan_activation(loaded, target, self.settings.joints, self.settings.exclusive_controllers)
        if not plan.needed:
            self.phase = switching   # nothing to switch: as if confirmed
            return self._after_switch(now)
        s = self.settings
        self._plan = plan
        return self._enter(switching, now, s.switch_timeout_s + s.service_timeout_s,
                           SwitchCall(self._next_token(), plan.activate, plan.deactivate, s.switch_timeout_s))

    def _after_switch(self, now: float) -> list[Command]:
        if self.phase in (ResetPhase.CONFIRMING_RESET, ResetPhase.SWITCHING_TO_RESET):
            return self._send_goal(now)
        return self._finish()

    def _send_goal(self, now: float) -> list[Command]:
        s = self.settings
        latest = self._latest
        if latest is None or now - latest.arrival > s.state_timeout_s:
            why = f' ({self._state_problem})' if self._state_problem else ''
            age = 'none yet' if latest is None else f'the latest is {now - latest.arrival:.1f} s old'
            return self._fail(f'no recent joint_states to start the move from: {age}{why}')
        distance = max(abs(a - b) for a, b in zip(self._q0, latest.positions))
        duration = max(s.min_move_duration_s, distance / s.max_joint_velocity)
        if duration > s.max_move_duration_s:
            return self._fail(f'the start pose is {distance:.3f} rad away, more than '
                              f'max_move_duration_s ({s.max_move_duration_s:g} s) at max_joint_velocity '
                              f'({s.max_joint_velocity:g} rad/s) allows')
        self._move_duration = duration
        token = self._next_token()
        self._goal_token = token
        return self._enter(ResetPhase.SENDING_GOAL, now, s.service_timeout_s,
                           TrajectoryGoal(token, self._reset_controller, s.joints, self._q0, duration,
                                          s.goal_time_tolerance_s))

    def _finish(self) -> list[Command]:
        stamp = self._verified_stamp
        self._idle()
        return [ResetDone(True, f'at the start pose (max |q - q0| <= {self.settings.position_tolerance:g} rad), '
                                f'{self.settings.trial_controller} active', stamp)]

    # ------------------------------------------------------------------ helpers
    def _enter(self, phase: ResetPhase, now: float, timeout_s: float, *commands: Command) -> list[Command]:
        self.phase = phase
        self._deadline = now + timeout_s
        self._timeout_s = timeout_s
        return list(commands)

    def _next_token(self) -> int:
        self._token += 1
        return self._token

    def _idle(self) -> None:
        self.phase = ResetPhase.IDLE
        self._deadline = math.inf
        self._token += 1            # answers still in flight are now stale

    def _fail(self, reason: str) -> list[Command]:
        commands: list[Command] = []
        if self._goal_token is not None and self.phase in (ResetPhase.SENDING_GOAL, ResetPhase.MOVING):
            commands.append(CancelTrajectory(self._goal_token))
        self._goal_token = None
        step = self.phase.value
        self._idle()
        commands.append(ResetDone(False, f'reset failed while {step}: {reason}'))
        return commands

    def _timeout_message(self) -> str:
        t = f'{self._timeout_s:.1f} s'
        if self.phase in (ResetPhase.LISTING, ResetPhase.CONFIRMING_RESET, ResetPhase.LISTING_FOR_TRIAL,
                          ResetPhase.CONFIRMING_TRIAL):
            return f'list_controllers did not answer within {t} (is the controller manager running?)'
        if self.phase in (ResetPhase.SWITCHING_TO_RESET, ResetPhase.SWITCHING_TO_TRIAL):
            return (f'switch_controller (activate {list(self._plan.activate)}, deactivate '
                    f'{list(self._plan.deactivate)}) did not answer within {t}')
        if self.phase is ResetPhase.SENDING_GOAL:
            return (f'{self._reset_controller}/follow_joint_trajectory did not answer the goal '
                    f'within {t}')
        if self.phase is ResetPhase.MOVING:
            return (f'{self._reset_controller} did not finish the {self._move_duration:.1f} s move '
                    f'within {t} (is the speed slider turned down?)')
        latest = self._latest
        if latest is None:
            return f'no joint_states within {t} after the move'
        return (f'the arm did not reach the start pose: {self._pose_error(latest)} '
                f'{t} after {self._reset_controller} reported success')

    def _pose_error(self, sample: _JointSample) -> str | None:
        """None when the sample is at q0 and stopped, else what is off."""
        s = self.settings
        errors = [abs(q - q0) for q, q0 in zip(sample.positions, self._q0)]
        worst = max(range(len(errors)), key=errors.__getitem__)
        if errors[worst] > s.position_tolerance:
            return (f'{s.joints[worst]} is {errors[worst]:.4f} rad from q0 '
                    f'(position_tolerance {s.position_tolerance:g} rad)')
        if sample.velocities is not None:
            speeds = [abs(v) for v in sample.velocities]
            fastest = max(range(len(speeds)), key=speeds.__getitem__)
            if speeds[fastest] > s.velocity_tolerance:
                return (f'{s.joints[fastest]} still moves at {speeds[fastest]:.4f} rad/s '
                        f'(velocity_tolerance {s.velocity_tolerance:g} rad/s)')
        return None

    def _read(self, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float],
              stamp_ns: int, now: float) -> _JointSample | None:
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.settings.joints if j not in index]
        if missing or len(positions) != len(names):
            self._state_problem = (f'joint_states lacks {missing}; it has {list(names)}' if missing else
                                   f'joint_states has {len(names)} names but {len(positions)} positions')
            return None
        self._state_problem = ''
        order = [index[j] for j in self.settings.joints]
        v = tuple(float(velocities[i]) for i in order) if len(velocities) == len(names) else None
        return _JointSample(tuple(float(positions[i]) for i in order), v, int(stamp_ns), now)

    def _request_problem(self, joint_names: Sequence[str], positions: Sequence[float]) -> str | None:
        joints = self.settings.joints
        if len(joint_names) != len(positions):
            return f'{len(joint_names)} joint names but {len(positions)} positions'
        if sorted(joint_names) != sorted(joints):
            return f'the request names joints {list(joint_names)}; this arm has {list(joints)}'
        bad = [n for n, p in zip(joint_names, positions) if not math.isfinite(float(p))]
        if bad:
            return f'non-finite start positions for {bad}'
        return None

    def _not_switched(self, plan: SwitchPlan, loaded: Mapping[str, ControllerInfo]) -> str:
        still = [f'{n} ({loaded[n].state})' for n in plan.activate + plan.deactivate]
        return (f'controller_manager answered the switch as done, but list_controllers shows '
                f'{", ".join(still)} (wanted {plan.target} active alone)')


def reset_node_parameters(joints: Sequence[str], command_interface: str,
                          use_mock_hardware: bool) -> dict[str, object]:
    """ur_reset_node's parameters for an arm's joints and the trials' command interface
    (launch/ur.launch.py). Mock hardware of older driver releases never reports a running
    robot program, so only a real arm requires one."""
    if command_interface not in TRIAL_CONTROLLERS:
        raise ValueError(f"command_interface must be one of {sorted(TRIAL_CONTROLLERS)}, "
                         f"got {command_interface!r}")
    return {'joints': list(joints), 'trial_controller': TRIAL_CONTROLLERS[command_interface],
            'require_robot_program': not use_mock_hardware}
