"""Checks of an experiment against its robot, before anything runs (ROS-free).

gps_core.config checks what the YAML alone decides (keys, types, finiteness, ranges, lengths).
What needs the URDF is checked here: the file exists and is a URDF, the named joints and links
exist, the joints can be controlled, the base is fixed, and every start pose lies within the
joint limits. Every mistake raises ConfigError `FILE: KEY: what is wrong (expected ...)`, so the
CLI can print one line and stop before it writes a file or starts a node.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from gps_controllers.urdf_limits import JointLimits, read_joint_limits
from gps_core.config import ConfigError, ExperimentConfig

_MOVABLE = ('revolute', 'continuous', 'prismatic')
_SUPPORTED = _MOVABLE + ('fixed',)     # what PyBulletArm and the state encoder handle


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str
    parent: str
    child: str


@dataclass(frozen=True)
class Urdf:
    """What the checks need from a URDF: its links, its joints by name, the limits."""

    path: Path
    links: tuple[str, ...]
    joints: dict[str, UrdfJoint]
    limits: dict[str, JointLimits]      # revolute, prismatic, continuous joints

    def parent_joint(self, link: str) -> UrdfJoint | None:
        return next((j for j in self.joints.values() if j.child == link), None)


def validate_experiment(cfg: ExperimentConfig) -> None:
    """Raise ConfigError naming the file and key of the first mistake that needs the robot."""
    urdf = read_urdf(cfg)
    _check_joints(cfg, urdf)
    _check_links(cfg, urdf)
    _check_start_poses(cfg, urdf)
    _check_builds(cfg)


def _error(cfg: ExperimentConfig, key: str, problem: str) -> ConfigError:
    return ConfigError(problem, key, cfg.source)


def urdf_path(cfg: ExperimentConfig) -> Path:
    """The robot's URDF file; ConfigError at robot.urdf if it cannot be found."""
    expected = ('expected a URDF file: a path relative to the experiment file, an absolute path, '
                'package://<package>/<path> or pybullet_data://<path>')
    try:
        path = cfg.resolve(cfg.robot.urdf)
    except ConfigError:
        raise
    except (ImportError, LookupError, OSError, ValueError) as err:   # package://: no ament index, no package
        reason = err.args[0] if err.args else type(err).__name__
        raise _error(cfg, 'robot.urdf', f'cannot resolve {cfg.robot.urdf!r}: {reason} ({expected})') from err
    if not path.is_file():
        what = 'is a folder' if path.is_dir() else 'does not exist'
        raise _error(cfg, 'robot.urdf', f'{path} {what} ({expected})')
    return path


def read_urdf(cfg: ExperimentConfig) -> Urdf:
    """Parse the robot's URDF; ConfigError at robot.urdf if it is not XML or not a URDF."""
    path = urdf_path(cfg)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise _error(cfg, 'robot.urdf', f'{path} is not XML: {err} (expected a URDF file)') from err
    except OSError as err:
        raise _error(cfg, 'robot.urdf', f'cannot read {path}: {err.strerror or err} (expected a URDF file)') from err
    if root.tag != 'robot':
        raise _error(cfg, 'robot.urdf', f'{path} has root element <{root.tag}> (expected a URDF: <robot>)')
    links = tuple(link.get('name', '') for link in root.findall('link'))
    joints: dict[str, UrdfJoint] = {}
    for j in root.findall('joint'):
        name, jtype = j.get('name', ''), j.get('type', '')
        parent, child = j.find('parent'), j.find('child')
        if parent is None or child is None:
            raise _error(cfg, 'robot.urdf', f'joint {name!r} in {path} lacks <parent> or <child> (expected both)')
        if jtype not in _SUPPORTED:
            raise _error(cfg, 'robot.urdf', f'joint {name!r} in {path} is {jtype!r} '
                                            f'(expected {", ".join(_SUPPORTED)} joints only: a fixed-base arm)')
        joints[name] = UrdfJoint(name, jtype, parent.get('link', ''), child.get('link', ''))
    try:
        limits = read_joint_limits(path)
    except ValueError as err:
        raise _error(cfg, 'robot.urdf', f'{err} (expected a <limit> with effort and velocity on every movable joint)') from err
    return Urdf(path, links, joints, limits)


