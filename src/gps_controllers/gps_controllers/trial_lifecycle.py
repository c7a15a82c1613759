"""The life of one trial on an arm, as an explicit state machine without ROS.

controller_node turns messages into the events below and the lifecycle's requests (through an
`ArmPort`) back into messages; tests drive it with a fake port and an injected clock.

    IDLE ──start──▶ validate ──invalid──▶ IDLE  (INVALID_CONTROLLER)
                       │
                       ▼
                   FLUSHING           every command published so far has reached the arm (acked,
                       │              or answered: see below): a command overtaken by the reset
                       ▼              request would move the arm off its start (bounded by flush_s)
                   AWAITING_SERVICE   the reset service is available     (service_s)
                       ▼
                   RESETTING          reset requested; wait for its answer (reset_timeout_s)
                       ▼
                   STARTING           wait for the first joint_states stamped no earlier than
                       │              the reset answer's stamp (stale_timeout_s): older states
                       ▼              show the arm before the reset
                   RUNNING            one command per new step (TrialRunner) until T steps, a
                       │              limit, stale joint_states, or a cancel
                       ▼
                   IDLE               finished(outcome), after a zero command

Flushing: a command counts as delivered once its subscribers acknowledged it, or once as many
joint_states have arrived after it as commands are outstanding. A lockstep simulator publishes one
state per command it applied, so its answers prove delivery, and they come within a step where
Fast DDS's acknowledgements can wait for the writer's next heartbeat, often the flush's whole bound
(benchmarks/README.md). A free-running arm publishes states regardless; there the
rule proves nothing, but the one command that can still be in flight at a flush is the previous
trial's final zero, which the reset's own commands then replace.

Integrity: while STARTING or RUNNING, another publisher on the arm's command topic (polled
through `ArmPort.other_commanders`) or a reset the lifecycle did not ask for (`on_reset_seen`,
from the reset service's introspection events: exactly one request per trial is ours) ends the
trial ABORTED_INTERFERENCE: its sample is not what the controller did.

Images: a trial whose controller sees images (a visuomotor policy) or that records them feeds
each joint_states to the runner with the newest camera image stamped no later than it and no
more than `image_max_age_s` earlier (0: exactly the same stamp, as a lockstep simulator's sensor
publishes); a state waits for its image (the two topics arrive in any order) and the trial ends
ABORTED_STALE_STATE when none comes within `image_s`.

`cancel` and `halt` end any active phase with CANCELLED; after `halt` no goal is accepted and
only zeros are published. Every way out publishes a zero command before `finished`. Times are
seconds on a steady clock, passed in with each event; `clock` (the node clock: sim time under a
lockstep simulator) only stamps the commands' latencies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from collections import deque
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.safety import SafetyFilter
from gps_controllers.state_encoder import StateEncoder
from gps_controllers.trial_runner import TrialRunner, TrialStatus
from gps_controllers.trial_spec import TrialPlan, TrialSpec, plan_trial
from gps_core.disturbance_plan import DisturbancePlan

FEEDBACK_EVERY = 10     # steps between feedback messages while running ...
FEEDBACK_MIN_S = 0.05   # ... and not more often than this: a lockstep arm steps in ~1 ms, and each
                        # message costs the client a wake-up (progress at 20 Hz is enough to watch)
HEARTBEAT_S = 0.5       # and at least this often in every phase (a liveness signal for the client)
INTEGRITY_CHECK_S = 0.1  # how often the command topic's publishers are looked at while running


class Phase(Enum):
    IDLE = 'idle'
    FLUSHING = 'flushing'
    AWAITING_SERVICE = 'awaiting_service'
    RESETTING = 'resetting'
    STARTING = 'starting'
    RUNNING = 'running'


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended; `recording` holds X, U and timing when the trial started."""

    status: TrialStatus
    reason: str
    condition: str
    recording: TrialRunner | None = None

    def summary(self) -> str:
        """'ended STATUS: reason (timing)', for logs."""
        return (f"ended {self.status.name}{': ' + self.reason if self.reason else ''}"
                f"{' (' + self.recording.timing_summary() + ')' if self.recording is not None else ''}")


