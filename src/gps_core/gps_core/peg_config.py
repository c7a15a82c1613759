"""Peg insertion as data (the GPS papers' peg-in-hole task: Levine & Abbeel NIPS'14, Levine et al.
JMLR'16): a cylindrical peg rigidly at the tool flange, a static block with a square hole a few
millimetres wider than the peg, and the success rule. numpy only; gps_agent_ros.peg_task builds the
peg's URDF and the block in PyBullet.

Geometry (base frame = PyBullet's world frame; the hole's axis vertical):
  peg     cylinder of `radius` and `length` along the flange link's z, from the flange face (z = 0) to
          the tip (z = length); contact friction `friction`;
  block   4 walls + a floor, positioned by the centre of the hole's rim `rim` [3]: square hole of side
          2 (radius + clearance), depth `depth` from the rim to the floor's top, walls `wall` thick,
          floor `floor` thick.

Success (`inserted`): the peg's tip inside the hole's square footprint, at least half the peg's length
below the rim and not below the block's bottom, at the last step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _positive(obj, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f'{name}: {v!r} is not a finite number > 0 (expected a positive length or mass)')


@dataclass(frozen=True)
class PegConfig:
    """radius, length [m]; mass [kg]; friction: lateral (Coulomb) friction coefficient; parent_link:
    the flange link the peg is fixed to (its z axis out of the flange).

    axial_inertia [kg m^2]: a rotor disk added to the peg's body, `axial_inertia` about the peg's axis
    (the flange joint's, wrist_3's) and half of it about its diameters (the least a rigid body can
    have): the flange joint's reflected rotor inertia, put in the rigid body instead of sim.armature.
    PyBulletArm emulates armature by shaping the joint torques, which cannot see contact forces:
    friction on the peg's side (1 cm from the axis) then turns a wrist_3 whose link weighs ~3e-4 kg m^2
    against nothing and spins it past its speed limit; in the body, the contact solver sees the rotor.
    The half about the diameters adds to the joints that swing the peg about other axes (with the peg
    vertical: wrist_2, wrist_1, elbow, shoulder_lift): an experiment takes it off their sim.armature."""

    radius: float = 0.01
    length: float = 0.08
    mass: float = 0.05
    friction: float = 0.5
    parent_link: str = 'tool0'
    axial_inertia: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, 'radius', 'length', 'mass')
        if not (isinstance(self.axial_inertia, (int, float)) and math.isfinite(self.axial_inertia)
                and self.axial_inertia >= 0):
            raise ValueError(f'axial_inertia: {self.axial_inertia!r} is not a finite number >= 0 '
                             f'(expected an inertia [kg m^2])')
        if not (math.isfinite(self.friction) and self.friction >= 0):
            raise ValueError(f'friction: {self.friction!r} is not a finite number >= 0 (expected a friction coefficient)')
        if not self.parent_link:
            raise ValueError('parent_link: is empty (expected the flange link, e.g. tool0)')


@dataclass(frozen=True)
class HoleBlockConfig:
    """clearance [m]: gap between the peg and each wall when centred (hole side 2 (radius + clearance));
    depth: rim to the floor's top; wall, floor: thicknesses; friction: lateral friction coefficient."""

    clearance: float = 0.002
    depth: float = 0.06
    wall: float = 0.02
    floor: float = 0.02
    friction: float = 0.5

    def __post_init__(self) -> None:
        _positive(self, 'clearance', 'depth', 'wall', 'floor')
        if not (math.isfinite(self.friction) and self.friction >= 0):
            raise ValueError(f'friction: {self.friction!r} is not a finite number >= 0 (expected a friction coefficient)')


@dataclass(frozen=True)
class PegTask:
    """A peg and the block it goes into; the hole must be deep enough for the success rule."""

    peg: PegConfig = PegConfig()
    block: HoleBlockConfig = HoleBlockConfig()

    def __post_init__(self) -> None:
        if self.block.depth <= 0.5 * self.peg.length:
            raise ValueError(f'block.depth: {self.block.depth} m is not more than half the peg length '
                             f'({0.5 * self.peg.length} m) (expected a hole deep enough for an insertion to count as a success)')

    @property
    def hole_half_width(self) -> float:
        """Half the hole's side [m]: radius + clearance."""
        return self.peg.radius + self.block.clearance

    def floor_top(self, rim: np.ndarray) -> np.ndarray:
        """[3] centre of the hole's floor (its top face) for a rim centre rim [3]."""
        return np.asarray(rim, dtype=float) - np.array([0.0, 0.0, self.block.depth])

    def tip_target(self, rim: np.ndarray) -> np.ndarray:
        """[3] where the tip is when fully inserted: the floor's centre (an experiment's target_position
        for the first end-effector point, with the tool pointing down)."""
        return self.floor_top(rim)


def peg_ee_points(peg: PegConfig) -> np.ndarray:
    """[2, 3] end-effector points in the parent link's frame: the tip first (the point whose distance
    counts), then the peg's root at the flange, on the axis: together they fix the peg's axis (the
    cylinder's roll about it does not matter)."""
    return np.array([[0.0, 0.0, peg.length], [0.0, 0.0, 0.0]])


def inserted(tip: np.ndarray, rim: np.ndarray, task: PegTask) -> np.ndarray:
    """Success per tip position tip [..., 3] (base frame) for the hole with rim centre rim [3]: inside
    the hole's footprint, at least peg.length / 2 below the rim, not below the block's bottom."""
    tip = np.asarray(tip, dtype=float)
    rel = tip - np.asarray(rim, dtype=float)
    half = task.hole_half_width
    inside = (np.abs(rel[..., 0]) <= half) & (np.abs(rel[..., 1]) <= half)
    deep = rel[..., 2] <= -0.5 * task.peg.length
    above_bottom = rel[..., 2] >= -(task.block.depth + task.block.floor)
    return inside & deep & above_bottom


def tip_from_state(x_points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[..., 3] tip positions from the state's end-effector block x_points [..., 3P] (points minus their
    targets, gps_controllers.state_encoder) and the targets [P, 3]; the tip is point 0."""
    return np.asarray(x_points)[..., :3] + np.asarray(targets, dtype=float)[0]
