"""The trial lifecycle as a plain state machine: a fake arm port, time passed in, no DDS."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.safety import SafetyFilter
from gps_controllers.state_encoder import StateEncoder
from gps_controllers.trial_lifecycle import (FEEDBACK_EVERY, FEEDBACK_MIN_S, LifecycleTimeouts, Phase, TrialLifecycle,
                                             TrialOutcome)
from gps_controllers.trial_runner import TrialStatus
from gps_controllers.trial_spec import LinearGaussianSpec, TrialSpec

REPO = Path(__file__).resolve().parents[2]
URDF = REPO / "urdf" / "ur5e.urdf"
JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
          "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")
Q0 = np.array([0.0, -1.5707963, 1.5707963, -1.5707963, -1.5707963, 0.0])
DT, T = 0.05, 25
TIMEOUTS = LifecycleTimeouts(stale_s=0.5, reset_s=2.0, service_s=2.0, flush_s=0.3)


class FakePort:
    """Records what the lifecycle asks for; the test decides what the world answers."""

    def __init__(self) -> None:
        self.commands: list[np.ndarray] = []
        self.delivered = True
        self.service_ready = True
        self.reset_requests: list[np.ndarray] = []
        self.reset_cancels = 0
        self.feedback_steps: list[int] = []
        self.feedback_phases: list[str] = []
        self.outcomes: list[TrialOutcome] = []
        self.commanders: list[str] = []

    def publish(self, u):
        self.commands.append(np.array(u))

    def commands_delivered(self):
        return self.delivered

    def reset_service_ready(self):
        return self.service_ready

    def request_reset(self, joint_names, q0, objects, disturbance):
        assert tuple(joint_names) == JOINTS
        self.reset_requests.append(np.array(q0))

    def other_commanders(self):
        return list(self.commanders)

    def cancel_reset(self):
        self.reset_cancels += 1

    def feedback(self, step, phase):
        self.feedback_steps.append(step)
        self.feedback_phases.append(phase)

    def finished(self, outcome):
        self.outcomes.append(outcome)

    @property
    def outcome(self) -> TrialOutcome:
        assert len(self.outcomes) == 1, self.outcomes
        return self.outcomes[0]


@pytest.fixture(scope="module")
def robot():
    encoder = StateEncoder(URDF, JOINTS, "tool0", [[0.0, 0.0, 0.0], [0.05, 0.0, 0.05]], "base_link")
    return encoder, SafetyFilter.from_urdf(URDF, JOINTS)


@pytest.fixture
def port():
    return FakePort()


@pytest.fixture
def life(port, robot):
    lc = TrialLifecycle(port, len(JOINTS), TIMEOUTS, clock=lambda: 0.0, reset_service="/arm/reset")
    lc.set_robot(*robot)
    return lc


def spec(robot, k_value=1.0, **changes) -> TrialSpec:
    encoder = robot[0]
    fields = dict(condition="train/0", joint_names=JOINTS, q0=Q0, targets=np.zeros((2, 3)), horizon=T,
                  dt=DT, controller=LinearGaussianSpec(np.zeros((T, 6, encoder.dX)), np.full((T, 6), k_value)))
    fields.update(changes)
    return TrialSpec(**fields)


def to_starting(life, port, robot, now=0.0, stamp=10.0):
    """Drive a valid goal through flush, service and reset to STARTING (reset stamp `stamp`)."""
    requests = len(port.reset_requests)
    life.start(lambda: spec(robot), now)
    life.on_tick(now)
    assert life.phase is Phase.RESETTING and len(port.reset_requests) == requests + 1
    life.on_reset_answer(True, "reset", stamp, now)
    assert life.phase is Phase.STARTING


def feed(life, n, first_stamp=10.0, now=0.0, start=0):
    for i in range(start, start + n):
        life.on_state(Q0, np.zeros(6), first_stamp + i * DT, now + i * 0.01)


def assert_zero_last(port):
    assert port.commands and not port.commands[-1].any()


def command_in_flight(life, port, robot):
    """End a trial at once (an invalid goal: the lifecycle publishes a zero command), so that a
    command is on its way to the arm when the next goal comes; forget that trial's outcome and command."""
    life.start(lambda: spec(robot, dt=float("inf")), 0.0)
    assert port.outcome.status is TrialStatus.INVALID_CONTROLLER and not port.commands[-1].any()
    port.outcomes.clear()
    port.commands.clear()


