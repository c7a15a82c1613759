"""ur_reset_node's logic (gps_agent_ros.ur_reset) against the fake controller manager and arm
(tests/fakes/ur_driver.py), in simulated time: no DDS, every time an injected clock.

Each recorded driver release (tests/fixtures/ur_driver) starts the fake controller manager
with that release's controllers in the states its launch leaves them in, and from states a
session reaches later; a reset must end with the arm verified at q0 and the trial controller
alone in charge, using only the switches those states need.
"""
from __future__ import annotations

import dataclasses
import math

import pytest

from fakes.ur_driver import (HOME, STRICT, UR_JOINTS, ArmModel, ControllerManagerModel,
                             DriverRelease, releases)
from gps_agent_ros.ur_controllers import ControllerInfo, RobotProgramMonitor, SwitchError, by_name, plan_activation
from gps_agent_ros.ur_reset import (CancelTrajectory, ListControllersCall, ResetDone, ResetPhase, ResetSequence,
                                    ResetSettings, SwitchCall, TrajectoryGoal, reset_node_parameters)

RELEASES = releases()
DT = 0.01            # simulated step [s]
LATENCY = 0.02       # every answer arrives this long after its request [s]
Q0 = (1.5, -1.2, 1.4, -1.9, -1.5707963, 0.2)   # 1.5 rad from HOME at most: a 3.0 s move at 0.5 rad/s


def by_release(name: str) -> DriverRelease:
    return next(r for r in RELEASES if r.name == name)


class Rig:
    """A ResetSequence wired to ControllerManagerModel + ArmModel, stepped in simulated time:
    requests are answered after LATENCY, joint_states arrive every DT with stamp = time."""

    def __init__(self, release: DriverRelease, interface: str = 'velocity', states=None,
                 program_running: bool | None = True, **settings) -> None:
        trial = {'effort': 'forward_effort_controller', 'velocity': 'forward_velocity_controller'}[interface]
        self.settings = ResetSettings(trial_controller=trial, **settings)
        self.cm = ControllerManagerModel(release, UR_JOINTS, states)
        self.arm = ArmModel(UR_JOINTS, HOME, [release.goal_tolerance('scaled_joint_trajectory_controller', j)
                                              or 0.1 for j in UR_JOINTS])
        self.seq = ResetSequence(self.settings)
        self.now = 0.0
        self.answer_list = self.answer_switch = self.answer_goals = True
        self.drop_program_at: float | None = None
        self.commands: list[tuple[float, object]] = []
        self._pending: list[tuple[float, object]] = []
        self._goal: tuple[int, str] | None = None
        if program_running is not None:
            self.seq.on_program_running(program_running, 0.0)

    def reset(self, q0=Q0, names=UR_JOINTS, limit_s: float = 200.0) -> ResetDone:
        self._step_arm()
        for cmd in self.seq.start(names, q0, self.now):
            if (done := self._do(cmd)) is not None:
                return done
        while self.now < limit_s:
            self.now = round(self.now + DT, 9)
            for cmd in self._due() + self._step_arm() + self.seq.tick(self.now):
                if (done := self._do(cmd)) is not None:
                    return done
        raise AssertionError(f'no ResetDone within {limit_s} s of simulated time (phase {self.seq.phase})')

    @property
    def switches(self) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
        return self.cm.switch_requests

    # -------------------------------------------------------------- the peers
    def _do(self, cmd) -> ResetDone | None:
        self.commands.append((self.now, cmd))
        if isinstance(cmd, ResetDone):
            return cmd
        if isinstance(cmd, ListControllersCall) and self.answer_list:
            self._later(lambda: self.seq.on_controllers(cmd.token, self._listing(), self.now))
        elif isinstance(cmd, SwitchCall) and self.answer_switch:
            self._later(lambda: self.seq.on_switch(cmd.token, *self.cm.switch(cmd.activate, cmd.deactivate, STRICT),
                                                   self.now))
        elif isinstance(cmd, TrajectoryGoal) and self.answer_goals:
            self._later(lambda: self._accept(cmd))
        elif isinstance(cmd, CancelTrajectory):
            self.arm.cancel()
            self._goal = None
        return None

    def _accept(self, goal: TrajectoryGoal) -> list:
        accepted = self.cm.states().get(goal.controller) == 'active' and sorted(goal.joint_names) == sorted(UR_JOINTS)
        if accepted:
            order = {n: i for i, n in enumerate(goal.joint_names)}
            self.arm.start([goal.positions[order[j]] for j in UR_JOINTS], goal.duration_s,
                           goal.goal_time_tolerance_s, self.now)
            self._goal = (goal.token, goal.controller)
        return self.seq.on_goal_response(goal.token, accepted, self.now)

    def _listing(self) -> list[ControllerInfo]:
        return [ControllerInfo(c.name, c.state, c.type, c.command_interfaces if c.state == 'active' else ())
                for c in self.cm.listing()]

    def _later(self, deliver) -> None:
        self._pending.append((self.now + LATENCY, deliver))

    def _due(self) -> list:
        due = [d for t, d in self._pending if t <= self.now + 1e-12]
        self._pending = [(t, d) for t, d in self._pending if t > self.now + 1e-12]
        return [cmd for deliver in due for cmd in deliver()]

    def _step_arm(self) -> list:
        out = []
        if self.drop_program_at is not None and self.now >= self.drop_program_at:
            self.drop_program_at = None
            out += self.seq.on_program_running(False, self.now)
        self.arm.step(self.now)
        if self._goal is not None:
            token, controller = self._goal
            verdict = self.arm.result(self.now)
            if verdict is not None:
                self._goal = None
                out += self.seq.on_trajectory_result(token, 'succeeded' if verdict[0] == 0 else 'aborted',
                                                     verdict[0], verdict[1], self.now)
        out += self.seq.on_joint_state(UR_JOINTS, self.arm.q, self.arm.qd, int(round(self.now * 1e9)), self.now)
        return out


