"""Impulse disturbances on a simulated arm: pushes on a link at random times of a trial, so the MPC
teacher of MPC-guided policy search (Zhang, Kahn, Levine, Abbeel, ICRA 2016) shows the policy how to
recover from them.

Three pieces, all deterministic:

  DisturbanceConfig   the schedule's settings (frozen): which link, force or torque, magnitude,
                      duration, how many impulses per trial and the window of their start times;
  DisturbancePlan     one trial's impulses, drawn by `draw_plan` from a generator the caller seeds
                      (e.g. np.random.default_rng(trial_seed)): plain data, so the in-process agent and
                      sim_node draw the same plan from the same seed, or a plan can travel as it is;
  DisturbanceHook     applies a plan to a PyBullet body (anything with client_id and body_id: a
                      PyBulletArm) physics substep by physics substep.

PyBullet clears external forces after every stepSimulation, so an impulse lasting n physics steps is
applied before each of those n steps. Impulse times are in physics substeps counted from the hook's
creation (create it right after the trial's reset), the force in the world frame at the link's centre
of mass (PyBullet's link frame), recomputed every substep as the link moves.

`step_arm` is the one place a control period is stepped with a hook: the batched arm.step(tau,
substeps) when no impulse falls in the period (bit-identical to no hook, as PyBulletArm.step documents
one call of n substeps equals n calls), one substep at a time when one does.

Note on armature: PyBulletArm emulates rotor inertia by shaping joint torques for PyBullet's rigid-body
step; an external wrench bypasses that shaping, so with armature > 0 the joints respond to it as
M(q)^-1 J^T F instead of (M(q) + A)^-1 J^T F (too strongly for the UR wrists).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pybullet as p

KINDS = ('force', 'torque')


@dataclass(frozen=True)
class DisturbanceConfig:
    """Settings of a trial's impulse disturbances.

    link: URDF link the wrench acts on (at its centre of mass); kind: 'force' [N] or 'torque' [N m];
    magnitude: the wrench's norm; duration [s]: how long each impulse lasts (rounded to physics steps,
    at least one); count_min, count_max: impulses per trial, drawn uniformly from [count_min, count_max];
    t_min, t_max [s]: window of the start times after the trial's start, drawn uniformly (sorted);
    direction: a world-frame direction (normalized) for every impulse, or None: uniform on the sphere,
    drawn per impulse.
    """

    link: str
    kind: str = 'force'
    magnitude: float = 20.0
    duration: float = 0.02
    count_min: int = 1
    count_max: int = 1
    t_min: float = 0.5
    t_max: float = 4.0
    direction: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.link, str) or not self.link:
            raise ValueError(f'link: {self.link!r} is not a link name')
        if self.kind not in KINDS:
            raise ValueError(f'kind: {self.kind!r} is not one of {list(KINDS)}')
        for name in ('magnitude', 'duration'):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f'{name}: {v!r} is not a finite number > 0')
        for name in ('count_min', 'count_max'):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f'{name}: {v!r} is not an integer >= 0')
        if self.count_max < self.count_min:
            raise ValueError(f'count_max: {self.count_max} is below count_min {self.count_min}')
        for name in ('t_min', 't_max'):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f'{name}: {v!r} is not a finite time >= 0 [s]')
        if self.t_max < self.t_min:
            raise ValueError(f't_max: {self.t_max} is below t_min {self.t_min}')
        if self.direction is not None:
            d = np.asarray(self.direction, dtype=float)
            if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
                raise ValueError(f'direction: {self.direction!r} is not a non-zero [x, y, z]')


@dataclass(frozen=True)
class Impulse:
    """A constant wrench for physics substeps [start, start + substeps); vector [3] world frame."""

    start: int
    substeps: int
    vector: tuple[float, float, float]


@dataclass(frozen=True)
class DisturbancePlan:
    """One trial's impulses on `link` ('force' or 'torque'), sorted by start; physics_dt [s]."""

    link: str
    kind: str
    physics_dt: float
    impulses: tuple[Impulse, ...]

    @property
    def disturbed(self) -> bool:
        return bool(self.impulses)

    def momentum(self) -> np.ndarray:
        """[n, 3] each impulse's integral of the wrench over time [N s] or [N m s]."""
        return np.array([np.asarray(i.vector) * i.substeps * self.physics_dt for i in self.impulses]).reshape(-1, 3)


def draw_plan(config: DisturbanceConfig, rng: np.random.Generator, physics_dt: float) -> DisturbancePlan:
    """Draw a trial's impulses: count, then start times, then directions, in that order from rng."""
    if not (math.isfinite(physics_dt) and physics_dt > 0):
        raise ValueError(f'physics_dt must be a positive number of seconds, got {physics_dt!r}')
    count = int(rng.integers(config.count_min, config.count_max + 1))
    starts = np.sort(rng.uniform(config.t_min, config.t_max, size=count))
    if config.direction is None:
        dirs = rng.standard_normal((count, 3))
    else:
        dirs = np.tile(np.asarray(config.direction, dtype=float), (count, 1))
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    n = max(1, int(round(config.duration / physics_dt)))
    impulses = tuple(Impulse(int(round(s / physics_dt)), n, tuple(float(v) for v in config.magnitude * d))
                     for s, d in zip(starts, dirs))
    return DisturbancePlan(config.link, config.kind, float(physics_dt), impulses)