# ---------------------------------------------------------------- the happy path
def test_every_phase_in_order_then_completed(life, port, robot):
    command_in_flight(life, port, robot)
    port.delivered, port.service_ready = False, False
    life.start(lambda: spec(robot), 0.0)
    assert life.phase is Phase.FLUSHING and not port.reset_requests
    life.on_tick(0.1)
    assert life.phase is Phase.FLUSHING            # a command still on its way to the arm
    port.delivered = True
    life.on_tick(0.2)
    assert life.phase is Phase.AWAITING_SERVICE
    port.service_ready = True
    life.on_tick(0.3)
    assert life.phase is Phase.RESETTING
    np.testing.assert_array_equal(port.reset_requests[0], Q0)
    life.on_state(Q0 + 0.2, np.zeros(6), 9.5, 0.35)  # a state from before the reset
    life.on_reset_answer(True, "reset", 10.0, 0.4)
    assert life.phase is Phase.STARTING and not port.commands
    life.on_state(Q0 + 0.1, np.zeros(6), 9.95, 0.41)  # still older than the reset's stamp
    assert life.phase is Phase.STARTING and not port.commands
    feed(life, T, now=0.5)
    out = port.outcome
    assert out.status is TrialStatus.COMPLETED and out.condition == "train/0"
    assert out.recording.steps == T and np.all(out.recording.U == 1.0)
    np.testing.assert_allclose(out.recording.X[:, :6], np.tile(Q0, (T, 1)))
    assert len(port.commands) == T + 1 and all(c.any() for c in port.commands[:T])
    assert_zero_last(port)
    assert port.feedback_steps == [10, 20]
    assert life.phase is Phase.IDLE


def test_post_reset_state_before_the_answer_starts_the_trial_at_once(life, port, robot):
    life.start(lambda: spec(robot), 0.0)
    life.on_tick(0.0)
    life.on_state(Q0, np.zeros(6), 10.0, 0.01)       # the lockstep sim's reset state ...
    life.on_reset_answer(True, "reset", 10.0, 0.02)  # ... then the answer naming its stamp
    assert life.phase is Phase.RUNNING and len(port.commands) == 1
    np.testing.assert_array_equal(port.commands[0], np.ones(6))


def test_commands_never_delivered_wait_only_flush_timeout(life, port, robot):
    command_in_flight(life, port, robot)
    port.delivered = False
    life.start(lambda: spec(robot), 0.0)
    life.on_tick(0.29)
    assert life.phase is Phase.FLUSHING
    life.on_tick(0.31)
    assert life.phase is Phase.RESETTING


def test_nothing_published_yet_needs_no_flush(life, port, robot):
    port.delivered = False
    life.start(lambda: spec(robot), 0.0)
    life.on_tick(0.0)
    assert life.phase is Phase.RESETTING


def test_a_state_after_every_outstanding_command_ends_the_flush_before_the_acks(life, port, robot):
    """A lockstep simulator answers each command with one state: the last trial's final action and
    its zero command are both answered after two states, not one, however long the acks take."""
    to_starting(life, port, robot)
    feed(life, T)                                      # T states -> T actions, then the zero
    assert port.outcome.status is TrialStatus.COMPLETED and len(port.commands) == T + 1
    port.outcomes.clear()
    port.delivered = False
    life.start(lambda: spec(robot), 1.0)
    life.on_tick(1.0)
    assert life.phase is Phase.FLUSHING
    life.on_state(Q0, np.zeros(6), 10.0 + T * DT, 1.01)        # answers the last action
    life.on_tick(1.02)
    assert life.phase is Phase.FLUSHING                         # the zero is still on its way
    life.on_state(Q0, np.zeros(6), 10.0 + (T + 1) * DT, 1.03)  # answers the zero
    assert life.phase is Phase.RESETTING and len(port.reset_requests) == 2


# --------------------------------------------------------------------- failures
@pytest.mark.parametrize("change, words", [
    (dict(joint_names=JOINTS[::-1]), ["in its order"]),
    (dict(q0=Q0 + 10.0), ["outside the URDF limits"]),
    (dict(targets=np.full((2, 3), np.nan)), ["ee_targets has non-finite"]),
    (dict(dt=float("inf")), ["dt must be a finite number"]),
])
def test_invalid_goal_ends_at_once_with_zeros(life, port, robot, change, words):
    life.start(lambda: spec(robot, **change), 0.0)
    out = port.outcome
    assert out.status is TrialStatus.INVALID_CONTROLLER and out.recording is None
    for w in words:
        assert w in out.reason, out.reason
    assert life.phase is Phase.IDLE and not port.reset_requests
    assert len(port.commands) == 1 and not port.commands[0].any()


