"""Settings of the visuomotor scene: a table, a coloured block (the target the policy must find in
the image), an optional distractor block and a camera. numpy only (no simulator, no ROS).

Frames and units: positions in the robot's base frame (base_link), metres; colours RGBA in [0, 1].
Camera conventions (as ROS sensor_msgs/CameraInfo and OpenCV): the optical frame has z forward,
x right, y down; pixel (u, v) is column u, row v, with (0, 0) the centre of the top-left pixel;
K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], P = [K | 0].

Each dataclass is frozen, checks its values in __post_init__ and has a strict `from_dict` that
rejects unknown keys by name (the experiment schema's `scene:` section is built with it, or with
gps_core.config.build, which reads the same type hints).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


class SceneConfigError(ValueError):
    """A scene setting that is unknown, missing or out of range; the message names it."""


def _from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from plain YAML data: unknown keys raise naming them; lists become
    tuples; nested dataclass fields (and `X | None` of one) are built recursively."""
    if not isinstance(data, Mapping):
        raise SceneConfigError(f'{where}: expected a mapping for {cls.__name__}, got {data!r}')
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SceneConfigError(f'{where}: unknown key(s) {unknown} in {cls.__name__}; valid keys: {names}')
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        nested = _nested_dataclass(hints[key])
        if nested is not None and value is not None:
            kwargs[key] = _from_dict(nested, value, f'{where}.{key}')
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:                       # a required key is missing
        raise SceneConfigError(f'{where}: {err}') from err
    except SceneConfigError as err:
        raise SceneConfigError(f'{where}: {err}') from err


def _nested_dataclass(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _vector(value: Any, n: int, name: str, positive: bool = False) -> tuple[float, ...]:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SceneConfigError(f'{name} must be {n} numbers, got {value!r}') from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        what = f'{n} {"positive " if positive else ""}finite numbers'
        raise SceneConfigError(f'{name} must be {what}, got {value!r}')
    return tuple(float(v) for v in arr)


def _rgba(value: Any, name: str) -> tuple[float, float, float, float]:
    rgba = _vector(value, 4, name)
    if min(rgba) < 0.0 or max(rgba) > 1.0:
        raise SceneConfigError(f'{name} must be RGBA values in [0, 1], got {value!r}')
    return rgba


@dataclass(frozen=True)
class TableConfig:
    """A box whose top face is at height top_z, centred at center_xy, size_xy wide, thickness thick.
    The default covers the arm's base and the area in front of it (+x); the robot stands on it."""

    center_xy: tuple[float, float] = (0.35, 0.10)
    size_xy: tuple[float, float] = (1.20, 1.10)
    top_z: float = 0.0
    thickness: float = 0.04
    rgba: tuple[float, float, float, float] = (0.62, 0.50, 0.36, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'center_xy', _vector(self.center_xy, 2, 'table.center_xy'))
        object.__setattr__(self, 'size_xy', _vector(self.size_xy, 2, 'table.size_xy', positive=True))
        object.__setattr__(self, 'top_z', _vector([self.top_z], 1, 'table.top_z')[0])
        object.__setattr__(self, 'thickness', _vector([self.thickness], 1, 'table.thickness', positive=True)[0])
        object.__setattr__(self, 'rgba', _rgba(self.rgba, 'table.rgba'))

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = 'scene.table') -> TableConfig:
        return _from_dict(TableConfig, data, where)


@dataclass(frozen=True)
class BlockConfig:
    """A box resting on the table (its centre at top_z + half_extents[2]); the position is set per
    condition. Default: a 5 cm red cube (the arm is grey and blue)."""

    half_extents: tuple[float, float, float] = (0.025, 0.025, 0.025)
    rgba: tuple[float, float, float, float] = (0.85, 0.12, 0.10, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'half_extents', _vector(self.half_extents, 3, 'block.half_extents', positive=True))
        object.__setattr__(self, 'rgba', _rgba(self.rgba, 'block.rgba'))

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = 'scene.block') -> BlockConfig:
        return _from_dict(BlockConfig, data, where)


