"""The visuomotor scene in a PyBullet client, free of ROS: a table, a coloured block, an optional
distractor block, and a camera rendering RGB images with PyBullet's TinyRenderer (CPU, headless).

`Scene` places the bodies in the client of a PyBulletArm (`arm.client_id`) so the camera sees the
arm too; `Camera` renders that client. Settings are gps_core.scene_config dataclasses; positions
are in the robot's base frame, which is PyBullet's world frame (PyBulletArm loads the URDF's root
link at the origin).

Image layout: [height, width, 3] uint8 RGB, row 0 at the top (what sensor_msgs/Image 'rgb8'
carries and what gps_core.policies.visuomotor takes).
"""
from __future__ import annotations

import numpy as np
import pybullet as p

from gps_core.scene_config import BlockConfig, CameraConfig, SceneConfig

_FAR_AWAY = (0.0, 0.0, -100.0)           # where a distractor waits when a condition has none


def _box(cid: int, half_extents, rgba, position, collide: bool) -> int:
    visual = p.createVisualShape(p.GEOM_BOX, halfExtents=list(half_extents), rgbaColor=list(rgba),
                                 physicsClientId=cid)
    collision = (p.createCollisionShape(p.GEOM_BOX, halfExtents=list(half_extents), physicsClientId=cid)
                 if collide else -1)
    return p.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=collision, baseVisualShapeIndex=visual,
                             basePosition=list(position), physicsClientId=cid)


class Scene:
    """Table, block and distractor (static bodies, mass 0) in PyBullet client `client_id`.

    The block and distractor rest on the table: their positions are set by xy (base frame);
    `set_block_xy` / `set_distractor_xy` move them (per condition, before a trial or a render).
    """

    def __init__(self, client_id: int, config: SceneConfig):
        self.config, self._cid = config, int(client_id)
        t = config.table
        half = (t.size_xy[0] / 2.0, t.size_xy[1] / 2.0, t.thickness / 2.0)
        self.table_id = _box(self._cid, half, t.rgba, (*t.center_xy, t.top_z - t.thickness / 2.0), config.collide)
        b = config.block
        self.block_id = _box(self._cid, b.half_extents, b.rgba, config.block_center(t.center_xy), config.collide)
        self.distractor_id: int | None = None
        if config.distractor is not None:
            d = config.distractor
            self.distractor_id = _box(self._cid, d.half_extents, d.rgba, _FAR_AWAY, config.collide)

    def place(self, objects) -> None:
        """A trial's objects (name -> centre [3], base frame; only xy is used: blocks rest on the
        table): 'block', and 'distractor' (out of view when not named)."""
        unknown = sorted(set(objects) - {'block', 'distractor'})
        if unknown:
            raise ValueError(f'unknown scene objects {unknown} (this scene has block, distractor)')
        if 'block' in objects:
            self.set_block_xy(np.asarray(objects['block'], dtype=float)[:2])
        if self.distractor_id is not None:
            d = objects.get('distractor')
            self.set_distractor_xy(None if d is None else np.asarray(d, dtype=float)[:2])
        elif 'distractor' in objects:
            raise ValueError('this scene has no distractor (scene.distractor is null)')

    def set_block_xy(self, xy) -> np.ndarray:
        """Put the block on the table at xy [2]; returns its centre [3]."""
        return self._place(self.block_id, xy, self.config.block)

    def set_distractor_xy(self, xy) -> np.ndarray | None:
        """Put the distractor on the table at xy [2], or out of view for xy = None; returns its centre."""
        if self.distractor_id is None:
            raise ValueError('this scene has no distractor (scene.distractor is null)')
        if xy is None:
            p.resetBasePositionAndOrientation(self.distractor_id, _FAR_AWAY, (0, 0, 0, 1), physicsClientId=self._cid)
            return None
        return self._place(self.distractor_id, xy, self.config.distractor)

    def block_position(self) -> np.ndarray:
        """[3] centre of the block (base frame)."""
        return np.array(p.getBasePositionAndOrientation(self.block_id, physicsClientId=self._cid)[0])

    def _place(self, body: int, xy, block: BlockConfig) -> np.ndarray:
        if not self.config.on_table(xy):
            raise ValueError(f'block position {list(np.asarray(xy, dtype=float))} is off the table '
                             f'(centre {list(self.config.table.center_xy)}, size {list(self.config.table.size_xy)})')
        centre = self.config.block_center(xy, block)
        p.resetBasePositionAndOrientation(body, centre.tolist(), (0, 0, 0, 1), physicsClientId=self._cid)
        return centre


