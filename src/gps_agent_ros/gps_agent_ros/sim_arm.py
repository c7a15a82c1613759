"""The simulated arm behind sim_node, free of ROS: a PyBulletArm with a held command, a joint
velocity servo, a sim-time counter and a command watchdog.

`SimArm` is what ros2_control's forward_effort_controller / forward_velocity_controller drive on
a real UR: a command vector is held until replaced, and each `step` applies it for one period.
Time is passed in (`CommandWatchdog`), never read here.

Shapes: nj = len(joint_names); every vector is [nj], ordered as `joint_names`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np
import pybullet as p

from gps_agent_ros.disturbance import DisturbanceHook, step_arm
from gps_agent_ros.pybullet_arm import PyBulletArm
from gps_core.disturbance_plan import DisturbancePlan

_MOVABLE = (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)


class CommandKind(Enum):
    """Which forward command controller a command came from."""

    EFFORT = 'effort'      # joint torques [N m]
    VELOCITY = 'velocity'  # joint velocity references [rad/s]


@dataclass(frozen=True)
class SimArmConfig:
    """Settings of the simulated arm (the sim_node parameters minus ROS wiring).

    period: control period [s]: how much simulated time one `SimArm.step` covers.
    substeps: physics steps per period (physics time step = period / substeps); the torque
        (and the velocity servo) is recomputed at every physics step.
    armature, damping: scalar or one per joint, see PyBulletArm.
    velocity_bandwidth: bandwidth [rad/s] of the joint velocity servo (see SimArm).
    """

    urdf_path: str
    joint_names: tuple[str, ...]
    period: float
    substeps: int
    gravity_compensation: bool = True
    armature: float | tuple[float, ...] = 0.0
    damping: float | tuple[float, ...] = 0.0
    velocity_bandwidth: float = 50.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.period) and self.period > 0.0):
            raise ValueError(f'period must be a positive number of seconds, got {self.period!r}')
        if int(self.substeps) != self.substeps or self.substeps < 1:
            raise ValueError(f'substeps must be a positive integer, got {self.substeps!r}')
        if not (math.isfinite(self.velocity_bandwidth) and self.velocity_bandwidth > 0.0):
            raise ValueError(f'velocity_bandwidth must be positive [rad/s], got {self.velocity_bandwidth!r}')
        if self.velocity_bandwidth * self.period / self.substeps > 0.5:
            # explicit feedback at the physics step: bandwidth * h must stay well below 2
            raise ValueError(f'velocity_bandwidth {self.velocity_bandwidth} rad/s is too high for the '
                             f'physics step {self.period / self.substeps} s (need bandwidth * step <= 0.5)')


def realtime_substeps(tick_s: float, physics_step_s: float) -> int:
    """Physics steps per real-time tick so that none is longer than physics_step_s."""
    return max(1, math.ceil(tick_s / physics_step_s - 1e-9))


class CommandWatchdog:
    """Trips when the command has not been refreshed for longer than timeout_s.

    Times are seconds on any monotonic clock, passed in by the caller. Unarmed until the first
    `feed`; `check` reports a trip once and disarms until the next `feed`.
    """

    def __init__(self, timeout_s: float) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0.0):
            raise ValueError(f'command timeout must be a positive number of seconds, got {timeout_s!r}')
        self._timeout_s = float(timeout_s)
        self._last_feed_s: float | None = None

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @property
    def armed(self) -> bool:
        return self._last_feed_s is not None

    def feed(self, now_s: float) -> None:
        self._last_feed_s = now_s

    def disarm(self) -> None:
        self._last_feed_s = None

    def check(self, now_s: float) -> bool:
        """True exactly once when the last feed is older than the timeout."""
        if self._last_feed_s is None or now_s - self._last_feed_s <= self._timeout_s:
            return False
        self._last_feed_s = None
        return True


class SimArm:
    """A PyBulletArm driven like a UR under a forward command controller.

    The held command (effort or velocity, whichever arrived last) is applied by `step` for one
    period of `substeps` physics steps. The PyBulletArm inside is built with dt = period /
    substeps and one substep, so `substeps` calls of its `step` are bit-for-bit one step of
    `PyBulletArm(dt=period, substeps=substeps)`: effort commands see exactly the in-process
    agent's dynamics.

    Velocity commands v_ref go through a joint velocity servo evaluated at every physics step
    (as a UR drive closes its velocity loop far faster than the controller):

        tau = D v_ref + w (diag(M(q)) + armature) (v_ref - qd),   clipped to the effort limits,

    D the viscous damping (feed-forward: the drive cancels its own friction), w the bandwidth
    [rad/s]; the inertia scaling makes every joint a first-order lag with time constant ~1/w.
    Gravity is handled as for effort commands (`gravity_compensation`).

    `effort` after a step is the torque actually applied, after clipping: the held effort
    command, or the velocity servo's torque averaged over the period.

    A reset may carry a disturbance plan (gps_core.disturbance_plan): its impulses push the arm at
    their physics substeps counted from that reset (gps_agent_ros.disturbance.step_arm, the same
    stepping the in-process agent gets), until the next reset.
    """

    def __init__(self, config: SimArmConfig) -> None:
        self._config = config
        self._arm = PyBulletArm(config.urdf_path, config.joint_names, dt=config.period / config.substeps,
                                substeps=1, gravity_compensation=config.gravity_compensation,
                                armature=config.armature, damping=config.damping)
        try:
            self._setup()
        except BaseException:
            self._arm.close()
            raise

    def _setup(self) -> None:
        nj = len(self._config.joint_names)
        self._nj = nj
        self._limits = self._arm.effort_limits
        self._armature = np.broadcast_to(np.asarray(self._config.armature, float), (nj,)).copy()
        self._damping = np.broadcast_to(np.asarray(self._config.damping, float), (nj,)).copy()
        self._kind = CommandKind.EFFORT
        self._command = np.zeros(nj)
        self._effort = np.zeros(nj)
        self._steps = 0
        self._ticks = 0  # periods of sim time: steps plus one per reset
        self._hook: DisturbanceHook | None = None   # the pushes since the last reset
        self._period_ns = int(round(self._config.period * 1e9))
        # PyBullet DOF bookkeeping for the servo's mass matrix (all movable joints, URDF order)
        cid, body = self._arm.client_id, self._arm.body_id
        movable: dict[str, int] = {}
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            info = p.getJointInfo(body, j, physicsClientId=cid)
            if info[2] in _MOVABLE:
                movable[info[1].decode()] = j
        self._all_idx = sorted(movable.values())
        self._dof = np.array([self._all_idx.index(movable[n]) for n in self._config.joint_names])

    # ------------------------------------------------------------- properties
    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._config.joint_names

    @property
    def period(self) -> float:
        return self._config.period

    @property
    def client_id(self) -> int:
        """PyBullet physics client (a scene and a camera render in the same world)."""
        return self._arm.client_id

    @property
    def body_id(self) -> int:
        return self._arm.body_id

    @property
    def steps(self) -> int:
        """Periods simulated since construction."""
        return self._steps

    @property
    def sim_time_ns(self) -> int:
        """Simulated time since construction [ns], exact in integers: one period per step and one
        per reset (a reset takes time, so every state after it is stamped later than any before)."""
        return self._ticks * self._period_ns

    @property
    def command(self) -> tuple[CommandKind, np.ndarray]:
        return self._kind, self._command.copy()

    @property
    def effort(self) -> np.ndarray:
        """[nj] torque applied during the last step (zeros after a reset)."""
        return self._effort.copy()

    @property
    def effort_limits(self) -> np.ndarray:
        return self._limits.copy()

    # ---------------------------------------------------------------- control
    def set_command(self, kind: CommandKind, values: Sequence[float] | np.ndarray) -> None:
        """Hold `values` [nj] as the command. Raises ValueError (command unchanged) on a wrong
        length or a non-finite value."""
        arr = np.array(values, dtype=float)  # a copy: the caller's buffer may be reused
        if arr.shape != (self._nj,):
            raise ValueError(f'{kind.value} command has {arr.size} values, expected {self._nj} '
                             f'for joints {list(self._config.joint_names)}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'{kind.value} command has non-finite values {arr.tolist()}')
        self._kind = kind
        self._command = arr

    def zero_command(self) -> None:
        """Zero the held command, keeping its kind (velocity 0 brakes, effort 0 lets go)."""
        self._command = np.zeros(self._nj)

    def step(self) -> np.ndarray:
        """Apply the held command for one period; return the applied torque [nj]."""
        if self._kind is CommandKind.EFFORT:
            tau = np.clip(self._command, -self._limits, self._limits)
            # one call for all physics steps (but around a push): the same as `substeps` calls,
            # without the per-call validation (the held command was validated by set_command)
            step_arm(self._arm, tau, self._config.substeps, self._hook)
            self._effort = tau
        else:
            total = np.zeros(self._nj)
            for _ in range(self._config.substeps):
                tau = self._servo_torque(self._command)
                step_arm(self._arm, tau, 1, self._hook)
                total += tau
            self._effort = total / self._config.substeps
        self._steps += 1
        self._ticks += 1
        return self._effort.copy()

    def _servo_torque(self, v_ref: np.ndarray) -> np.ndarray:
        cid, body = self._arm.client_id, self._arm.body_id
        q_all = [s[0] for s in p.getJointStates(body, self._all_idx, physicsClientId=cid)]
        m_diag = np.diag(np.asarray(p.calculateMassMatrix(body, q_all, physicsClientId=cid)))[self._dof]
        _, qd = self._arm.joint_state()
        tau = self._damping * v_ref + self._config.velocity_bandwidth * (m_diag + self._armature) * (v_ref - qd)
        return np.clip(tau, -self._limits, self._limits)

    @property
    def physics_dt(self) -> float:
        """[s] one physics step: the unit of a disturbance plan's substep counts."""
        return self._config.period / self._config.substeps

    def reset(self, names: Sequence[str], positions: Sequence[float],
              disturbance: DisturbancePlan | None = None) -> None:
        """Teleport the named joints to `positions` (others keep theirs), zero every joint
        velocity, the held command and the reported effort; the pushes of `disturbance` (None:
        none) act from here on. Raises ValueError naming the problem (unknown or repeated joint,
        length mismatch, non-finite or out-of-limit value, a plan for another physics step or an
        unknown link) before changing anything."""
        names = list(names)
        pos = np.asarray(positions, dtype=float).reshape(-1)
        if len(names) != pos.size:
            raise ValueError(f'{len(names)} joint names but {pos.size} positions')
        unknown = [n for n in names if n not in self._config.joint_names]
        if unknown:
            raise ValueError(f'unknown joints {unknown}; this arm has {list(self._config.joint_names)}')
        if len(set(names)) != len(names):
            raise ValueError(f'joint names repeated: {names}')
        if not np.all(np.isfinite(pos)):
            raise ValueError(f'non-finite joint positions {pos.tolist()}')
        hook = None
        if disturbance is not None and disturbance.disturbed:
            if not math.isclose(disturbance.physics_dt, self.physics_dt, rel_tol=1e-9):
                raise ValueError(f'the disturbance plan counts physics steps of {disturbance.physics_dt:g} s; this '
                                 f'simulation steps {self.physics_dt:g} s')
            hook = DisturbanceHook(self._arm, disturbance)   # checks the link
        q, _ = self._arm.joint_state()
        for name, value in zip(names, pos):
            q[self._config.joint_names.index(name)] = value
        self._arm.reset(q)  # checks the position limits before teleporting anything
        self._hook = hook
        self._kind, self._command = CommandKind.EFFORT, np.zeros(self._nj)
        self._effort = np.zeros(self._nj)
        self._ticks += 1

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(q [nj], qd [nj])."""
        return self._arm.joint_state()

    def close(self) -> None:
        self._arm.close()