def at_q0(arm: ArmModel, q0=Q0, tol: float = 0.01) -> bool:
    return max(abs(a - b) for a, b in zip(arm.q, q0)) <= tol


# ----------------------------------------------------------------------------- the fake itself
@pytest.mark.parametrize('release', RELEASES, ids=lambda r: r.name)
def test_fake_refuses_the_old_strict_switch_from_the_drivers_initial_states(release):
    """What broke the first reset: with joint_trajectory_controller started active (the old
    launch's initial_joint_controller) and the forward controller inactive, a STRICT
    'activate JTC, deactivate forward' is refused. Checked here so the scenarios below mean
    something."""
    cm = ControllerManagerModel(release, UR_JOINTS, release.initial_states(
        {'initial_joint_controller': 'joint_trajectory_controller'}))
    ok, message = cm.switch(['joint_trajectory_controller'], ['forward_velocity_controller'], STRICT)
    assert not ok and 'could not activate joint_trajectory_controller: it is already active' in message
    assert 'could not deactivate forward_velocity_controller: it is inactive' in message
    assert cm.states()['joint_trajectory_controller'] == 'active'
    ok, message = cm.switch(['forward_velocity_controller'], [], STRICT)
    assert not ok and 'one control mode' in message          # the UR hardware refuses two modes


# ----------------------------------------------------------------------------- resets that work
def scenarios(release: DriverRelease) -> dict[str, dict[str, str]]:
    base = release.initial_states()
    return {
        'driver defaults': base,
        'jtc started active (old gps launch)': release.initial_states(
            {'initial_joint_controller': 'joint_trajectory_controller'}),
        'no joint controller activated': release.initial_states({'activate_joint_controller': 'false'}),
        'mock hardware': release.initial_states({'use_mock_hardware': 'true'}),
        'after a trial': {**release.initial_states({'activate_joint_controller': 'false'}),
                          'forward_velocity_controller': 'active'},
        'forward position active': {**release.initial_states({'activate_joint_controller': 'false'}),
                                    'forward_position_controller': 'active'},
    }