def _check_joints(cfg: ExperimentConfig, urdf: Urdf) -> None:
    movable = sorted(n for n, j in urdf.joints.items() if j.type in _MOVABLE)
    for i, name in enumerate(cfg.robot.joints):
        key = f'robot.joints[{i}]'
        joint = urdf.joints.get(name)
        if joint is None:
            raise _error(cfg, key, f'{name!r} is not a joint of {urdf.path.name} (expected one of {movable})')
        if joint.type not in _MOVABLE:
            raise _error(cfg, key, f'{name!r} is a {joint.type} joint (expected a movable joint: one of {movable})')


def _check_links(cfg: ExperimentConfig, urdf: Urdf) -> None:
    for key, link in (('robot.ee_link', cfg.robot.ee_link), ('robot.base_link', cfg.robot.base_link)):
        if link not in urdf.links:
            raise _error(cfg, key, f'{link!r} is not a link of {urdf.path.name} (expected one of {sorted(urdf.links)})')
    link = cfg.robot.base_link
    while (joint := urdf.parent_joint(link)) is not None:
        if joint.type != 'fixed':
            raise _error(cfg, 'robot.base_link', f'{cfg.robot.base_link!r} moves with joint {joint.name!r} '
                                                 f'(expected a link fixed to the URDF root)')
        link = joint.parent
    link, moved_by = cfg.robot.ee_link, []
    while (joint := urdf.parent_joint(link)) is not None:
        moved_by.append(joint.name)
        link = joint.parent
    if not set(moved_by) & set(cfg.robot.joints):
        raise _error(cfg, 'robot.ee_link', f'{cfg.robot.ee_link!r} is moved by none of robot.joints '
                                           f'(expected a link downstream of the controlled joints)')
    for key, link in (('disturbance.link', cfg.disturbance.link if cfg.disturbance else None),
                      ('peg_task.peg.parent_link', cfg.peg_task.peg.parent_link if cfg.peg_task else None)):
        if link is not None and link not in urdf.links:
            raise _error(cfg, key, f'{link!r} is not a link of {urdf.path.name} (expected one of {sorted(urdf.links)})')


def _check_start_poses(cfg: ExperimentConfig, urdf: Urdf) -> None:
    for name, conds in (('conditions', cfg.conditions), ('test_conditions', cfg.test_conditions)):
        for i, c in enumerate(conds):
            for j, (joint, q) in enumerate(zip(cfg.robot.joints, c.initial_joint_positions)):
                lim = urdf.limits[joint]
                if not lim.lower <= q <= lim.upper:
                    raise _error(cfg, f'{name}[{i}].initial_joint_positions[{j}]',
                                 f'{q!r} is outside the limits of {joint} (expected {lim.lower:g} <= q <= '
                                 f'{lim.upper:g}, from the URDF)')


def _check_builds(cfg: ExperimentConfig) -> None:
    """The objects training needs build: anything the checks above missed is still one line."""
    from gps_agent_ros.experiment import Experiment      # pinocchio: imported only when needed
    try:
        exp = Experiment(cfg)
        exp.costs()
        exp.init_policies()
    except ValueError as err:
        raise _error(cfg, 'robot', f'{err} (expected a robot the state encoder can model)') from err


def check_output_folder(out: Path) -> None:
    """ConfigError at --out unless `out` is, or can be created as, a folder this process may
    write into. Creates nothing."""
    import os
    out = Path(out).absolute()
    expected = '(expected a folder gps-train can create and write files in)'
    if out.exists() and not out.is_dir():
        raise ConfigError(f'{out} is a file, not a folder {expected}', '--out')
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f'cannot create {out}: {existing} is a file, not a folder {expected}', '--out')
    if not os.access(existing, os.W_OK | os.X_OK):
        what = f'{out} is not writable' if existing == out else f'cannot create {out}: {existing} is not writable'
        raise ConfigError(f'{what} {expected}', '--out')
