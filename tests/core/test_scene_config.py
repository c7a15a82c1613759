"""Scene settings: strict construction from YAML data, value checks, and the pinhole camera's
intrinsics and projection against hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gps_core.scene_config import BlockConfig, CameraConfig, SceneConfig, SceneConfigError, TableConfig


def test_from_dict_builds_nested_settings():
    cfg = SceneConfig.from_dict({'block': {'rgba': [0.0, 0.0, 1.0, 1.0]}, 'distractor': {'rgba': [0, 1, 0, 1]},
                                 'camera': {'width': 80, 'height': 64, 'fov_deg': 60}})
    assert cfg.block.rgba == (0.0, 0.0, 1.0, 1.0) and cfg.distractor.rgba == (0.0, 1.0, 0.0, 1.0)
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.fov_deg) == (80, 64, 60.0)
    assert cfg.table == TableConfig() and SceneConfig.from_dict({'distractor': None}).distractor is None


@pytest.mark.parametrize('data, match', [
    ({'camra': {}}, r"unknown key\(s\) \['camra'\] in SceneConfig"),
    ({'camera': {'fovdeg': 40}}, r"scene.camera: unknown key\(s\) \['fovdeg'\] in CameraConfig"),
    ({'table': {'size_xy': [1.0, -1.0]}}, r'table.size_xy must be 2 positive'),
    ({'block': {'rgba': [1.0, 0.0, 0.0, 1.5]}}, r'block.rgba must be RGBA values in \[0, 1\]'),
    ({'camera': {'fx': 50.0, 'fy': 50.0, 'cx': 31.5, 'cy': 31.5}}, 'either fov_deg or fx'),
    ({'camera': {'fov_deg': None, 'fx': 50.0}}, 'all of fx, fy, cx, cy'),
    ({'camera': {'position': [0, 0, 1], 'look_at': [0, 0, 0]}}, 'must not be parallel'),
    ({'camera': {'width': 4}}, r'camera.width must be an integer number of pixels in \[8, 4096\]'),
    ({'camera': {'near': 2.0, 'far': 1.0}}, 'near < far'),
    ({'distractor': {}}, 'must differ in colour'),
])
def test_bad_settings_are_rejected_by_name(data, match):
    with pytest.raises(SceneConfigError, match=match):
        SceneConfig.from_dict(data)


def test_the_experiment_loader_builds_the_same_settings():
    """gps_core.config.build (the experiment schema's builder) reads these dataclasses too."""
    from gps_core.config import ConfigError, build
    data = {'distractor': {'rgba': [0.1, 0.7, 0.2, 1.0]}, 'camera': {'width': 48, 'height': 40}}
    assert build(SceneConfig, data, 'test.yaml: scene') == SceneConfig.from_dict(data)
    with pytest.raises(ConfigError, match='colur'):
        build(SceneConfig, {'block': {'colur': [1, 0, 0, 1]}}, 'test.yaml: scene')


def test_intrinsics_from_field_of_view():
    """90 degrees vertical over 64 rows: f = 32 / tan(45 deg) = 32; principal point at the centre
    of the 64x48 pixel grid, (63/2, 47/2) with (0, 0) the centre of the top-left pixel."""
    cam = CameraConfig(width=64, height=64, fov_deg=90.0)
    np.testing.assert_allclose(cam.K(), [[32, 0, 31.5], [0, 32, 31.5], [0, 0, 1]], atol=1e-12)
    cam = CameraConfig(width=64, height=48, fov_deg=60.0)
    f = 24 / math.tan(math.radians(30))
    np.testing.assert_allclose(cam.K(), [[f, 0, 31.5], [0, f, 23.5], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(cam.P(), np.hstack([cam.K(), np.zeros((3, 1))]))


def test_projection_by_hand():
    """Camera 1 m above the origin looking straight down (+y of the base frame is 'up' in the
    image): optical x = +x base, y = -y base, z = -z base."""
    cam = CameraConfig(width=101, height=81, position=(0, 0, 1), look_at=(0, 0, 0), up=(0, 1, 0),
                       fov_deg=None, fx=100.0, fy=120.0, cx=40.0, cy=30.0)
    R, t = cam.optical_pose()
    np.testing.assert_allclose(R, [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    np.testing.assert_allclose(t, [0, 0, 1])
    # (0.1, 0.2, 0): optical (0.1, -0.2, 1) -> u = 100 * 0.1 + 40 = 50, v = 120 * -0.2 + 30 = 6
    # (0, 0, 0.5):   on the axis, half as far -> the principal point
    np.testing.assert_allclose(cam.project(np.array([[0.1, 0.2, 0.0], [0.0, 0.0, 0.5]])), [[50, 6], [40, 30]],
                               atol=1e-12)


def test_blocks_rest_on_the_table():
    cfg = SceneConfig(table=TableConfig(top_z=0.1), block=BlockConfig(half_extents=(0.02, 0.03, 0.04)))
    np.testing.assert_allclose(cfg.block_center((0.5, 0.1)), [0.5, 0.1, 0.14])
    assert cfg.on_table((0.5, 0.1)) and not cfg.on_table((2.0, 0.1))