CASES = [(r, name) for r in RELEASES for name in scenarios(r)]


@pytest.mark.parametrize('release,scenario', CASES, ids=[f'{r.name}-{s}' for r, s in CASES])
def test_reset_reaches_q0_and_hands_the_arm_to_the_trial_controller(release, scenario):
    rig = Rig(release, 'velocity', scenarios(release)[scenario])
    done = rig.reset()
    assert done.success, done.message
    assert at_q0(rig.arm)
    states = rig.cm.states()
    motion = sorted(n for n, s in states.items() if s == 'active' and release.interface_of(n) is not None)
    assert motion == ['forward_velocity_controller'], states
    # the reset moved with scaled JTC (UR's default), one goal, timed from the distance
    goals = [(t, c) for t, c in rig.commands if isinstance(c, TrajectoryGoal)]
    assert [g.controller for _, g in goals] == ['scaled_joint_trajectory_controller']
    (t_goal, goal), = goals
    assert goal.duration_s == pytest.approx(1.5 / 0.5)
    # the stamp is the one of the first joint_states at q0 after the move: the one that made the
    # sequence read list_controllers for the switch back
    t_verified = next(t for t, c in rig.commands if isinstance(c, ListControllersCall) and t > t_goal)
    assert t_verified >= t_goal + LATENCY + goal.duration_s
    assert done.stamp_ns == round(t_verified * 1e9)
    # the fake refuses any STRICT switch that asks for more than the states need: success
    # means each switch asked only for what was needed
    assert rig.switches and all(strictness == STRICT for *_, strictness in rig.switches)


def test_an_already_active_reset_controller_is_not_switched_again():
    release = by_release('main-032aad6')
    rig = Rig(release, 'effort', release.initial_states())     # scaled JTC active, as launched
    done = rig.reset()
    assert done.success, done.message
    assert rig.switches == [(('forward_effort_controller',), ('scaled_joint_trajectory_controller',), STRICT)]


def test_the_reset_controller_replaces_whatever_moves_the_arm():
    release = by_release('main-032aad6')
    states = {**release.initial_states({'activate_joint_controller': 'false'}),
              'passthrough_trajectory_controller': 'active', 'force_mode_controller': 'active'}
    rig = Rig(release, 'effort', states)
    done = rig.reset()
    assert done.success, done.message
    assert rig.switches[0] == (('scaled_joint_trajectory_controller',),
                               ('force_mode_controller', 'passthrough_trajectory_controller'), STRICT)
    assert rig.cm.states()['force_mode_controller'] == 'inactive'


def test_a_driver_without_scaled_jtc_resets_with_jtc():
    """main after 6.0.0 removes scaled_joint_trajectory_controller (its JTC scales itself)."""
    base = by_release('main-032aad6')
    release = dataclasses.replace(
        base, spawned_inactive=tuple(c for c in base.spawned_inactive if c != 'scaled_joint_trajectory_controller'),
        launch_arguments={**base.launch_arguments,
                          'initial_joint_controller': {'default': 'joint_trajectory_controller'}},
        controllers={k: v for k, v in base.controllers.items() if k != 'scaled_joint_trajectory_controller'})
    rig = Rig(release, 'effort', release.initial_states())
    done = rig.reset()
    assert done.success, done.message
    assert [c.controller for _, c in rig.commands if isinstance(c, TrajectoryGoal)] == ['joint_trajectory_controller']


# ----------------------------------------------------------------------------- resets that fail
def test_effort_trials_on_a_driver_without_forward_effort_controller_fail_before_moving():
    rig = Rig(by_release('jazzy-3.0'), 'effort')
    done = rig.reset()
    assert not done.success
    assert 'forward_effort_controller is not loaded' in done.message
    assert 'command_interface:=velocity' in done.message
    assert rig.switches == [] and rig.arm.goals == []