@dataclass(frozen=True)
class CameraConfig:
    """A pinhole camera at `position` looking at `look_at` (base frame), `up` fixing its roll.

    Intrinsics: either fov_deg (vertical field of view; square pixels, principal point at the image
    centre) or all of fx, fy, cx, cy (pixels, in the convention of the module docstring).
    near, far: clipping distances of the renderer [m].
    The default looks down (~58 degrees) at the table in front of the arm from the far side (+x):
    x in [0.3, 0.7] m, y in [-0.1, 0.35] m fills the image, a 5 cm block spans ~4 pixels at 64x64,
    and the arm at the home pose (hand at z ~ 0.5 m) shows only at the top edge, behind the table
    area, so it does not hide the block; a hand above the block appears above it in the image.
    """

    width: int = 64
    height: int = 64
    position: tuple[float, float, float] = (1.00, 0.12, 0.80)
    look_at: tuple[float, float, float] = (0.50, 0.12, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float | None = 45.0
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    near: float = 0.05
    far: float = 5.0

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 8 <= value <= 4096:
                raise SceneConfigError(f'camera.{name} must be an integer number of pixels in [8, 4096], got {value!r}')
            object.__setattr__(self, name, int(value))
        for name in ('position', 'look_at', 'up'):
            object.__setattr__(self, name, _vector(getattr(self, name), 3, f'camera.{name}'))
        view = np.subtract(self.look_at, self.position)
        if np.linalg.norm(view) < 1e-6:
            raise SceneConfigError('camera.position and camera.look_at must differ')
        if np.linalg.norm(np.cross(view / np.linalg.norm(view), self.up)) < 1e-6 * max(np.linalg.norm(self.up), 1.0):
            raise SceneConfigError(f'camera.up {list(self.up)} must not be parallel to the viewing direction (or zero)')
        pinhole = [getattr(self, k) for k in ('fx', 'fy', 'cx', 'cy')]
        if self.fov_deg is not None:
            if any(v is not None for v in pinhole):
                raise SceneConfigError('camera: give either fov_deg or fx, fy, cx, cy, not both '
                                       '(set fov_deg: null to use fx, fy, cx, cy)')
            fov = _vector([self.fov_deg], 1, 'camera.fov_deg')[0]
            if not 1.0 <= fov <= 170.0:
                raise SceneConfigError(f'camera.fov_deg must be in [1, 170] degrees, got {self.fov_deg!r}')
            object.__setattr__(self, 'fov_deg', fov)
        else:
            if any(v is None for v in pinhole):
                raise SceneConfigError('camera: without fov_deg, all of fx, fy, cx, cy are needed')
            fx, fy, cx, cy = _vector(pinhole, 4, 'camera.fx, fy, cx, cy')
            if fx <= 0 or fy <= 0:
                raise SceneConfigError(f'camera.fx and camera.fy must be > 0, got {fx}, {fy}')
            for k, v in zip(('fx', 'fy', 'cx', 'cy'), (fx, fy, cx, cy)):
                object.__setattr__(self, k, v)
        near, far = _vector([self.near, self.far], 2, 'camera.near, camera.far')
        if not 0.0 < near < far:
            raise SceneConfigError(f'camera clipping needs 0 < near < far, got near={near}, far={far}')
        object.__setattr__(self, 'near', near)
        object.__setattr__(self, 'far', far)

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = 'scene.camera') -> CameraConfig:
        return _from_dict(CameraConfig, data, where)

    # ------------------------------------------------------------ intrinsics (CameraInfo)
    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels."""
        if self.fov_deg is None:
            return self.fx, self.fy, self.cx, self.cy
        f = 0.5 * self.height / math.tan(math.radians(self.fov_deg) / 2.0)
        return f, f, (self.width - 1) / 2.0, (self.height - 1) / 2.0

    def K(self) -> np.ndarray:
        """[3, 3] camera matrix (CameraInfo.k)."""
        fx, fy, cx, cy = self.intrinsics()
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def P(self) -> np.ndarray:
        """[3, 4] projection matrix of this monocular camera (CameraInfo.p = [K | 0])."""
        return np.hstack([self.K(), np.zeros((3, 1))])

    # ------------------------------------------------------------ extrinsics
    def optical_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(R [3, 3], t [3]): the optical frame in the base frame (columns of R: its x, y, z axes)."""
        eye = np.asarray(self.position)
        z = np.subtract(self.look_at, eye)
        z /= np.linalg.norm(z)
        x = np.cross(z, self.up)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        return np.stack([x, y, z], axis=1), eye.copy()

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates [N, 2] (u, v) of points [N, 3] in the base frame (pinhole, no distortion)."""
        R, t = self.optical_pose()
        pc = (np.asarray(points, dtype=float).reshape(-1, 3) - t) @ R
        fx, fy, cx, cy = self.intrinsics()
        return np.stack([fx * pc[:, 0] / pc[:, 2] + cx, fy * pc[:, 1] / pc[:, 2] + cy], axis=1)


@dataclass(frozen=True)
class SceneConfig:
    """The table, the target block, an optional distractor block (another colour; null for none)
    and the camera. collide: give the table and blocks collision shapes (default: visual only, so
    the arm's dynamics stay exactly those of its URDF and the arm can never push the block)."""

    table: TableConfig = field(default_factory=TableConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    distractor: BlockConfig | None = None
    camera: CameraConfig = field(default_factory=CameraConfig)
    collide: bool = False
    reach_height: float = 0.10    # a condition's target: this far above its block's centre [m]
    # where blocks may be (pose pretraining draws from it; test positions lie inside it) [m]
    area_x: tuple[float, float] = (0.40, 0.65)
    area_y: tuple[float, float] = (-0.05, 0.30)

    def __post_init__(self) -> None:
        for name in ('area_x', 'area_y'):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise SceneConfigError(f'scene.{name} must be [low, high] with low < high, got {[lo, hi]}')
        for xy in ((self.area_x[0], self.area_y[0]), (self.area_x[1], self.area_y[1])):
            if not self.on_table(xy):
                raise SceneConfigError(f'scene.area_x/area_y corner {list(xy)} is off the table')
        if not (math.isfinite(self.reach_height) and self.reach_height >= 0):
            raise SceneConfigError(f'scene.reach_height must be >= 0, got {self.reach_height}')
        for name, cls in (('table', TableConfig), ('block', BlockConfig), ('camera', CameraConfig)):
            if not isinstance(getattr(self, name), cls):
                raise SceneConfigError(f'scene.{name} must be a {cls.__name__}, got {getattr(self, name)!r}')
        if self.distractor is not None and not isinstance(self.distractor, BlockConfig):
            raise SceneConfigError(f'scene.distractor must be a BlockConfig or None, got {self.distractor!r}')
        if self.distractor is not None and self.distractor.rgba == self.block.rgba:
            raise SceneConfigError('scene.distractor must differ in colour from scene.block')
        if not isinstance(self.collide, bool):
            raise SceneConfigError(f'scene.collide must be true or false, got {self.collide!r}')

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = 'scene') -> SceneConfig:
        return _from_dict(SceneConfig, data, where)

    def target_above(self, xy) -> np.ndarray:
        """[3] the reach target of a block at xy: reach_height above its centre."""
        return self.block_center(xy) + np.array([0.0, 0.0, self.reach_height])

    def block_center(self, xy: tuple[float, float] | np.ndarray, block: BlockConfig | None = None) -> np.ndarray:
        """[3] centre of a block resting on the table at xy (base frame)."""
        block = self.block if block is None else block
        xy = _vector(xy, 2, 'block position xy')
        return np.array([xy[0], xy[1], self.table.top_z + block.half_extents[2]])

    def on_table(self, xy: tuple[float, float] | np.ndarray) -> bool:
        """Whether xy lies on the table top."""
        c, s = np.asarray(self.table.center_xy), np.asarray(self.table.size_xy)
        return bool(np.all(np.abs(np.asarray(xy, dtype=float) - c) <= s / 2.0))
