"""Safety layer between a controller and the arm: URDF limits, finiteness, stale-state watchdog.

ForwardCommandController (ros2_control) drops non-finite commands and holds the last command
forever, so the controller node itself must clamp, refuse NaN/inf and fall back to zero when the
joint states stop. Pure numpy; time is passed in as float seconds (no clocks in here).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .urdf_limits import read_joint_limits

COMMAND_INTERFACES = ("effort", "velocity")
DEFAULT_VELOCITY_MARGIN = 1.0   # abort above 1x the URDF velocity limit


class UnsafeCommand(ValueError):
    """A command that must not be sent (non-finite); the output buffer has been zeroed."""


class SafetyFilter:
    """Clamp commands to the URDF limits; flag states that must abort a trial.

    Args:
        effort_limits: [nj] > 0 (URDF <limit effort>), N m or N.
        velocity_limits: [nj] > 0 (URDF <limit velocity>), rad/s or m/s.
        velocity_margin: a trial aborts when |qd_j| > velocity_margin * velocity_limits_j.
        command_interface: 'effort' clamps commands to effort_limits, 'velocity' to
            velocity_limits (as forward_effort_controller / forward_velocity_controller).
        joint_names: [nj], for messages only.
    """

    def __init__(self, effort_limits: Sequence[float] | np.ndarray,
                 velocity_limits: Sequence[float] | np.ndarray, *, velocity_margin: float = 1.0,
                 command_interface: str = "effort",
                 joint_names: Sequence[str] | None = None) -> None:
        effort = _positive_vector(effort_limits, "effort_limits")
        velocity = _positive_vector(velocity_limits, "velocity_limits")
        if effort.shape != velocity.shape:
            raise ValueError(f"effort_limits {effort.shape} and velocity_limits "
                             f"{velocity.shape} must have the same length")
        if not (math.isfinite(velocity_margin) and velocity_margin > 0.0):
            raise ValueError(f"velocity_margin must be a finite number > 0, got {velocity_margin}")
        if command_interface not in COMMAND_INTERFACES:
            raise ValueError(f"command_interface must be one of {COMMAND_INTERFACES}, "
                             f"got {command_interface!r}")
        nj = effort.size
        names = tuple(joint_names) if joint_names is not None else tuple(
            f"joint {j}" for j in range(nj))
        if len(names) != nj:
            raise ValueError(f"joint_names has {len(names)} names for {nj} limits")
        self._names = names
        self._effort = effort
        self._velocity = velocity
        self._margin = float(velocity_margin)
        self._interface = command_interface
        self._command_limits = effort if command_interface == "effort" else velocity
        self._neg_command_limits = -self._command_limits
        self._abort_speed = self._margin * velocity
        # hot-path scratch
        self._finite = np.empty(nj, dtype=bool)
        self._speed = np.empty(nj)

    @classmethod
    def from_urdf(cls, urdf_path: str | Path, joint_names: Sequence[str], *,
                  velocity_margin: float = 1.0, command_interface: str = "effort"
                  ) -> "SafetyFilter":
        """Limits of `joint_names` (in this order) read from the URDF."""
        limits = read_joint_limits(urdf_path)
        missing = [n for n in joint_names if n not in limits]
        if missing:
            raise ValueError(f"joints {missing} have no limits in {str(urdf_path)!r}; "
                             f"it limits {sorted(limits)}")
        return cls([limits[n].effort for n in joint_names],
                   [limits[n].velocity for n in joint_names], velocity_margin=velocity_margin,
                   command_interface=command_interface, joint_names=joint_names)

    # ------------------------------------------------------------- properties
    @property
    def command_limits(self) -> np.ndarray:
        """[nj] the symmetric bound commands are clamped to."""
        return self._command_limits.copy()

    @property
    def command_interface(self) -> str:
        return self._interface

    @property
    def velocity_margin(self) -> float:
        return self._margin

    # ---------------------------------------------------------------- hot path
    def filter(self, u: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Clamp u [nj] to +-command limits into `out` ([nj] float64) and return it.

        Raises UnsafeCommand (after zeroing `out`) if u has a non-finite entry: the caller
        then publishes `out`, i.e. zeros, and stops the trial.
        """
        if not np.isfinite(u, out=self._finite).all():
            out.fill(0.0)
            bad = [self._names[j] for j in np.flatnonzero(~self._finite)]
            raise UnsafeCommand(f"non-finite {self._interface} command for {bad}: "
                                f"{np.asarray(u).tolist()}")
        return np.clip(u, self._neg_command_limits, self._command_limits, out=out)

    def check_state(self, q: np.ndarray, qd: np.ndarray) -> str | None:
        """None if the state is safe, else the reason to abort (non-finite values, or a joint
        speed above velocity_margin times its URDF limit)."""
        if not (np.isfinite(q, out=self._finite).all()):
            return f"non-finite joint positions: {np.asarray(q).tolist()}"
        if not (np.isfinite(qd, out=self._finite).all()):
            return f"non-finite joint velocities: {np.asarray(qd).tolist()}"
        speed = np.abs(qd, out=self._speed)
        if (speed > self._abort_speed).any():
            j = int(np.argmax(speed - self._abort_speed))
            return (f"joint {self._names[j]!r} velocity {float(qd[j]):.4g} exceeds "
                    f"{self._margin:g} x limit {float(self._velocity[j]):.4g}")
        return None


class StaleStateMonitor:
    """Watchdog for the joint-state stream: stale when nothing arrived for longer than timeout_s.

    Times are float seconds from one monotonic clock chosen by the caller (pass a steady clock:
    sim time stops exactly when a simulated arm stops, so it cannot detect that).
    """

    def __init__(self, timeout_s: float) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0.0):
            raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s}")
        self._timeout = float(timeout_s)
        self._last: float | None = None

    @property
    def timeout_s(self) -> float:
        return self._timeout

    def update(self, t_received: float) -> None:
        """A state arrived at t_received (also call it when a watch begins)."""
        self._last = t_received

    def reset(self) -> None:
        """Stop watching: is_stale() is False until the next update()."""
        self._last = None

    def age(self, now: float) -> float:
        """Seconds since the last update (inf if never updated)."""
        return math.inf if self._last is None else now - self._last

    def is_stale(self, now: float) -> bool:
        """True if the last update is more than timeout_s before `now`; False before any."""
        return self._last is not None and now - self._last > self._timeout


def _positive_vector(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.array(values, dtype=np.float64, copy=True).ravel()
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if not (np.isfinite(arr).all() and (arr > 0.0).all()):
        raise ValueError(f"{what} must be finite and > 0, got {arr.tolist()}")
    arr.setflags(write=False)
    return arr