def test_a_reset_that_stops_short_of_q0_fails_with_the_error():
    """The driver's goal tolerance is 0.1 rad, so scaled JTC reports success 0.05 rad short;
    joint_states show it, and the trial controller is not given the arm."""
    rig = Rig(by_release('main-032aad6'), 'effort')
    rig.arm.stop_short = {'wrist_1_joint': 0.05}
    done = rig.reset()
    assert not done.success
    assert 'the arm did not reach the start pose: wrist_1_joint is 0.0500 rad from q0' in done.message
    assert 'position_tolerance 0.01 rad' in done.message
    assert 'scaled_joint_trajectory_controller reported success' in done.message
    assert done.stamp_ns is None
    assert rig.cm.states()['scaled_joint_trajectory_controller'] == 'active'
    assert rig.cm.states()['forward_effort_controller'] == 'inactive'
    t_goal, goal = next((t, c) for t, c in rig.commands if isinstance(c, TrajectoryGoal))
    move_end = t_goal + LATENCY + goal.duration_s
    assert rig.commands[-1][0] == pytest.approx(move_end + rig.settings.settle_timeout_s, abs=2 * DT)


def test_a_move_the_controller_aborts_reports_its_error_code_and_string():
    rig = Rig(by_release('main-032aad6'), 'effort')
    rig.arm.stop_short = {'elbow_joint': -0.2}      # beyond the 0.1 rad goal tolerance
    done = rig.reset()
    assert not done.success
    assert 'aborted the move with GOAL_TOLERANCE_VIOLATED (-5): elbow_joint goal error 0.2000' in done.message


@pytest.mark.parametrize('what', ['list', 'switch', 'goal'])
def test_unanswered_requests_time_out_with_the_step_named(what):
    release = by_release('main-032aad6')
    rig = Rig(release, 'effort', release.initial_states({'activate_joint_controller': 'false'}))
    setattr(rig, f'answer_{what}' if what != 'goal' else 'answer_goals', False)
    done = rig.reset()
    assert not done.success
    s = rig.settings
    kind = {'list': ListControllersCall, 'switch': SwitchCall, 'goal': TrajectoryGoal}[what]
    started = next(t for t, c in rig.commands if isinstance(c, kind))
    expected = {'list': ('list_controllers did not answer within 3.0 s', s.service_timeout_s),
                'switch': ("switch_controller (activate ['scaled_joint_trajectory_controller'], deactivate []) "
                           'did not answer within 8.0 s', s.switch_timeout_s + s.service_timeout_s),
                'goal': ('scaled_joint_trajectory_controller/follow_joint_trajectory did not answer the goal '
                         'within 3.0 s', s.service_timeout_s)}[what]
    assert expected[0] in done.message
    assert rig.commands[-1][0] - started == pytest.approx(expected[1], abs=1.5 * DT)


def test_a_goal_the_controller_cancels_is_no_success_whatever_its_error_code():
    """JTC ends a goal it cancels (controller deactivated, e.g. by the driver's controller
    stopper) with error_code SUCCESSFUL: only the goal status says it did not get there."""
    joints = tuple(f'{j}/position' for j in UR_JOINTS)
    seq = ResetSequence(ResetSettings(trial_controller='forward_velocity_controller'))
    seq.on_program_running(True, 0.0)
    (listing,) = seq.start(UR_JOINTS, Q0, 0.0)
    seq.on_joint_state(UR_JOINTS, HOME, [0.0] * 6, 1, 0.0)
    (goal,) = seq.on_controllers(listing.token, [
        ControllerInfo('scaled_joint_trajectory_controller', 'active', claimed_interfaces=joints),
        ControllerInfo('forward_velocity_controller', 'inactive')], 0.1)
    seq.on_goal_response(goal.token, True, 0.2)
    (done,) = seq.on_trajectory_result(goal.token, 'canceled', 0, 'Goal successfully canceled', 1.0)
    assert not done.success
    assert 'scaled_joint_trajectory_controller canceled the move with SUCCESSFUL (0)' in done.message


