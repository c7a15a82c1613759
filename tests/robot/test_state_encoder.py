"""StateEncoder vs. oracles: hand-computed forward kinematics, finite differences of the
end-effector points, and joint-order permutations (joints are mapped by name)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gps_controllers import StateEncoder

POINTS = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.05], [-0.05, 0.0, 0.05]])
RZ_PI = np.diag([-1.0, -1.0, 1.0])  # UR `base` frame <- base_link


@pytest.fixture(scope="module")
def encoder(ur5e_urdf, ur5e_joints) -> StateEncoder:
    return StateEncoder(ur5e_urdf, ur5e_joints, "tool0", POINTS)


def random_state(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(-math.pi, math.pi, 6), rng.uniform(-1.5, 1.5, 6)


def test_dimensions_and_slices(encoder):
    assert encoder.dX == 30 and encoder.n_points == 3
    assert (encoder.q_slice, encoder.qd_slice) == (slice(0, 6), slice(6, 12))
    assert (encoder.ee_slice, encoder.ee_vel_slice) == (slice(12, 21), slice(21, 30))


def test_points_at_zero_configuration_by_hand(encoder):
    # q = 0 (see test_urdf_fk): tool0 at (|a2|+|a3|, d4+d6, d1-d5) in base_link, with
    # x_tool = -x, y_tool = +z, z_tool = +y of base_link
    position = np.array([0.8172, 0.2329, 0.0628])
    rotation = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    expected = np.array([position, position + [-0.05, 0.05, 0.0], position + [0.05, 0.05, 0.0]])
    np.testing.assert_allclose(encoder.ee_points_world(np.zeros(6)), expected, atol=1e-12)
    t, R = encoder.ee_pose(np.zeros(6))
    np.testing.assert_allclose(t, position, atol=1e-12)
    np.testing.assert_allclose(R, rotation, atol=1e-12)


def test_encode_layout(encoder):
    rng = np.random.default_rng(0)
    q, qd = random_state(rng)
    targets = rng.normal(size=(3, 3))
    x = encoder.encode(q, qd, targets)
    assert x.shape == (30,)
    np.testing.assert_array_equal(x[0:6], q)
    np.testing.assert_array_equal(x[6:12], qd)
    np.testing.assert_allclose(x[12:21], (encoder.ee_points_world(q) - targets).ravel(),
                               atol=1e-14)
    # point-major layout: x[12:15] is point 0
    np.testing.assert_allclose(x[12:15], encoder.ee_points_world(q)[0] - targets[0], atol=1e-14)
    out = np.full(30, np.nan)
    assert encoder.encode(q, qd, targets, out=out) is out
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("base_link", [None, "base"])
def test_point_velocities_match_finite_differences(ur5e_urdf, ur5e_joints, base_link):
    enc = StateEncoder(ur5e_urdf, ur5e_joints, "tool0", POINTS, base_link=base_link)
    rng = np.random.default_rng(1)
    h = 1e-6
    for _ in range(10):
        q, qd = random_state(rng)
        x = enc.encode(q, qd, np.zeros((3, 3)))
        fd = (enc.ee_points_world(q + h * qd) - enc.ee_points_world(q - h * qd)) / (2 * h)
        np.testing.assert_allclose(x[enc.ee_vel_slice].reshape(3, 3), fd, atol=1e-7)
        assert np.abs(fd).max() > 0.05  # the check is not vacuous


def test_base_link_frame_is_rotated_by_pi(ur5e_urdf, ur5e_joints, encoder):
    enc_base = StateEncoder(ur5e_urdf, ur5e_joints, "tool0", POINTS, base_link="base")
    rng = np.random.default_rng(2)
    q, qd = random_state(rng)
    x_link = encoder.encode(q, qd, np.zeros((3, 3)))
    x_base = enc_base.encode(q, qd, np.zeros((3, 3)))
    np.testing.assert_allclose(x_base[12:21].reshape(3, 3), x_link[12:21].reshape(3, 3) @ RZ_PI,
                               atol=1e-12)
    np.testing.assert_allclose(x_base[21:30].reshape(3, 3), x_link[21:30].reshape(3, 3) @ RZ_PI,
                               atol=1e-12)


def test_joint_order_is_by_name(ur5e_urdf, ur5e_joints, encoder):
    perm = np.array([3, 0, 5, 1, 4, 2])
    permuted = StateEncoder(ur5e_urdf, [ur5e_joints[i] for i in perm], "tool0", POINTS)
    rng = np.random.default_rng(3)
    q, qd = random_state(rng)
    targets = rng.normal(size=(3, 3))
    x = encoder.encode(q, qd, targets)
    xp = permuted.encode(q[perm], qd[perm], targets)
    np.testing.assert_array_equal(xp[:6], q[perm])
    np.testing.assert_allclose(xp[12:], x[12:], atol=1e-12)
    np.testing.assert_array_equal(permuted.effort_limits, encoder.effort_limits[perm])
    # and the encoder does notice the order: the unpermuted vector gives other points
    assert np.abs(permuted.encode(q, qd, targets)[12:21] - x[12:21]).max() > 1e-3


def test_limits_from_urdf(encoder):
    np.testing.assert_array_equal(encoder.effort_limits, [150, 150, 150, 28, 28, 28])
    np.testing.assert_allclose(encoder.velocity_limits, np.full(6, math.pi))
    bounds = np.array([2, 2, 1, 2, 2, 2]) * math.pi
    np.testing.assert_allclose(encoder.position_limits, np.stack([-bounds, bounds], axis=1))


def test_targets_from_pose_matches_points_at_that_pose(encoder):
    rng = np.random.default_rng(4)
    q, _ = random_state(rng)
    position, rotation = encoder.ee_pose(q)
    np.testing.assert_allclose(encoder.targets_from_pose(position, rotation),
                               encoder.ee_points_world(q), atol=1e-12)
    # hand case: 90 degrees about z maps offset (a, 0, c) to (0, a, c)
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(encoder.targets_from_pose([1.0, 2.0, 3.0], rz90),
                               [[1, 2, 3], [1, 2.05, 3.05], [1, 1.95, 3.05]], atol=1e-12)


PLANAR_URDF = """<?xml version="1.0"?>
<robot name="planar">
  <link name="base"/>
  <link name="l1"><inertial><mass value="1"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial></link>
  <link name="l2"><inertial><mass value="1"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial></link>
  <link name="tip"/>
  <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="10" velocity="2"/></joint>
  <joint name="j2" type="continuous"><parent link="l1"/><child link="l2"/>
    <origin xyz="0.5 0 0"/><axis xyz="0 0 1"/><limit effort="5" velocity="3"/></joint>
  <joint name="tip_joint" type="fixed"><parent link="l2"/><child link="tip"/>
    <origin xyz="0.3 0 0"/></joint>
