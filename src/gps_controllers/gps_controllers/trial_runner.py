"""One trial's control loop and recording, without ROS: controller_node (through the trial
lifecycle) and the in-process agent both feed it joint states and send the arm what it returns.

Steps are indexed by the joint-state stamps, t = round((stamp - first_stamp) / dt), so the same
code serves a lockstep simulator (one state per command, stamps dt apart in sim time) and a real
arm streaming states faster than dt (states inside the current step are ignored: the forward
command controller holds the last command, a zero-order hold). For each new step t < T:

    x_t = encode(q, qd, targets)          (recorded in X[t])
    u_t = safety.filter(controller(t, x_t))  (recorded in U[t], as sent; K_t x_t + k_t for a
                                          linear-Gaussian controller, mu_theta(x_t) + noise_t
                                          for a network policy)

The trial completes when T actions are recorded, as the in-process agent's loop does (x_T is
never needed: the dynamics fit uses transitions t -> t+1 within the trial).
"""
from __future__ import annotations

import math
import time
from enum import IntEnum
from typing import Callable

import numpy as np

from gps_controllers.controller import Controller
from gps_controllers.safety import SafetyFilter, UnsafeCommand
from gps_controllers.state_encoder import StateEncoder


class TrialStatus(IntEnum):
    """Outcome of a trial; the values are RunTrial.Result's STATUS_* codes."""

    COMPLETED = 0
    ABORTED_STALE_STATE = 1
    ABORTED_LIMIT = 2
    CANCELLED = 3
    INVALID_CONTROLLER = 4
    RESET_FAILED = 5
    ABORTED_ROBOT = 6           # the arm stopped taking commands (e.g. its program stopped)
    ABORTED_INTERFERENCE = 7    # someone else commanded or reset the arm during the trial