def test_a_move_that_never_ends_is_cancelled_after_its_scaled_duration():
    rig = Rig(by_release('main-032aad6'), 'effort')
    rig.arm.stall = True                            # e.g. the speed slider at 0
    done = rig.reset()
    assert not done.success and 'did not finish the 3.0 s move within 13.0 s' in done.message
    assert 'speed slider' in done.message
    assert any(isinstance(c, CancelTrajectory) for _, c in rig.commands)


def test_no_reset_while_the_robot_program_is_not_running():
    for running, text in ((None, 'has not run since the driver started'), (False, 'is false')):
        rig = Rig(by_release('main-032aad6'), 'effort', program_running=running)
        done = rig.reset()
        assert not done.success and text in done.message and 'External Control' in done.message
        assert rig.switches == [] and [c for _, c in rig.commands if isinstance(c, ListControllersCall)] == []


def test_mock_hardware_needs_no_robot_program():
    rig = Rig(by_release('main-032aad6'), 'effort', program_running=None, require_robot_program=False)
    assert rig.reset().success


def test_the_robot_program_stopping_mid_move_fails_the_reset_and_cancels_the_move():
    rig = Rig(by_release('main-032aad6'), 'effort')
    rig.drop_program_at = 1.0
    done = rig.reset()
    assert not done.success and 'while moving to the start pose' in done.message
    assert 'the robot program stopped' in done.message
    assert any(isinstance(c, CancelTrajectory) for _, c in rig.commands)


def test_bad_requests_are_refused_before_anything_moves():
    rig = Rig(by_release('main-032aad6'), 'effort')
    done = rig.reset(names=UR_JOINTS[:5], q0=Q0[:5])
    assert not done.success and 'this arm has' in done.message
    done = rig.reset(q0=(math.nan,) + Q0[1:])
    assert not done.success and "non-finite start positions for ['shoulder_pan_joint']" in done.message
    far = (3.0, -1.5707963, 1.5707963, -1.5707963, -1.5707963, 0.0)
    rig = Rig(by_release('main-032aad6'), 'effort', max_move_duration_s=5.0, min_move_duration_s=1.0)
    done = rig.reset(q0=far)
    assert not done.success and 'the start pose is 3.000 rad away' in done.message
    assert rig.arm.goals == []


# ----------------------------------------------------------------------------- the pieces
def test_late_answers_after_a_timeout_are_ignored():
    seq = ResetSequence(ResetSettings(trial_controller='forward_velocity_controller'))
    seq.on_program_running(True, 0.0)
    (call,) = seq.start(UR_JOINTS, Q0, 0.0)
    (done,) = seq.tick(3.5)
    assert isinstance(done, ResetDone) and not done.success and not seq.busy
    assert seq.on_controllers(call.token, [], 3.6) == []
    assert seq.on_goal_response(call.token, True, 3.6) == [CancelTrajectory(call.token)]
    assert seq.on_goal_response(call.token, False, 3.6) == []
    seq.start(UR_JOINTS, Q0, 4.0)
    with pytest.raises(RuntimeError, match='already running'):
        seq.start(UR_JOINTS, Q0, 4.0)


