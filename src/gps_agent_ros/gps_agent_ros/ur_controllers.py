"""What a UR arm's ur_robot_driver reports, as plain data: the controllers of its controller
manager (list_controllers), the smallest switch that gives the arm to one of them, and whether
the robot program (External Control) runs. Free of ROS: ur_reset_node and controller_node turn
messages into these, gps_agent_ros.ur_reset sequences a reset with them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

UR_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
             'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
# In order of preference; ur_robot_driver releases without a scaled JTC have only the second.
RESET_CONTROLLERS = ('scaled_joint_trajectory_controller', 'joint_trajectory_controller')
# UR controllers that move the arm without claiming a joint's command interface: a reset or a
# trial never runs next to them.
EXCLUSIVE_CONTROLLERS = ('passthrough_trajectory_controller', 'freedrive_mode_controller',
                         'force_mode_controller', 'twist_controller',
                         'motion_primitive_forward_controller')
PROGRAM_RUNNING_TOPIC = 'io_and_status_controller/robot_program_running'
TRIAL_CONTROLLERS = {'effort': 'forward_effort_controller', 'velocity': 'forward_velocity_controller'}
_SWITCHABLE = ('inactive', 'active')


# ----------------------------------------------------------------------------- controllers
@dataclass(frozen=True)
class ControllerInfo:
    """One entry of controller_manager's list_controllers (the fields used here)."""
    name: str
    state: str                                  # unconfigured | inactive | active | finalized
    type: str = ''
    claimed_interfaces: tuple[str, ...] = ()    # e.g. ('shoulder_pan_joint/position', ...)


class SwitchError(ValueError):
    """The controllers loaded cannot give the arm to the controller asked for."""


@dataclass(frozen=True)
class SwitchPlan:
    """The smallest switch_controller request that makes `target` the arm's only controller."""
    target: str
    activate: tuple[str, ...]
    deactivate: tuple[str, ...]

    @property
    def needed(self) -> bool:
        return bool(self.activate or self.deactivate)


def by_name(controllers: Iterable[ControllerInfo]) -> dict[str, ControllerInfo]:
    return {c.name: c for c in controllers}


def plan_activation(controllers: Mapping[str, ControllerInfo], target: str, joints: Sequence[str],
                    exclusive: Iterable[str] = EXCLUSIVE_CONTROLLERS) -> SwitchPlan:
    """What to activate and deactivate so that `target` alone commands `joints`, from the
    controllers' current states: an active target is not activated again, inactive
    controllers are not deactivated (STRICT switches refuse both on some releases)."""
    info = controllers.get(target)
    if info is None:
        raise SwitchError(f'{target} is not loaded in the controller manager '
                          f'(loaded: {", ".join(sorted(controllers)) or "none"})')
    if info.state not in _SWITCHABLE:
        raise SwitchError(f'{target} is {info.state or "in an unknown state"}, so it cannot be '
                          f'activated (it must be configured: inactive or active)')
    exclusive = set(exclusive)
    joint_set = set(joints)
    conflicts = sorted(c.name for c in controllers.values()
                       if c.name != target and c.state == 'active'
                       and (c.name in exclusive or _claims_joint(c, joint_set)))
    return SwitchPlan(target, () if info.state == 'active' else (target,), tuple(conflicts))


def _claims_joint(controller: ControllerInfo, joints: set[str]) -> bool:
    return any(interface.rsplit('/', 1)[0] in joints for interface in controller.claimed_interfaces)


def choose_reset_controller(controllers: Mapping[str, ControllerInfo],
                            candidates: Sequence[str]) -> str:
    """The first candidate the driver loaded and configured."""
    for name in candidates:
        if name in controllers and controllers[name].state in _SWITCHABLE:
            return name
    raise SwitchError(f'none of the reset controllers {list(candidates)} is loaded and configured '
                      f'(loaded: {", ".join(sorted(controllers)) or "none"})')


def trial_controller_problem(controllers: Mapping[str, ControllerInfo], trial_controller: str) -> str | None:
    """Why the trials' forward controller cannot be used with these controllers, or None."""
    info = controllers.get(trial_controller)
    if info is not None and info.state in _SWITCHABLE:
        return None
    hint = ''
    if trial_controller == TRIAL_CONTROLLERS['effort']:
        hint = (' (torque control needs a ur_robot_driver with the effort command interface, '
                'which e.g. kilted 4.0-4.2 lack, and PolyScope >= 5.23; '
                'or run the trials with command_interface:=velocity)')
    state = 'not loaded' if info is None else info.state
    return f'the trial controller {trial_controller} is {state} in the controller manager{hint}'


# ----------------------------------------------------------------------------- robot program
class RobotProgramMonitor:
    """Whether the robot program (External Control) runs, from the driver's
    `io_and_status_controller/robot_program_running` (std_msgs/Bool, transient local, published
    only when it changes): no message yet means it has not run since the driver started.

    Trials and resets may only run while it does, when `required` (a real arm); mock hardware
    of older driver releases never reports a running program, so there it is not required."""

    def __init__(self, required: bool, topic: str = PROGRAM_RUNNING_TOPIC) -> None:
        self.required = bool(required)
        self.topic = topic
        self.running: bool | None = None

    def update(self, running: bool) -> bool:
        """Record a message; True when this message says a running program stopped."""
        stopped = self.running is True and not running
        self.running = bool(running)
        return stopped

    def refusal(self) -> str | None:
        """Why a trial or reset may not start now, or None."""
        if not self.required or self.running:
            return None
        if self.running is None:
            return (f'the robot program has not run since the driver started (no message on '
                    f'{self.topic}): start External Control on the teach pendant')
        return (f'the robot program is not running ({self.topic} is false): start External '
                f'Control on the teach pendant')

    def stop_reason(self) -> str:
        return f'the robot program stopped ({self.topic} turned false)'
