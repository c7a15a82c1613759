"""Impulse disturbances on a simulated arm: pushes on a link at random times of a trial, so the MPC
teacher of MPC-guided policy search (Zhang, Kahn, Levine, Abbeel, ICRA 2016) shows the policy how to
recover from them.

The settings and the drawn plans are plain data (gps_core.disturbance_plan, re-exported here):

  DisturbanceConfig   the schedule's settings (frozen);
  DisturbancePlan     one trial's impulses, drawn by `draw_plan` from a generator the caller seeds;
  DisturbanceHook     applies a plan to a PyBullet body (anything with client_id and body_id: a
                      PyBulletArm) physics substep by physics substep.

PyBullet clears external forces after every stepSimulation, so an impulse lasting n physics steps is
applied before each of those n steps. Impulse times are in physics substeps counted from the hook's
creation (create it right after the trial's reset), the force in the world frame at the link's centre
of mass (PyBullet's link frame), recomputed every substep as the link moves.

`step_arm` is the one place a control period is stepped with a hook: the batched arm.step(tau,
substeps) when no impulse falls in the period (bit-identical to no hook, as PyBulletArm.step documents
one call of n substeps equals n calls), one substep at a time when one does, handing the arm the push's
generalized force J^T W of that substep.

Armature: PyBulletArm emulates rotor inertia A by shaping joint torques for PyBullet's rigid-body step,
which knows only M(q); an external wrench bypasses that shaping, so without being told of it the joints
respond as M^-1 J^T W instead of (M + A)^-1 J^T W (for the UR wrists, whose links weigh little against
their rotors, up to ~20 rad/s from a 25 N push). PyBulletArm.step takes the generalized force and puts
it on the right side of (M + A) qdd = ... (see PyBulletArm._augmented_torques).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import pybullet as p

from gps_core.disturbance_plan import KINDS, DisturbanceConfig, DisturbancePlan, Impulse, draw_plan

__all__ = ['KINDS', 'DisturbanceConfig', 'DisturbanceHook', 'DisturbancePlan', 'Impulse', 'draw_plan', 'link_index',
           'step_arm']


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
        cid, body = self._cid, self._body
        # the body's DOFs (movable joints by index) and the link's COM in its URDF frame: fixed
        self._dofs = [j for j in range(p.getNumJoints(body, physicsClientId=cid))
                      if p.getJointInfo(body, j, physicsClientId=cid)[2] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)]
        self._com_local = (list(p.getDynamicsInfo(body, self._link, physicsClientId=cid)[3])
                           if self._link != -1 else None)

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
        cid, body, dofs = self._cid, self._body, self._dofs
        out = np.zeros(len(dofs))
        wrench = sum((np.asarray(vec) for s, e, vec in self._spans if s <= self.substep < e), np.zeros(3))
        if not np.any(wrench) or self._link == -1:
            return out
        q = [st[0] for st in p.getJointStates(body, dofs, physicsClientId=cid)]
        zeros = [0.0] * len(dofs)
        # calculateJacobian takes the point in the URDF link frame (not around the COM, as its docs say)
        lin, ang = p.calculateJacobian(body, self._link, self._com_local, q, zeros, zeros, physicsClientId=cid)
        J = np.asarray(lin if self._force else ang)
        return J.T @ wrench

    def _com_position(self) -> list[float]:
        if self._link == -1:
            return list(p.getBasePositionAndOrientation(self._body, physicsClientId=self._cid)[0])
        return list(p.getLinkState(self._body, self._link, physicsClientId=self._cid)[0])


def step_arm(arm, torques: np.ndarray | Sequence[float], substeps: int, hook: DisturbanceHook | None) -> None:
    """arm.step(torques, substeps=substeps) with the hook's impulses applied at their physics steps (and
    their generalized force handed to the arm's armature emulation, PyBulletArm.step's `external`)."""
    if hook is None:
        arm.step(torques, substeps=substeps)
    elif not hook.active_within(substeps):
        arm.step(torques, substeps=substeps)
        hook.skip(substeps)
    else:
        for _ in range(substeps):
            external = hook.generalized_force()
            hook.before_substep()
            arm.step(torques, substeps=1, external=external)
