"""Peg insertion (the GPS papers' peg-in-hole task: Levine & Abbeel NIPS'14, Levine et al. JMLR'16) for
the PyBullet arm, free of ROS: a cylindrical peg rigidly at the tool flange, a static block with a
square hole a few millimetres wider than the peg, and the success rule.

The peg is part of the arm's URDF (`write_peg_urdf` adds a `peg` link on a fixed joint to `tool0` and
writes the result to a file), not a second body held by a constraint: PyBullet merges a fixed joint into
the multibody, so the peg is exactly rigid under contact (a fixed constraint is solved softly and lets
the peg sag and twist when it is pushed into the hole), the gravity compensation (inverse dynamics of
the body) includes its mass, and a pinocchio model built from the same file sees it too. The state
encoder may keep the plain arm URDF: the peg only moves its points, `peg_ee_points`.

Geometry (base frame = PyBullet's world frame; the hole's axis vertical):
  peg     cylinder of `radius` and `length` along tool0's z, from the flange face (z = 0) to the tip
          (z = length); contact friction `friction`;
  block   4 walls + a floor as one compound collision shape of boxes, positioned by the centre of the
          hole's rim `rim` [3]: square hole of side 2 (radius + clearance), depth `depth` from the rim
          to the floor's top, walls `wall` thick, floor `floor` thick.

Success (`inserted`): the peg's tip inside the hole's square footprint, at least half the peg's length
below the rim and not below the block's bottom, at the last step.
"""
from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p

PEG_LINK = 'peg'


def _positive(obj, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f'{name}: {v!r} is not a finite number > 0')


@dataclass(frozen=True)
class PegConfig:
    """radius, length [m]; mass [kg]; friction: lateral (Coulomb) friction coefficient; parent_link:
    the flange link the peg is fixed to (its z axis out of the flange)."""

    radius: float = 0.01
    length: float = 0.08
    mass: float = 0.05
    friction: float = 0.5
    parent_link: str = 'tool0'

    def __post_init__(self) -> None:
        _positive(self, 'radius', 'length', 'mass')
        if not (math.isfinite(self.friction) and self.friction >= 0):
            raise ValueError(f'friction: {self.friction!r} is not a finite number >= 0')
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
            raise ValueError(f'friction: {self.friction!r} is not a finite number >= 0')


@dataclass(frozen=True)
class PegTask:
    """A peg and the block it goes into; the hole must be deep enough for the success rule."""

    peg: PegConfig = PegConfig()
    block: HoleBlockConfig = HoleBlockConfig()

    def __post_init__(self) -> None:
        if self.block.depth <= 0.5 * self.peg.length:
            raise ValueError(f'block.depth: {self.block.depth} m is not more than half the peg length '
                             f'({0.5 * self.peg.length} m): no insertion could count as a success')

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