class TrialRunner:
    """Run a controller for T steps from joint states; record X, U and timing.

    Args:
        encoder: joint state -> x [dX].
        controller: u_t = controller.command(t, x_t) for t < T (e.g. K_t x_t + k_t).
        safety: clamps u, vets states.
        targets: [P, 3] end-effector point targets (base frame).
        horizon: T, must equal controller.T.
        dt: control period [s], in the clock of the joint-state stamps.
        perf_clock: seconds, for compute-time measurement (default time.perf_counter).

    Recording (preallocated, valid for rows [0, steps)): X [T, dX], U [T, dU], stamps [T],
    latencies [T] (state stamp -> command computed, or published if mark_published is called),
    compute_times [T]. Steps skipped by the state stream (a dropped message) are filled with the
    command the arm held (U of the last step) and states interpolated linearly between the
    neighbouring measured ones; their latency is NaN and `skipped_steps` counts them.
    """

    def __init__(self, encoder: StateEncoder, controller: Controller,
                 safety: SafetyFilter, targets: np.ndarray, horizon: int, dt: float,
                 perf_clock: Callable[[], float] = time.perf_counter, record_images: bool = False) -> None:
        T, dU, dX = controller.T, controller.dU, controller.dX
        if horizon != T:
            raise ValueError(f"horizon {horizon} differs from the controller's T={T}")
        if dX != encoder.dX:
            raise ValueError(f"controller dX={dX} differs from the encoder's dX={encoder.dX}")
        if not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f"dt must be a finite number > 0, got {dt}")
        self._encoder, self._controller, self._safety = encoder, controller, safety
        self._targets = np.array(targets, dtype=np.float64).reshape(encoder.n_points, 3)
        self._T, self._dt = T, float(dt)
        self._clock = perf_clock
        self.X = np.zeros((T, dX))
        self.U = np.zeros((T, dU))
        self.stamps = np.zeros(T)
        self.latencies = np.zeros(T)
        self.compute_times = np.zeros(T)
        self._x = np.empty(dX)       # scratch: state of the newest message
        self._u_raw = np.empty(dU)   # scratch: K_t x_t + k_t before the safety filter
        self._first_stamp: float | None = None
        self._last_t = -1
        self.steps = 0
        self.skipped_steps = 0
        self.status: TrialStatus | None = None
        self.reason = ""
        self._record_images = bool(record_images)
        self.images: np.ndarray | None = None   # [T, H, W, 3] uint8: the image of each step, if recorded

    # ------------------------------------------------------------- properties
    @property
    def horizon(self) -> int:
        return self._T

    @property
    def done(self) -> bool:
        return self.status is not None

    # ---------------------------------------------------------------- hot path
    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(H, W) of the images the controller takes (None: it takes none)."""
        return self._controller.image_shape

    @property
    def needs_image(self) -> bool:
        """Every state must come with the step's image (a visuomotor policy, or recording)."""
        return self._controller.image_shape is not None or self._record_images

    def on_state(self, q: np.ndarray, qd: np.ndarray, stamp_s: float,
                 now_s: float, image: np.ndarray | None = None) -> np.ndarray | None:
        """Feed one joint state (stamp_s: its header stamp; now_s: the node clock now) and, when
        `needs_image`, the camera image [H, W, 3] uint8 of that instant.

        Returns the command u_t [dU] to publish when the state opens a new step, None when
        there is nothing new to send (a state within the current step, an old state, or the
        trial is over: check `done`). The returned array is a row of U; copy it if kept.
        """
        if self.status is not None:
            return None
        reason = self._safety.check_state(q, qd)
        if reason is not None:
            self.abort(TrialStatus.ABORTED_LIMIT, reason)
            return None
        if self._first_stamp is None:
            self._first_stamp = stamp_s
        t = int(round((stamp_s - self._first_stamp) / self._dt))
        if t <= self._last_t:
            return None
        start = self._clock()
        x = self._encoder.encode(q, qd, self._targets, out=self._x)
        if t > self._last_t + 1:
            self._fill_skipped(t, x, stamp_s)
        if t >= self._T:  # the stream jumped past the end: the horizon has elapsed
            self.status = TrialStatus.COMPLETED
            return None
        self.X[t] = x
        if self._record_images and image is not None:
            if self.images is None:
                self.images = np.zeros((self._T,) + image.shape, dtype=np.uint8)
            self.images[t] = image
        u = self.U[t]
        try:
            self._safety.filter(self._controller.command(t, x, self._u_raw, image), out=u)
        except UnsafeCommand as exc:
            self.abort(TrialStatus.ABORTED_LIMIT, f"step {t}: {exc}")
            return None
        self.compute_times[t] = self._clock() - start
        self.stamps[t] = stamp_s
        self.latencies[t] = now_s - stamp_s
        self._last_t, self.steps = t, t + 1
        if self.steps == self._T:
            self.status = TrialStatus.COMPLETED
        return u

    def timing_summary(self) -> str:
        """One line: steps, skipped steps, compute and latency medians."""
        n = self.steps
        if n == 0:
            return "0 steps"
        lat = self.latencies[:n][np.isfinite(self.latencies[:n])] * 1e3
        return (f"{n} steps, {self.skipped_steps} skipped; compute p50 "
                f"{np.median(self.compute_times[:n]) * 1e3:.3f} ms, latency p50 "
                f"{np.median(lat) if lat.size else math.nan:.3f} ms")

    def mark_published(self, now_s: float) -> None:
        """The command of the newest step was published at now_s (node clock)."""
        if self._last_t >= 0:
            self.latencies[self._last_t] = now_s - self.stamps[self._last_t]

    def abort(self, status: TrialStatus, reason: str) -> None:
        """End the trial early (no effect if it already ended): the node sends zeros."""
        if self.status is None:
            self.status = TrialStatus(status)
            self.reason = reason

    # ---------------------------------------------------------------- helpers
    def _fill_skipped(self, t: int, x: np.ndarray, stamp_s: float) -> None:
        """Rows last+1 .. min(t, T)-1: the arm held U[last]; states interpolated."""
        last = self._last_t
        end = min(t, self._T)
        w = (np.arange(last + 1, end) - last) / (t - last)  # interpolation weights in (0, 1)
        self.X[last + 1:end] = (1.0 - w)[:, None] * self.X[last] + w[:, None] * x
        self.U[last + 1:end] = self.U[last]
        if self.images is not None:
            self.images[last + 1:end] = self.images[last]
        self.stamps[last + 1:end] = (1.0 - w) * self.stamps[last] + w * stamp_s
        self.latencies[last + 1:end] = np.nan
        self.compute_times[last + 1:end] = 0.0
        self.skipped_steps += end - (last + 1)
        self._last_t, self.steps = end - 1, end