class HasBody(Protocol):
    """What the hook needs of an arm: its PyBullet client and body (PyBulletArm has both)."""

    @property
    def client_id(self) -> int: ...

    @property
    def body_id(self) -> int: ...


def link_index(client_id: int, body_id: int, link: str) -> int:
    """PyBullet link index of a URDF link name (-1 for the base link); ValueError lists the links."""
    names = {p.getBodyInfo(body_id, physicsClientId=client_id)[0].decode(): -1}
    for j in range(p.getNumJoints(body_id, physicsClientId=client_id)):
        names[p.getJointInfo(body_id, j, physicsClientId=client_id)[12].decode()] = j
    if link not in names:
        raise ValueError(f'link {link!r} is not in the body; it has {sorted(names)}')
    return names[link]


class DisturbanceHook:
    """Applies a DisturbancePlan to `arm`'s body: call `before_substep` right before every physics step
    of the trial (or `step_arm` for whole control periods). Counts substeps from its creation."""

    def __init__(self, arm: HasBody, plan: DisturbancePlan):
        self._cid, self._body = int(arm.client_id), int(arm.body_id)
        self._link = link_index(self._cid, self._body, plan.link)
        self.plan = plan
        self._force = plan.kind == 'force'
        self._spans = [(i.start, i.start + i.substeps, list(i.vector)) for i in plan.impulses]
        self.substep = 0

    def active_within(self, n: int) -> bool:
        """Whether an impulse acts during the next n physics substeps."""
        a, b = self.substep, self.substep + n
        return any(s < b and a < e for s, e, _ in self._spans)

    def before_substep(self) -> None:
        """Apply the wrench acting in the coming physics step (if any), then count the step."""
        k = self.substep
        for s, e, vec in self._spans:
            if s <= k < e:
                if self._force:
                    com = self._com_position()
                    p.applyExternalForce(self._body, self._link, vec, com, p.WORLD_FRAME, physicsClientId=self._cid)
                else:
                    p.applyExternalTorque(self._body, self._link, vec, p.WORLD_FRAME, physicsClientId=self._cid)
        self.substep = k + 1

    def skip(self, n: int) -> None:
        """Count n physics substeps stepped without the hook (none of them inside an impulse)."""
        if self.active_within(n):
            raise RuntimeError(f'an impulse falls in substeps [{self.substep}, {self.substep + n}): apply it')
        self.substep += n

    def generalized_force(self) -> np.ndarray:
        """[n_dof] J(q)^T W of the wrench W acting in the coming physics step (zeros if none), in
        PyBullet's DOF order (its movable joints by index): what the external push does to the joints.
        PyBulletArm's armature shaping needs it to treat the push as acting on M + A (module docstring):
        add it to the shaped dynamics' right-hand side and take it off the torques PyBullet is given."""
        cid, body = self._cid, self._body
        dofs = [j for j in range(p.getNumJoints(body, physicsClientId=cid))
                if p.getJointInfo(body, j, physicsClientId=cid)[2] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)]
        out = np.zeros(len(dofs))
        wrench = sum((np.asarray(vec) for s, e, vec in self._spans if s <= self.substep < e), np.zeros(3))
        if not np.any(wrench) or self._link == -1:
            return out
        q = [st[0] for st in p.getJointStates(body, dofs, physicsClientId=cid)]
        zeros = [0.0] * len(dofs)
        # calculateJacobian takes the point in the URDF link frame (not around the COM, as its docs say)
        com_local = list(p.getDynamicsInfo(body, self._link, physicsClientId=cid)[3])
        lin, ang = p.calculateJacobian(body, self._link, com_local, q, zeros, zeros, physicsClientId=cid)
        J = np.asarray(lin if self._force else ang)
        return J.T @ wrench

    def _com_position(self) -> list[float]:
        if self._link == -1:
            return list(p.getBasePositionAndOrientation(self._body, physicsClientId=self._cid)[0])
        return list(p.getLinkState(self._body, self._link, physicsClientId=self._cid)[0])


def step_arm(arm, torques: np.ndarray | Sequence[float], substeps: int, hook: DisturbanceHook | None) -> None:
    """arm.step(torques, substeps=substeps) with the hook's impulses applied at their physics steps."""
    if hook is None:
        arm.step(torques, substeps=substeps)
    elif not hook.active_within(substeps):
        arm.step(torques, substeps=substeps)
        hook.skip(substeps)
    else:
        for _ in range(substeps):
            hook.before_substep()
            arm.step(torques, substeps=1)