def write_peg_urdf(urdf_path: str | os.PathLike, peg: PegConfig, out_path: str | os.PathLike | None = None) -> str:
    """The arm's URDF plus the peg link on a fixed joint to peg.parent_link, written to out_path
    (default: a new temporary directory); returns the path. Relative mesh file names are made
    absolute so the copy loads from anywhere."""
    src = Path(urdf_path).resolve()
    tree = ET.parse(src)
    robot = tree.getroot()
    links = {link.get('name') for link in robot.findall('link')}
    if peg.parent_link not in links:
        raise ValueError(f'parent_link: {peg.parent_link!r} is not a link of {str(src)!r}')
    if PEG_LINK in links:
        raise ValueError(f'{str(src)!r} already has a link named {PEG_LINK!r}')
    for mesh in robot.iter('mesh'):
        name = mesh.get('filename', '')
        if name and '://' not in name and not os.path.isabs(name):
            mesh.set('filename', str((src.parent / name).resolve()))
    r, L, m = peg.radius, peg.length, peg.mass
    ixx = m * (3 * r * r + L * L) / 12.0
    izz = m * r * r / 2.0
    origin = f'<origin xyz="0 0 {L / 2!r}" rpy="0 0 0"/>'
    geometry = f'<geometry><cylinder radius="{r!r}" length="{L!r}"/></geometry>'
    robot.append(ET.fromstring(
        f'<link name="{PEG_LINK}">'
        f'<inertial>{origin}<mass value="{m!r}"/>'
        f'<inertia ixx="{ixx!r}" ixy="0" ixz="0" iyy="{ixx!r}" iyz="0" izz="{izz!r}"/></inertial>'
        f'<visual>{origin}{geometry}<material name="peg_orange"><color rgba="0.9 0.5 0.1 1"/></material></visual>'
        f'<collision>{origin}{geometry}</collision>'
        f'<contact><lateral_friction value="{peg.friction!r}"/></contact>'
        f'</link>'))
    robot.append(ET.fromstring(
        f'<joint name="{peg.parent_link}-{PEG_LINK}" type="fixed"><parent link="{peg.parent_link}"/>'
        f'<child link="{PEG_LINK}"/><origin xyz="0 0 0" rpy="0 0 0"/></joint>'))
    if out_path is None:
        out_path = Path(tempfile.mkdtemp(prefix='gps_peg_')) / f'{src.stem}_peg.urdf'
    tree.write(str(out_path), xml_declaration=True, encoding='utf-8')
    return str(out_path)


def block_boxes(task: PegTask) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """(half extents, centre relative to the rim centre) of the block's 5 boxes: walls at -x, +x (full
    outer length along y), -y, +y (the hole's side along x), then the floor."""
    b, h = task.block, task.hole_half_width
    outer = h + b.wall
    zc = -b.depth / 2.0
    wall_x = ((b.wall / 2.0, outer, b.depth / 2.0), (0.0, 0.0, zc))
    wall_y = ((h, b.wall / 2.0, b.depth / 2.0), (0.0, 0.0, zc))
    off = h + b.wall / 2.0
    return [(wall_x[0], (-off, 0.0, zc)), (wall_x[0], (off, 0.0, zc)),
            (wall_y[0], (0.0, -off, zc)), (wall_y[0], (0.0, off, zc)),
            ((outer, outer, b.floor / 2.0), (0.0, 0.0, -b.depth - b.floor / 2.0))]


class HoleBlock:
    """The block as a static body (mass 0) in PyBullet client `client_id`, its frame at the rim centre."""

    def __init__(self, client_id: int, task: PegTask, rim: np.ndarray, rgba=(0.3, 0.3, 0.8, 1.0)):
        self._cid, self.task = int(client_id), task
        boxes = block_boxes(task)
        half = [list(b[0]) for b in boxes]
        pos = [list(b[1]) for b in boxes]
        n = len(boxes)
        collision = p.createCollisionShapeArray([p.GEOM_BOX] * n, halfExtents=half, collisionFramePositions=pos,
                                                physicsClientId=self._cid)
        visual = p.createVisualShapeArray([p.GEOM_BOX] * n, halfExtents=half, visualFramePositions=pos,
                                          rgbaColors=[list(rgba)] * n, physicsClientId=self._cid)
        self.body_id = p.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=collision,
                                         baseVisualShapeIndex=visual, basePosition=list(np.asarray(rim, float)),
                                         physicsClientId=self._cid)
        p.changeDynamics(self.body_id, -1, lateralFriction=task.block.friction, physicsClientId=self._cid)

    def place(self, rim: np.ndarray) -> None:
        """Move the block so its rim centre is at rim [3] (per condition, before a trial)."""
        p.resetBasePositionAndOrientation(self.body_id, list(np.asarray(rim, float)), (0, 0, 0, 1),
                                          physicsClientId=self._cid)

    @property
    def rim(self) -> np.ndarray:
        return np.array(p.getBasePositionAndOrientation(self.body_id, physicsClientId=self._cid)[0])