class Camera:
    """A pinhole camera rendering client `client_id` with TinyRenderer.

    The view matrix comes from the optical pose (CameraConfig.optical_pose), the OpenGL projection
    from the intrinsics K, so a base-frame point lands at the pixel CameraConfig.project gives.
    """

    def __init__(self, client_id: int, config: CameraConfig, light_direction=(0.6, 0.2, 1.0)):
        self.config, self._cid = config, int(client_id)
        self.view_matrix = gl_view_matrix(config)
        self.projection_matrix = gl_projection_matrix(config)
        self._light = [float(v) for v in light_direction]

    @property
    def K(self) -> np.ndarray:
        return self.config.K()

    @property
    def P(self) -> np.ndarray:
        return self.config.P()

    def camera_info(self) -> dict:
        """What a sensor_msgs/CameraInfo needs, as arrays (no distortion: plumb_bob with D = 0)."""
        c = self.config
        return {'width': c.width, 'height': c.height, 'distortion_model': 'plumb_bob', 'd': np.zeros(5),
                'k': c.K(), 'r': np.eye(3), 'p': c.P()}

    def render(self) -> np.ndarray:
        """[height, width, 3] uint8 RGB of the client's current state."""
        c = self.config
        _, _, rgba, _, _ = p.getCameraImage(
            c.width, c.height, self.view_matrix, self.projection_matrix, renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK, shadow=0, lightDirection=self._light, physicsClientId=self._cid)
        return np.asarray(rgba, dtype=np.uint8).reshape(c.height, c.width, 4)[:, :, :3].copy()


def gl_view_matrix(config: CameraConfig) -> list[float]:
    """OpenGL view matrix (world -> eye; eye looks along -z, y up), 16 floats column-major, as
    p.computeViewMatrix returns."""
    R, t = config.optical_pose()
    R_gl = np.diag([1.0, -1.0, -1.0]) @ R.T                # optical (y down, z forward) -> GL eye
    view = np.eye(4)
    view[:3, :3], view[:3, 3] = R_gl, -R_gl @ t
    return view.T.ravel().tolist()


def gl_projection_matrix(config: CameraConfig, tiny_renderer: bool = True) -> list[float]:
    """OpenGL projection of pinhole K with image rows counted from the top (row 0 = top), 16 floats
    column-major: x_ndc = 2 u' / W - 1, y_ndc = 1 - 2 v' / H, where (u', v') are the pixel-corner
    coordinates the renderer samples.

    Standard OpenGL samples pixel (u, v) at its centre, u' = u + 1/2, v' = v + 1/2 (tiny_renderer
    False: what p.computeProjectionMatrixFOV assumes). TinyRenderer samples the pixel with column
    u and (flipped) row v at u' = u, v' = v + 1 (measured here: without the shift a rendered point
    lands half a pixel right and up of K's projection), so its principal point is shifted to match.
    """
    fx, fy, cx, cy = config.intrinsics()
    W, H, n, f = config.width, config.height, config.near, config.far
    cxc, cyc = (cx, cy + 1.0) if tiny_renderer else (cx + 0.5, cy + 0.5)
    proj = np.array([[2 * fx / W, 0.0, 1.0 - 2 * cxc / W, 0.0],
                     [0.0, 2 * fy / H, 2 * cyc / H - 1.0, 0.0],
                     [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
                     [0.0, 0.0, -1.0, 0.0]])
    return proj.T.ravel().tolist()


def render_block_images(scene: Scene, camera: Camera, block_xy: np.ndarray,
                        distractor_xy: np.ndarray | None = None, arm=None,
                        joint_positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images of the block at each of block_xy [N, 2] (pose pretraining data, JMLR'16 Sec. 4.3).

    distractor_xy [N, 2]: the distractor's position per image (needs a scene with one).
    arm, joint_positions [N, nj]: the arm (a PyBulletArm in the same client) is put at
    joint_positions[i] for image i, so the network learns to look past the arm.
    Returns images [N, H, W, 3] uint8 and the block centres [N, 3] (base frame).
    """
    block_xy = np.asarray(block_xy, dtype=float)
    N = block_xy.shape[0]
    if block_xy.shape != (N, 2):
        raise ValueError(f'block_xy must be [N, 2], got {block_xy.shape}')
    if distractor_xy is not None and np.shape(distractor_xy) != (N, 2):
        raise ValueError(f'distractor_xy must be [{N}, 2], got {np.shape(distractor_xy)}')
    if (joint_positions is None) != (arm is None):
        raise ValueError('pass both arm and joint_positions, or neither')
    c = camera.config
    images = np.empty((N, c.height, c.width, 3), dtype=np.uint8)
    centres = np.empty((N, 3))
    for i in range(N):
        centres[i] = scene.set_block_xy(block_xy[i])
        if distractor_xy is not None:
            scene.set_distractor_xy(distractor_xy[i])
        if arm is not None:
            arm.reset(joint_positions[i])
        images[i] = camera.render()
    return images, centres