@dataclass(frozen=True)
class LifecycleTimeouts:
    """Seconds on the steady clock."""

    stale_s: float = 0.5        # no joint_states for this long while starting / running: abort
    reset_s: float = 10.0       # the reset service must answer within this
    service_s: float = 10.0     # the reset service must be discovered within this (DDS discovery
                                # can lag on a loaded machine: apart from the reset's own time)
    flush_s: float = 0.5        # at most this long to wait for commands to reach the arm
    image_s: float = 0.5        # a state waits at most this long for its camera image
    image_max_age_s: float = 0.0   # the image may be this much older than the state [s, stamps]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.image_max_age_s) and self.image_max_age_s >= 0.0):
            raise ValueError(f'image_max_age_s must be a finite number >= 0, got {self.image_max_age_s}')
        for name in ('stale_s', 'reset_s', 'service_s', 'flush_s', 'image_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')


class ArmPort(Protocol):
    """What the lifecycle asks of the outside world (controller_node implements it)."""

    def publish(self, u: np.ndarray) -> None:
        """Send command u [nj] to the arm."""

    def commands_delivered(self) -> bool:
        """Every command published so far has reached the arm."""

    def reset_service_ready(self) -> bool: ...

    def request_reset(self, joint_names: Sequence[str], q0: np.ndarray, objects: Mapping[str, np.ndarray],
                      disturbance: DisturbancePlan | None) -> None:
        """Ask for the reset (the arm to q0, the scene's objects to their centres, the trial's pushes
        to a simulator: None for none); its answer comes back as `on_reset_answer`."""

    def cancel_reset(self) -> None:
        """Forget the reset request in flight (its answer, if any, is then ignored)."""

    def other_commanders(self) -> list[str]:
        """Publishers on the arm's command topic other than this controller (names)."""

    def feedback(self, step: int, phase: str) -> None:
        """Progress of the active trial (steps run so far, the phase's name)."""

    def finished(self, outcome: TrialOutcome) -> None:
        """The trial ended; the arm has been sent a zero command."""


