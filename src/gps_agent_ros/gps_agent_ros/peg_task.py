"""Peg insertion (the GPS papers' peg-in-hole task: Levine & Abbeel NIPS'14, Levine et al. JMLR'16) for
the PyBullet arm, free of ROS: a cylindrical peg rigidly at the tool flange, a static block with a
square hole a few millimetres wider than the peg, and the success rule.

The peg is part of the arm's URDF (`write_peg_urdf` adds a `peg` link on a fixed joint to `tool0` and
writes the result to a file), not a second body held by a constraint: PyBullet merges a fixed joint into
the multibody, so the peg is exactly rigid under contact (a fixed constraint is solved softly and lets
the peg sag and twist when it is pushed into the hole), the gravity compensation (inverse dynamics of
the body) includes its mass, and a pinocchio model built from the same file sees it too. The state
encoder may keep the plain arm URDF: the peg only moves its points, `peg_ee_points`.

The task's settings and success rule are plain data in gps_core.peg_config (re-exported here); this
module adds what needs the simulator: the URDF with the peg, the block as a PyBullet body, and the
`PegScene` the agents place per trial (the in-process agent and sim_node alike).

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

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping

import numpy as np
import pybullet as p

from gps_core.peg_config import HoleBlockConfig, PegConfig, PegTask, inserted, peg_ee_points, tip_from_state

__all__ = ['PEG_LINK', 'HoleBlock', 'HoleBlockConfig', 'PegArm', 'PegConfig', 'PegScene', 'PegTask', 'block_boxes',
           'inserted',
           'peg_ee_points', 'tip_from_state', 'write_peg_urdf']

PEG_LINK = 'peg'


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
    # a solid cylinder, plus the flange joint's rotor disk if it is put here (PegConfig.axial_inertia)
    ixx = m * (3 * r * r + L * L) / 12.0 + peg.axial_inertia / 2.0
    izz = m * r * r / 2.0 + peg.axial_inertia
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


_FAR_AWAY = (0.0, 0.0, -100.0)           # where the block waits while a trial names no hole


class PegScene:
    """The block with the hole in the arm's world (PyBullet client `client_id`), moved to each trial's
    hole: `place(objects)` with objects {'hole': rim centre [3]} (base frame), as a RunTrial goal and a
    ResetArm request carry them (object_names / object_positions)."""

    OBJECT = 'hole'

    def __init__(self, client_id: int, task: PegTask):
        self.task = task
        self.block = HoleBlock(client_id, task, np.array(_FAR_AWAY))

    def place(self, objects: Mapping[str, np.ndarray]) -> None:
        """Move the block to objects['hole'] (out of the way when a trial names none); ValueError
        naming an object this scene does not have, or a non-finite position."""
        unknown = sorted(set(objects) - {self.OBJECT})
        if unknown:
            raise ValueError(f'unknown scene objects {unknown} (the peg scene has {self.OBJECT})')
        rim = np.asarray(objects.get(self.OBJECT, _FAR_AWAY), dtype=float).reshape(-1)
        if rim.shape != (3,) or not np.all(np.isfinite(rim)):
            raise ValueError(f'the hole position must be a finite [x, y, z], got {rim.tolist()}')
        self.block.place(rim)


class PegArm:
    """The arm's URDF with the peg, written once to a temporary folder (removed by `close`)."""

    def __init__(self, urdf_path: str | os.PathLike, peg: PegConfig):
        self._dir = tempfile.TemporaryDirectory(prefix='gps_peg_')
        self.urdf_path = write_peg_urdf(urdf_path, peg, Path(self._dir.name) / f'{Path(urdf_path).stem}_peg.urdf')

    def close(self) -> None:
        self._dir.cleanup()