def test_undecodable_goal_and_missing_robot(port, robot):
    life = TrialLifecycle(port, 6, TIMEOUTS, clock=lambda: 0.0)

    def undecodable():
        raise InvalidController("controller_type 9 is not known")

    life.start(undecodable, 0.0)
    assert "no robot model" in port.outcomes[-1].reason
    life.set_robot(*robot)
    life.start(undecodable, 0.0)
    assert port.outcomes[-1].status is TrialStatus.INVALID_CONTROLLER
    assert port.outcomes[-1].reason == "controller_type 9 is not known"


def test_reset_refused_service_missing_or_silent(life, port, robot):
    to = TIMEOUTS.reset_s
    life.start(lambda: spec(robot), 0.0)
    life.on_tick(0.0)
    life.on_reset_answer(False, "gripper stuck", 0.0, 0.1)
    assert port.outcomes[-1].status is TrialStatus.RESET_FAILED
    assert "/arm/reset failed: gripper stuck" in port.outcomes[-1].reason

    port.service_ready = False
    life.start(lambda: spec(robot), 1.0)
    life.on_tick(1.0)
    life.on_tick(1.0 + to - 0.01)
    assert life.phase is Phase.AWAITING_SERVICE
    life.on_tick(1.0 + to + 0.01)
    assert port.outcomes[-1].status is TrialStatus.RESET_FAILED
    assert "not available within 2 s" in port.outcomes[-1].reason

    port.service_ready = True
    life.start(lambda: spec(robot), 5.0)
    life.on_tick(5.0)
    life.on_tick(5.0 + to + 0.01)
    assert port.outcomes[-1].status is TrialStatus.RESET_FAILED
    assert "did not answer within 2 s" in port.outcomes[-1].reason and port.reset_cancels == 1
    life.on_reset_answer(True, "late", 0.0, 8.0)       # the late answer changes nothing
    assert life.phase is Phase.IDLE and len(port.outcomes) == 3
    assert_zero_last(port)


@pytest.mark.parametrize("phase", ["starting", "running"])
def test_stale_joint_states_abort(life, port, robot, phase):
    to_starting(life, port, robot, now=0.0)
    now = 0.0
    if phase == "running":
        feed(life, 3, now=0.0)
        now = 0.02
    life.on_tick(now + 0.49)
    assert life.active
    life.on_tick(now + 0.51)
    out = port.outcome
    assert out.status is TrialStatus.ABORTED_STALE_STATE and "no joint_states for 0.51" in out.reason
    assert (f"after {3 if phase == 'running' else 0} of {T} steps") in out.reason
    assert_zero_last(port)


def test_unusable_state_and_velocity_limit_abort(life, port, robot):
    to_starting(life, port, robot)
    feed(life, 2)
    life.on_bad_state("joint_states lacks joints ['elbow_joint']", 0.1)
    assert port.outcomes[-1].status is TrialStatus.ABORTED_STALE_STATE
    assert "unusable joint_states: joint_states lacks" in port.outcomes[-1].reason
    assert port.outcomes[-1].recording.steps == 2

    to_starting(life, port, robot, now=1.0)
    life.on_state(Q0, np.full(6, 100.0), 10.0, 1.0)
    assert port.outcomes[-1].status is TrialStatus.ABORTED_LIMIT and "exceeds" in port.outcomes[-1].reason
    assert_zero_last(port)


# ----------------------------------------------------------------- cancel / halt
CANCEL_AT = ["flushing", "awaiting_service", "resetting", "starting", "running"]


@pytest.mark.parametrize("phase", CANCEL_AT)
def test_cancel_in_every_phase(life, port, robot, phase):
    command_in_flight(life, port, robot)
    port.delivered = phase != "flushing"
    port.service_ready = phase != "awaiting_service"
    life.start(lambda: spec(robot), 0.0)
    life.on_tick(0.0)
    if phase in ("starting", "running"):
        life.on_reset_answer(True, "", 10.0, 0.0)
    if phase == "running":
        feed(life, 4)
    assert life.phase.value == phase
    life.cancel("cancelled by the client")
    out = port.outcome
    assert out.status is TrialStatus.CANCELLED and out.reason == "cancelled by the client"
    assert (out.recording is not None) == (phase == "running")
    assert port.reset_cancels == (1 if phase == "resetting" else 0)
    assert_zero_last(port)
    life.on_reset_answer(True, "", 10.0, 0.1)   # too late: ignored
    life.on_state(Q0, np.zeros(6), 10.5, 0.1)
    assert life.phase is Phase.IDLE and len(port.outcomes) == 1 and not port.commands[-1].any()