class TrialLifecycle:
    """One trial at a time on one arm (see the module docstring)."""

    def __init__(self, port: ArmPort, n_joints: int, timeouts: LifecycleTimeouts,
                 clock: Callable[[], float], reset_service: str = 'reset',
                 track_resets: bool = False, state_topic: str = 'joint_states') -> None:
        """track_resets: the reset service's events reach on_reset_seen (count ours);
        reset_service, state_topic: names for messages."""
        self._port, self._timeouts, self._clock = port, timeouts, clock
        self._track_resets, self._states = track_resets, state_topic
        self._service = reset_service  # for messages
        self._zeros = np.zeros(n_joints)
        self._encoder: StateEncoder | None = None
        self._safety: SafetyFilter | None = None
        self.phase = Phase.IDLE
        self.halted = False
        self._plan: TrialPlan | None = None
        self._runner: TrialRunner | None = None
        self._deadline = 0.0          # of the current waiting phase (steady clock)
        self._start_stamp = 0.0       # the reset answer's stamp
        self._last_state = 0.0        # steady time of the newest joint_states (STARTING/RUNNING)
        self._last_feedback = 0.0     # steady time of the last feedback
        self._last_integrity = 0.0    # steady time of the last look at the command topic
        self._own_resets = 0          # reset requests of ours not yet seen in the service's events
        self._unanswered = 0          # commands published and not yet followed by a joint_states
        # the newest joint_states seen outside RUNNING (a lockstep simulator publishes the reset
        # state once, possibly before the reset answer arrives)
        self._q, self._qd = np.zeros(n_joints), np.zeros(n_joints)
        self._stamp: float | None = None
        self._images: deque[tuple[float, np.ndarray]] = deque(maxlen=8)   # the newest camera images
        self._waiting_since: float | None = None    # a state waits for its image (q, qd, _stamp)

    # ----------------------------------------------------------------- robot
    def set_robot(self, encoder: StateEncoder, safety: SafetyFilter) -> None:
        """The robot model goals are validated and run with; only between trials."""
        if self.phase is not Phase.IDLE:
            raise RuntimeError('the robot model cannot change during a trial')
        self._encoder, self._safety = encoder, safety

    @property
    def has_robot(self) -> bool:
        return self._encoder is not None

    @property
    def active(self) -> bool:
        return self.phase is not Phase.IDLE

    @property
    def runner(self) -> TrialRunner | None:
        return self._runner

    # ---------------------------------------------------------------- events
    def start(self, decode: Callable[[], TrialSpec], now: float) -> None:
        """A goal arrived (at `now`): decode and validate it (InvalidController ->
        INVALID_CONTROLLER). A valid trial waits for the next event (call `on_tick` with the time
        after validation: decoding a large network takes time the deadlines must not lose)."""
        if self.phase is not Phase.IDLE:
            raise RuntimeError(f'a trial is already {self.phase.value}')
        spec: TrialSpec | None = None
        try:
            if self.halted:
                raise InvalidController('the controller is shutting down')
            if self._encoder is None:
                raise InvalidController('no robot model yet: waiting for robot_description')
            spec = decode()
            self._plan = plan_trial(spec, self._encoder)
        except InvalidController as exc:
            self._finish(TrialStatus.INVALID_CONTROLLER, str(exc), spec.condition if spec else '')
            return
        self._enter(Phase.FLUSHING, now + self._timeouts.flush_s)
        self._last_feedback = now

    def on_state(self, q: np.ndarray, qd: np.ndarray, stamp: float, now: float) -> None:
        """joint_states (q, qd [nj] in the robot's joint order; stamp: its header stamp)."""
        if self._unanswered:
            self._unanswered -= 1
        self._take_state(q, qd, stamp, now)

    def _take_state(self, q: np.ndarray, qd: np.ndarray, stamp: float, now: float) -> None:
        """A state, new or held back (for its image, or until the reset's answer)."""
        runner = self._runner
        if runner is not None:
            self._last_state = now
            image = None
            if runner.needs_image:
                image = self._image_for(stamp)
                if image is None:       # its image has not arrived yet: the state waits for it
                    np.copyto(self._q, q)
                    np.copyto(self._qd, qd)
                    self._stamp = stamp
                    if self._waiting_since is None:
                        self._waiting_since = now
                    return
                self._waiting_since = None
                shape = runner.image_shape
                if shape is not None and image.shape[:2] != tuple(shape):
                    self.abort(TrialStatus.INVALID_CONTROLLER, f'the camera images are {image.shape[1]}x{image.shape[0]}; '
                               f'the policy takes {shape[1]}x{shape[0]}')
                    return
            u = runner.on_state(q, qd, stamp, self._clock(), image)
            if u is not None:
                self._port.publish(u)
                self._unanswered += 1
                runner.mark_published(self._clock())
                if runner.steps % FEEDBACK_EVERY == 0 and now - self._last_feedback >= FEEDBACK_MIN_S:
                    self._feedback(now)
            if runner.done:
                self._end_run()
            return
        np.copyto(self._q, q)
        np.copyto(self._qd, qd)
        self._stamp = stamp
        if self.phase is Phase.STARTING:
            self._last_state = now
            self._try_run()
        elif self.phase is not Phase.IDLE:
            self._advance(now)

    def on_image(self, image: np.ndarray, stamp: float, now: float) -> None:
        """A camera image [H, W, 3] uint8 (copied) with its header stamp."""
        self._images.append((stamp, np.array(image, dtype=np.uint8)))
        if self._runner is not None and self._waiting_since is not None and self._image_for(self._stamp) is not None:
            self._take_state(self._q, self._qd, self._stamp, now)

    def _image_for(self, stamp: float) -> np.ndarray | None:
        """The newest image stamped in [stamp - image_max_age_s, stamp], or None."""
        oldest = stamp - self._timeouts.image_max_age_s - 1e-9
        for t, image in reversed(self._images):
            if oldest <= t <= stamp + 1e-9:
                return image
        return None

    def on_bad_state(self, reason: str, now: float) -> None:
        """joint_states that cannot be read (missing joints, wrong lengths)."""
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            self.abort(TrialStatus.ABORTED_STALE_STATE, f'unusable joint_states: {reason}')

    def on_reset_answer(self, success: bool, message: str, stamp: float, now: float) -> None:
        if self.phase is not Phase.RESETTING:
            return  # an answer to a request given up on
        if not success:
            self._finish(TrialStatus.RESET_FAILED, f'reset service {self._service} failed: '
                                                  f'{message or "(no message)"}')
            return
        self._start_stamp = stamp
        self._last_state = now
        self._enter(Phase.STARTING, math.inf)
        self._try_run()

    def on_tick(self, now: float) -> None:
        """Periodic: deadlines of the waiting phases, stale joint_states, the heartbeat."""
        if self.phase is not Phase.IDLE and now - self._last_feedback >= HEARTBEAT_S:
            self._feedback(now)
        if self.phase in (Phase.STARTING, Phase.RUNNING) and now - self._last_integrity >= INTEGRITY_CHECK_S:
            self._last_integrity = now
            others = self._port.other_commanders()
            if others:
                self.abort(TrialStatus.ABORTED_INTERFERENCE, f'another publisher on the command topic: {others}')
                return
        if self._waiting_since is not None and now - self._waiting_since > self._timeouts.image_s:
            self.abort(TrialStatus.ABORTED_STALE_STATE, f'no camera image stamped within '
                       f'{self._timeouts.image_max_age_s:g} s before the joint_states at {self._stamp:.3f} s '
                       f'for {now - self._waiting_since:.3f} s (image timeout {self._timeouts.image_s:g} s)')
            return
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            age = now - self._last_state
            if age > self._timeouts.stale_s:
                steps = self._runner.steps if self._runner is not None else 0
                self.abort(TrialStatus.ABORTED_STALE_STATE,
                           f'no {self._states} for {age:.3f} s (stale timeout {self._timeouts.stale_s:g} s) '
                           f'after {steps} of {self._plan.horizon} steps')
        elif self.phase is not Phase.IDLE:
            self._advance(now)

    def on_reset_seen(self, now: float) -> None:
        """The reset service received a request (its introspection event), ours or not."""
        if self._own_resets > 0:
            self._own_resets -= 1
        elif self.phase in (Phase.STARTING, Phase.RUNNING):
            self.abort(TrialStatus.ABORTED_INTERFERENCE, 'the arm was reset during the trial by a request '
                       'that was not this controller\'s')

    def cancel(self, reason: str) -> None:
        """End the active trial with CANCELLED (no effect when idle)."""
        if self.phase is not Phase.IDLE:
            self.abort(TrialStatus.CANCELLED, reason)

    def halt(self, reason: str) -> None:
        """Stop for good: cancel the active trial, zero the arm, refuse every later goal."""
        self.halted = True
        if self.phase is not Phase.IDLE:
            self.abort(TrialStatus.CANCELLED, reason)
        else:
            self._port.publish(self._zeros)
            self._unanswered += 1

    def abort(self, status: TrialStatus, reason: str) -> None:
        """End the active trial now with this status (no effect when idle)."""
        if self.phase is Phase.IDLE:
            return
        if self.phase is Phase.RESETTING:
            self._port.cancel_reset()
        if self._runner is not None:
            self._runner.abort(status, reason)
            self._end_run()
        else:
            self._finish(status, reason)

    # -------------------------------------------------------------- internals
    def _advance(self, now: float) -> None:
        """Move the waiting phases on as far as they can go now."""
        if self.phase is Phase.FLUSHING:
            if self._unanswered and not self._port.commands_delivered() and now < self._deadline:
                return
            self._enter(Phase.AWAITING_SERVICE, now + self._timeouts.service_s)
        if self.phase is Phase.AWAITING_SERVICE:
            if not self._port.reset_service_ready():
                if now > self._deadline:
                    self._finish(TrialStatus.RESET_FAILED, f'reset service {self._service} not available within '
                                 f'{self._timeouts.service_s:g} s')
                return
            self._enter(Phase.RESETTING, now + self._timeouts.reset_s)
            self._own_resets = 1 if self._track_resets else 0
            self._port.request_reset(self._encoder.joint_names, self._plan.q0, self._plan.objects,
                                     self._plan.disturbance)
        elif self.phase is Phase.RESETTING and now > self._deadline:
            self._port.cancel_reset()
            self._finish(TrialStatus.RESET_FAILED, f'reset service {self._service} did not answer within '
                         f'{self._timeouts.reset_s:g} s')

    def _feedback(self, now: float) -> None:
        self._last_feedback = now
        self._port.feedback(self._runner.steps if self._runner is not None else 0, self.phase.value)

    def _try_run(self) -> None:
        """STARTING: run from the newest state if it shows the arm after the reset."""
        if self._stamp is None or self._stamp < self._start_stamp:
            return
        plan = self._plan
        self._runner = TrialRunner(self._encoder, plan.controller, self._safety, plan.targets,
                                   plan.horizon, plan.dt, record_images=plan.record_images)
        self.phase = Phase.RUNNING
        self._take_state(self._q, self._qd, self._stamp, self._last_state)

    def _end_run(self) -> None:
        runner, self._runner = self._runner, None
        self._finish(runner.status, runner.reason, recording=runner)

    def _finish(self, status: TrialStatus, reason: str, condition: str | None = None,
                recording: TrialRunner | None = None) -> None:
        self._port.publish(self._zeros)
        self._unanswered += 1
        if condition is None:
            condition = self._plan.condition if self._plan is not None else ''
        self.phase, self._plan, self._runner, self._stamp = Phase.IDLE, None, None, None
        self._waiting_since = None
        self._port.finished(TrialOutcome(TrialStatus(status), reason, condition, recording))

    def _enter(self, phase: Phase, deadline: float) -> None:
        self.phase, self._deadline = phase, deadline