def test_the_start_pose_counts_once_the_arm_has_stopped_there_and_its_stamp_is_answered():
    joints = lambda iface: tuple(f'{j}/{iface}' for j in UR_JOINTS)  # noqa: E731
    sjtc, fwd = 'scaled_joint_trajectory_controller', 'forward_velocity_controller'
    seq = ResetSequence(ResetSettings(trial_controller=fwd))
    seq.on_program_running(True, 0.0)
    (listing,) = seq.start(UR_JOINTS, Q0, 0.0)
    seq.on_joint_state(UR_JOINTS, HOME, [0.0] * 6, 1, 0.0)
    (goal,) = seq.on_controllers(listing.token, [ControllerInfo(sjtc, 'active', claimed_interfaces=joints('position')),
                                                 ControllerInfo(fwd, 'inactive')], 0.1)
    assert seq.on_goal_response(goal.token, True, 0.2) == []
    assert seq.on_trajectory_result(goal.token, 'succeeded', 0, '', 3.3) == [] and seq.phase is ResetPhase.SETTLING
    # at q0 (joint_states in another order), but the elbow still moves: not yet
    assert seq.on_joint_state(UR_JOINTS, Q0, [0.0, 0.0, 0.3, 0.0, 0.0, 0.0], 5, 3.4) == []
    (listing,) = seq.on_joint_state(list(reversed(UR_JOINTS)), list(reversed(Q0)), [0.0] * 6, 7, 3.5)
    (switch,) = seq.on_controllers(listing.token, [ControllerInfo(sjtc, 'active', claimed_interfaces=joints('position')),
                                                   ControllerInfo(fwd, 'inactive')], 3.6)
    assert (switch.activate, switch.deactivate) == ((fwd,), (sjtc,))
    (listing,) = seq.on_switch(switch.token, True, '', 3.7)
    (done,) = seq.on_controllers(listing.token, [ControllerInfo(sjtc, 'inactive'),
                                                 ControllerInfo(fwd, 'active', claimed_interfaces=joints('velocity'))], 3.8)
    assert done.success and done.stamp_ns == 7 and not seq.busy


def test_plan_activation_asks_only_for_what_the_states_need():
    joints = [f'left_{j}' for j in UR_JOINTS]          # a tf_prefix'ed arm
    controllers = by_name([
        ControllerInfo('scaled_joint_trajectory_controller', 'inactive'),
        ControllerInfo('forward_effort_controller', 'active', claimed_interfaces=tuple(f'{j}/effort' for j in joints)),
        ControllerInfo('other_arm_controller', 'active', claimed_interfaces=('right_elbow_joint/position',)),
        ControllerInfo('freedrive_mode_controller', 'inactive'),
        ControllerInfo('joint_state_broadcaster', 'active'),
        ControllerInfo('joint_trajectory_controller', 'unconfigured'),
    ])
    plan = plan_activation(controllers, 'scaled_joint_trajectory_controller', joints)
    assert plan.activate == ('scaled_joint_trajectory_controller',)
    assert plan.deactivate == ('forward_effort_controller',)
    assert not plan_activation(controllers, 'forward_effort_controller', joints).needed
    with pytest.raises(SwitchError, match='joint_trajectory_controller is unconfigured'):
        plan_activation(controllers, 'joint_trajectory_controller', joints)
    with pytest.raises(SwitchError, match='forward_velocity_controller is not loaded'):
        plan_activation(controllers, 'forward_velocity_controller', joints)


def test_settings_are_checked_and_bound_the_wait():
    with pytest.raises(ValueError, match="'position_tolerance' must be a finite number > 0"):
        ResetSettings(position_tolerance=0.0)
    with pytest.raises(ValueError, match="'joints' must be distinct"):
        ResetSettings(joints=('a', 'a'))
    s = ResetSettings()
    assert s.worst_case_s > s.move_timeout_s == s.max_move_duration_s * s.speed_scaling_margin + s.goal_time_tolerance_s


def test_robot_program_monitor():
    monitor = RobotProgramMonitor(required=True)
    assert 'has not run' in monitor.refusal()
    assert monitor.update(True) is False and monitor.refusal() is None
    assert monitor.update(False) is True and 'is false' in monitor.refusal()
    assert monitor.update(False) is False
    assert RobotProgramMonitor(required=False).refusal() is None


def test_reset_node_parameters():
    p = reset_node_parameters(UR_JOINTS, 'effort', use_mock_hardware=True)
    assert p == {'joints': list(UR_JOINTS), 'trial_controller': 'forward_effort_controller',
                 'require_robot_program': False}
    with pytest.raises(ValueError, match="command_interface must be one of"):
        reset_node_parameters(UR_JOINTS, 'position', use_mock_hardware=False)
