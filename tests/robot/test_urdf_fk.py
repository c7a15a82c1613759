"""urdf/ur5e.urdf vs. Universal Robots' published UR5e parameters.

Oracle: the standard-DH product written out by hand below (no pinocchio, no PyBullet).
Convention under test (documented in the URDF): T_base_link_tool0(q) = Rz(pi) T_DH(q).
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pinocchio as pin
import pybullet as p
import pytest

# UR5e standard DH parameters (Universal Robots, "DH parameters for calculations of kinematics
# and dynamics")
DH_D = (0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996)
DH_A = (0.0, -0.425, -0.3922, 0.0, 0.0, 0.0)
DH_ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)
RZ_PI = np.diag([-1.0, -1.0, 1.0])  # base_link <- DH base
MASSES = {"base_link_inertia": 4.0, "shoulder_link": 3.761, "upper_arm_link": 8.058,
          "forearm_link": 2.846, "wrist_1_link": 1.37, "wrist_2_link": 1.3,
          "wrist_3_link": 0.365}
G = 9.81


def dh_fk(q: np.ndarray) -> np.ndarray:
    """4x4 pose of DH frame 6 in the DH base: prod_i Rz(theta_i) Tz(d_i) Tx(a_i) Rx(alpha_i)."""
    T = np.eye(4)
    for theta, d, a, alpha in zip(q, DH_D, DH_A, DH_ALPHA):
        ct, st, ca, sa = math.cos(theta), math.sin(theta), math.cos(alpha), math.sin(alpha)
        T = T @ np.array([[ct, -st * ca, st * sa, a * ct],
                          [st, ct * ca, -ct * sa, a * st],
                          [0.0, sa, ca, d],
                          [0.0, 0.0, 0.0, 1.0]])
    return T


def random_configurations(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.uniform(-2 * math.pi, 2 * math.pi, size=(n, 6))
    q[:, 2] = rng.uniform(-math.pi, math.pi, size=n)  # elbow is +-pi
    return q


def test_dh_oracle_hand_values_at_zero():
    # all joints at zero: arm stretched along -x of the DH base; tool at
    # (a2 + a3, -(d4 + d6), d1 - d5), z axis along -y
    T = dh_fk(np.zeros(6))
    np.testing.assert_allclose(T[:3, 3], [-0.8172, -0.2329, 0.0628], atol=1e-12)
    np.testing.assert_allclose(T[:3, 2], [0.0, -1.0, 0.0], atol=1e-12)


def test_tool0_matches_dh_in_pinocchio(ur5e_urdf, ur5e_joints):
    model = pin.buildModelFromUrdf(ur5e_urdf)
    data = model.createData()
    assert list(model.names)[1:] == list(ur5e_joints)  # pinocchio q order = chain order here
    tool0, base = model.getFrameId("tool0"), model.getFrameId("base")
    for q in random_configurations(25, seed=1):
        pin.framesForwardKinematics(model, data, q)
        T = dh_fk(q)
        # tool0 in base_link: Rz(pi) * T_DH
        np.testing.assert_allclose(data.oMf[tool0].translation, RZ_PI @ T[:3, 3], atol=1e-6)
        np.testing.assert_allclose(data.oMf[tool0].rotation, RZ_PI @ T[:3, :3], atol=1e-9)
        # tool0 in the `base` frame (the UR controller's frame) is the DH pose itself
        base_tool0 = data.oMf[base].inverse() * data.oMf[tool0]
        np.testing.assert_allclose(base_tool0.homogeneous, T, atol=1e-9)


def test_tool0_matches_dh_in_pybullet(ur5e_urdf, ur5e_joints):
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(ur5e_urdf, useFixedBase=True, physicsClientId=cid)
        index = {p.getJointInfo(body, j, physicsClientId=cid)[12].decode(): j  # child link name
                 for j in range(p.getNumJoints(body, physicsClientId=cid))}
        joint_index = {p.getJointInfo(body, j, physicsClientId=cid)[1].decode(): j
                       for j in range(p.getNumJoints(body, physicsClientId=cid))}
        for q in random_configurations(25, seed=2):
            for name, qj in zip(ur5e_joints, q):
                p.resetJointState(body, joint_index[name], qj, 0.0, physicsClientId=cid)
            state = p.getLinkState(body, index["tool0"], computeForwardKinematics=True,
                                   physicsClientId=cid)
            position, quaternion = np.array(state[4]), state[5]  # URDF link frame
            rotation = np.array(p.getMatrixFromQuaternion(quaternion)).reshape(3, 3)
            T = dh_fk(q)
            np.testing.assert_allclose(position, RZ_PI @ T[:3, 3], atol=1e-6)
            np.testing.assert_allclose(rotation, RZ_PI @ T[:3, :3], atol=1e-6)
    finally:
        p.disconnect(physicsClientId=cid)


def test_flange_x_points_out_of_tool0_z(ur5e_urdf):
    model = pin.buildModelFromUrdf(ur5e_urdf)
    data = model.createData()
    q = random_configurations(1, seed=3)[0]
    pin.framesForwardKinematics(model, data, q)
    flange, tool0 = data.oMf[model.getFrameId("flange")], data.oMf[model.getFrameId("tool0")]
    np.testing.assert_allclose(flange.translation, tool0.translation, atol=1e-12)
    np.testing.assert_allclose(flange.rotation[:, 0], tool0.rotation[:, 2], atol=1e-12)


def _urdf_root(path: str) -> ET.Element:
    return ET.parse(path).getroot()


def test_joint_names_types_and_limits(ur5e_urdf, ur5e_joints):
    root = _urdf_root(ur5e_urdf)
    movable = [j for j in root.iter("joint") if j.get("type") != "fixed"]
    assert [j.get("name") for j in movable] == list(ur5e_joints)
    efforts = (150.0, 150.0, 150.0, 28.0, 28.0, 28.0)
    for joint, effort in zip(movable, efforts):
        limit = joint.find("limit")
        assert joint.get("type") == "revolute"
        assert float(limit.get("effort")) == effort
        assert float(limit.get("velocity")) == pytest.approx(math.pi, abs=1e-12)
        bound = math.pi if joint.get("name") == "elbow_joint" else 2 * math.pi
        assert float(limit.get("lower")) == pytest.approx(-bound, abs=1e-12)
        assert float(limit.get("upper")) == pytest.approx(bound, abs=1e-12)


def test_links_as_ur_description(ur5e_urdf):
    links = {link.get("name") for link in _urdf_root(ur5e_urdf).iter("link")}
    assert {"base_link", "base", "shoulder_link", "upper_arm_link", "forearm_link",
            "wrist_1_link", "wrist_2_link", "wrist_3_link", "flange", "tool0"} <= links


def test_link_masses_and_valid_inertias(ur5e_urdf):
    model = pin.buildModelFromUrdf(ur5e_urdf)
    masses = {}
    for link in _urdf_root(ur5e_urdf).iter("link"):
        inertial = link.find("inertial")
        masses[link.get("name")] = 0.0 if inertial is None else float(
            inertial.find("mass").get("value"))
    for name, mass in MASSES.items():
        assert masses[name] == mass, name
    # pinocchio lumps fixed links into their joint's body; the total must be the UR5e's
    assert sum(inertia.mass for inertia in model.inertias) == pytest.approx(sum(MASSES.values()))
    for inertia in model.inertias[1:]:
        eig = np.linalg.eigvalsh(inertia.inertia)  # about the centre of mass
        assert np.all(eig > 0.0)
        assert eig[0] + eig[1] >= eig[2] - 1e-12  # triangle inequality of a physical body


def test_gravity_torques_match_hand_statics(ur5e_urdf):
    """Arm stretched horizontally (q = 0): static moments about the shoulder-lift and elbow axes
    from the masses and centre-of-mass distances along the arm (UR's data):
    upper arm 0.2125 m from the shoulder, forearm 0.1961 m from the elbow, wrists at
    |a2| + |a3| = 0.8172 m. Offsets along the joint axes contribute no moment."""
    model = pin.buildModelFromUrdf(ur5e_urdf)
    g = pin.computeGeneralizedGravity(model, model.createData(), np.zeros(6))
    wrists = MASSES["wrist_1_link"] + MASSES["wrist_2_link"] + MASSES["wrist_3_link"]
    shoulder = G * (MASSES["upper_arm_link"] * 0.2125
                    + MASSES["forearm_link"] * (0.425 + 0.1961) + wrists * 0.8172)
    elbow = G * (MASSES["forearm_link"] * 0.1961 + wrists * 0.3922)
    assert abs(g[1]) == pytest.approx(shoulder, rel=1e-9)
    assert abs(g[2]) == pytest.approx(elbow, rel=1e-9)
    np.testing.assert_allclose(g[[0, 3, 4, 5]], 0.0, atol=1e-9)  # vertical axis / balanced wrist
