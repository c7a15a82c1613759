"""The scene and camera in PyBullet against independent references: PyBullet's own view and
projection matrices, the renderer's image of a block vs the pinhole projection of its centre, and
pose pretraining on rendered images vs predicting the mean position."""
from __future__ import annotations

import numpy as np
import pybullet as p
import pytest
import torch

from gps_agent_ros.pybullet_arm import PyBulletArm
from gps_agent_ros.scene import Camera, Scene, gl_projection_matrix, gl_view_matrix, render_block_images
from gps_core.policies.pose_pretrain import pose_errors, pretrain_vision
from gps_core.policies.visuomotor import VisuomotorNetwork
from gps_core.policies.visuomotor_config import PosePretrainConfig
from gps_core.scene_config import BlockConfig, CameraConfig, SceneConfig

HOME = np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
RED, GREEN = (0.85, 0.12, 0.10, 1.0), (0.1, 0.7, 0.2, 1.0)


@pytest.fixture()
def arm(ur5e_urdf, ur5e_joints):
    with PyBulletArm(ur5e_urdf, ur5e_joints) as a:
        a.reset(HOME)
        yield a


def red_centroid(image: np.ndarray) -> np.ndarray:
    """(u, v) mean of the block's pixels (red: high R, low G and B)."""
    r, g, b = (image[:, :, i].astype(int) for i in range(3))
    rows, cols = np.nonzero((r > 120) & (g < 80) & (b < 80))
    assert rows.size > 0, 'block not visible'
    return np.array([cols.mean(), rows.mean()])


def test_view_and_projection_match_pybullet():
    """With GL's pixel-centre sampling (tiny_renderer=False) our matrices are PyBullet's own."""
    cam = CameraConfig(width=80, height=60, position=(1.1, -0.2, 0.9), look_at=(0.5, 0.1, 0.0), fov_deg=50.0)
    np.testing.assert_allclose(gl_view_matrix(cam), p.computeViewMatrix(cam.position, cam.look_at, cam.up), atol=1e-6)
    np.testing.assert_allclose(gl_projection_matrix(cam, tiny_renderer=False), p.computeProjectionMatrixFOV(50.0, 80 / 60, cam.near, cam.far),
                               atol=1e-6)


def polygon_centroid(P: np.ndarray) -> np.ndarray:
    """Area centroid [2] of a simple polygon with vertices P [n, 2] in order (shoelace formula)."""
    x, y = P[:, 0], P[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * area)


@pytest.mark.parametrize('camera', [
    CameraConfig(width=96, height=72),
    # off-centre principal point and fx != fy: exercises the asymmetric frustum
    CameraConfig(width=100, height=80, fov_deg=None, fx=95.0, fy=105.0, cx=42.0, cy=45.0,
                 position=(0.9, 0.4, 0.7), look_at=(0.5, 0.05, 0.0)),
])
def test_rendered_tile_lands_where_the_camera_model_projects_it(arm, camera):
    """A thin square tile: its image is the quadrilateral of its projected top corners, whose
    centroid the rendered red pixels must reproduce to sub-pixel accuracy (a half-pixel error in
    the projection, e.g. GL's pixel-centre convention with TinyRenderer, shows as a ~0.5 px mean
    offset). Rows count from the top (v), columns from the left (u)."""
    h, t = 0.03, 0.0005
    cfg = SceneConfig(block=BlockConfig(half_extents=(h, h, t), rgba=RED), camera=camera)
    scene, cam = Scene(arm.client_id, cfg), Camera(arm.client_id, cfg.camera)
    errors = []
    for xy in [(0.40, -0.05), (0.62, 0.28), (0.55, 0.10), (0.35, 0.20), (0.68, -0.02)]:
        centre = scene.set_block_xy(xy)
        image = cam.render()
        assert image.shape == (camera.height, camera.width, 3) and image.dtype == np.uint8
        top = centre + [0.0, 0.0, t]
        corners = top + np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]])
        errors.append(red_centroid(image) - polygon_centroid(camera.project(corners)))
        np.testing.assert_allclose(scene.block_position(), centre)
    errors = np.array(errors)
    assert np.all(np.abs(errors) < 0.6), errors
    assert np.all(np.abs(errors.mean(axis=0)) < 0.25), errors


def test_distractor_and_placement_rules(arm):
    cfg = SceneConfig(distractor=BlockConfig(rgba=GREEN))
    scene, cam = Scene(arm.client_id, cfg), Camera(arm.client_id, cfg.camera)
    scene.set_block_xy((0.5, 0.0))
    green = lambda im: int(((im[:, :, 1] > 120) & (im[:, :, 0] < 80)).sum())   # noqa: E731
    scene.set_distractor_xy(None)
    assert green(cam.render()) == 0
    scene.set_distractor_xy((0.5, 0.25))
    assert green(cam.render()) > 4
    with pytest.raises(ValueError, match='off the table'):
        scene.set_block_xy((3.0, 0.0))
    with pytest.raises(ValueError, match='no distractor'):
        Scene(arm.client_id, SceneConfig()).set_distractor_xy((0.5, 0.0))
    info = cam.camera_info()
    assert info['k'].shape == (3, 3) and info['p'].shape == (3, 4) and info['d'].shape == (5,)


def test_visual_only_scene_leaves_the_arm_dynamics_alone(ur5e_urdf, ur5e_joints):
    """Default scene bodies have no collision shapes: the same torques give the same motion."""
    torques = np.tile([0.0, 30.0, -20.0, 2.0, 1.0, 0.5], (20, 1))
    finals = []
    for with_scene in (False, True):
        with PyBulletArm(ur5e_urdf, ur5e_joints) as a:
            a.reset(HOME)
            if with_scene:
                scene = Scene(a.client_id, SceneConfig())
                scene.set_block_xy((0.45, 0.13))                        # right under the hand
            for u in torques:
                a.step(u)
            finals.append(np.concatenate(a.joint_state()))
    np.testing.assert_array_equal(finals[0], finals[1])


def test_pose_pretraining_beats_the_mean_on_held_out_images(arm):
    """JMLR'16 Sec. 4.3 at test scale: 40x40 images, 300 training images with the block anywhere
    in a 35 x 40 cm area and the arm around its home pose, 250 Adam steps, 100 unseen images."""
    rng = np.random.default_rng(0)
    cfg = SceneConfig(camera=CameraConfig(width=40, height=40))
    scene, cam = Scene(arm.client_id, cfg), Camera(arm.client_id, cfg.camera)
    n = 400
    xy = np.stack([rng.uniform(0.35, 0.70, n), rng.uniform(-0.08, 0.32, n)], axis=1)
    q = HOME + rng.uniform(-0.3, 0.3, (n, 6))
    images, positions = render_block_images(scene, cam, xy, arm=arm, joint_positions=q)
    net = VisuomotorNetwork((40, 40), 30, 6, conv_channels=(8, 8, 8), generator=torch.Generator().manual_seed(0))
    config = PosePretrainConfig(num_images=300, holdout=0, iterations=250, batch_size=32, learning_rate=1e-2)
    result = pretrain_vision(net, images[:300], positions[:300], config, torch.Generator().manual_seed(0), 'cpu')
    error = pose_errors(result.regressor, images[300:], positions[300:]).mean()
    baseline = np.linalg.norm(positions[300:] - positions[:300].mean(axis=0), axis=1).mean()
    assert baseline > 0.1 and error < baseline / 5, (error, baseline)
    assert set(result.vision_state) == set(net.vision.state_dict())