def test_halt_cancels_and_refuses_later_goals(life, port, robot):
    life.halt("SIGTERM")                       # idle: zeros anyway
    assert len(port.commands) == 1 and not port.commands[0].any() and not port.outcomes
    life.halted = False
    to_starting(life, port, robot)
    feed(life, 3)
    life.halt("controller node shutting down (SIGTERM)")
    assert port.outcome.status is TrialStatus.CANCELLED and "SIGTERM" in port.outcome.reason
    assert_zero_last(port)
    life.start(lambda: spec(robot), 1.0)
    assert port.outcomes[-1].status is TrialStatus.INVALID_CONTROLLER
    assert "shutting down" in port.outcomes[-1].reason and not life.active


def test_one_trial_at_a_time_and_no_model_swap_during_a_trial(life, port, robot):
    life.start(lambda: spec(robot), 0.0)
    with pytest.raises(RuntimeError, match="already flushing"):
        life.start(lambda: spec(robot), 0.0)
    with pytest.raises(RuntimeError, match="cannot change during a trial"):
        life.set_robot(*robot)


def test_heartbeat_in_every_phase(life, port, robot):
    """Feedback at least every HEARTBEAT_S whatever the phase: the client's liveness signal."""
    port.service_ready = False
    life.start(lambda: spec(robot), 0.0)
    life.on_tick(0.2)
    assert port.feedback_phases == []
    life.on_tick(0.51)
    assert port.feedback_phases == ["awaiting_service"]
    port.service_ready = True
    life.on_tick(0.6)
    life.on_tick(1.2)
    assert port.feedback_phases[-1] == "resetting"
    life.on_reset_answer(True, "", 10.0, 1.3)
    life.on_tick(1.71)
    assert port.feedback_phases[-1] == "starting"
    feed(life, 10, now=1.72)          # the 10th step: feedback for progress, not for time
    assert port.feedback_phases[-1] == "running" and port.feedback_steps[-1] == 10


@pytest.mark.parametrize("step_s,expected", [(0.01, [10, 20]), (0.004, [20]), (0.001, [])])
def test_progress_feedback_every_ten_steps_at_most_every_50_ms(life, port, robot, step_s, expected):
    """Every FEEDBACK_EVERY steps, thinned when steps come fast (a lockstep arm: ~1 ms a step), so
    a client hears of progress at 20 Hz at most; liveness is the heartbeat's (above)."""
    assert (FEEDBACK_EVERY, FEEDBACK_MIN_S) == (10, 0.05)
    to_starting(life, port, robot, now=1.0)
    for i in range(T):
        life.on_state(Q0, np.zeros(6), 10.0 + i * DT, 1.0 + i * step_s)
    assert port.outcome.status is TrialStatus.COMPLETED
    assert port.feedback_steps == expected


def test_another_commander_or_a_foreign_reset_ends_the_trial(port, robot):
    life = TrialLifecycle(port, 6, TIMEOUTS, clock=lambda: 0.0, track_resets=True)
    life.set_robot(*robot)
    to_starting(life, port, robot)
    life.on_reset_seen(0.0)                 # the event of our own request, arriving late
    feed(life, 3)
    assert life.phase is Phase.RUNNING
    port.commanders = ["/intruder"]
    life.on_tick(0.05)                      # looked at every INTEGRITY_CHECK_S
    assert life.phase is Phase.RUNNING
    life.on_tick(0.11)
    assert port.outcome.status is TrialStatus.ABORTED_INTERFERENCE and "/intruder" in port.outcome.reason
    assert_zero_last(port)

    port.commanders = []
    to_starting(life, port, robot, now=1.0)
    life.on_reset_seen(1.0)                 # ours
    feed(life, 3, now=1.0)
    life.on_reset_seen(1.05)                # someone else's
    assert port.outcomes[-1].status is TrialStatus.ABORTED_INTERFERENCE
    assert "reset during the trial" in port.outcomes[-1].reason
    assert_zero_last(port)