</robot>
"""


def test_planar_two_link_with_continuous_joint_by_hand(tmp_path):
    path = tmp_path / "planar.urdf"
    path.write_text(PLANAR_URDF)
    # joints given in reverse URDF order; j2 is continuous (pinocchio stores cos, sin)
    enc = StateEncoder(path, ["j2", "j1"], "tip", [[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]])
    q2, q1, qd2, qd1 = 0.7, -0.4, 0.3, -1.1
    c1, s1, c12, s12 = math.cos(q1), math.sin(q1), math.cos(q1 + q2), math.sin(q1 + q2)
    tip = np.array([0.5 * c1 + 0.3 * c12, 0.5 * s1 + 0.3 * s12, 0.0])
    tip_vel = np.array([-0.5 * s1 * qd1 - 0.3 * s12 * (qd1 + qd2),
                        0.5 * c1 * qd1 + 0.3 * c12 * (qd1 + qd2), 0.0])
    arm = 0.1 * np.array([-s12, c12, 0.0])  # second point: 0.1 along the tip's y axis
    arm_vel = 0.1 * (qd1 + qd2) * np.array([-c12, -s12, 0.0])
    x = enc.encode([q2, q1], [qd2, qd1], np.zeros((2, 3)))
    assert enc.dX == 2 * 2 + 6 * 2
    np.testing.assert_allclose(x[enc.ee_slice], np.concatenate([tip, tip + arm]), atol=1e-12)
    np.testing.assert_allclose(x[enc.ee_vel_slice], np.concatenate([tip_vel, tip_vel + arm_vel]),
                               atol=1e-12)
    np.testing.assert_array_equal(enc.effort_limits, [5, 10])
    np.testing.assert_array_equal(enc.position_limits, [[-np.inf, np.inf], [-3, 3]])


def test_unknown_names_are_reported_with_what_the_urdf_has(ur5e_urdf, ur5e_joints):
    with pytest.raises(ValueError, match="shoulder_pan_joint") as err:
        StateEncoder(ur5e_urdf, ["shoulder_pan", *ur5e_joints[1:]], "tool0", POINTS)
    assert "shoulder_pan'" in str(err.value)
    with pytest.raises(ValueError, match="not in the URDF"):  # fixed joints are not joints
        StateEncoder(ur5e_urdf, ["flange-tool0"], "tool0", POINTS)
    with pytest.raises(ValueError, match="tool0"):
        StateEncoder(ur5e_urdf, ur5e_joints, "tool_0", POINTS)
    with pytest.raises(ValueError, match="ee_link"):
        StateEncoder(ur5e_urdf, ur5e_joints, "elbow_joint", POINTS)  # a joint, not a link
    with pytest.raises(ValueError, match="duplicates"):
        StateEncoder(ur5e_urdf, [*ur5e_joints, "elbow_joint"], "tool0", POINTS)
    with pytest.raises(ValueError, match="fixed to the URDF root"):
        StateEncoder(ur5e_urdf, ur5e_joints, "tool0", POINTS, base_link="forearm_link")
    with pytest.raises(ValueError, match="ee_points"):
        StateEncoder(ur5e_urdf, ur5e_joints, "tool0", POINTS[:, :2])
    with pytest.raises(ValueError, match="nonexistent"):
        StateEncoder("/nonexistent/robot.urdf", ur5e_joints, "tool0", POINTS)


def test_bad_inputs_raise(encoder):
    q, qd, targets = np.zeros(6), np.zeros(6), np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"q must have shape \(6,\)"):
        encoder.encode(np.zeros(5), qd, targets)
    with pytest.raises(ValueError, match="qd has non-finite"):
        encoder.encode(q, np.array([0, 0, np.nan, 0, 0, 0]), targets)
    with pytest.raises(ValueError, match="targets"):
        encoder.encode(q, qd, np.zeros(9))
    with pytest.raises(ValueError, match="targets has non-finite"):
        encoder.encode(q, qd, np.full((3, 3), np.inf))
    with pytest.raises(ValueError, match="out"):
        encoder.encode(q, qd, targets, out=np.zeros(29))
    with pytest.raises(ValueError, match="q has non-finite"):
        encoder.ee_points_world(np.full(6, np.nan))
    with pytest.raises(ValueError, match="rotation"):
        encoder.targets_from_pose(np.zeros(3), 2 * np.eye(3))
    with pytest.raises(ValueError, match="rotation"):
        encoder.targets_from_pose(np.zeros(3), np.diag([1.0, 1.0, -1.0]))  # a reflection
