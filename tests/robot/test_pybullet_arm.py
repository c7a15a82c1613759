"""PyBulletArm vs. oracles: pinocchio's rigid-body dynamics (M(q), g(q)) read from the same
URDF, hand statics (the arm must fall / hold), exact reset and clipping behaviour."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pinocchio as pin
import pybullet as p
import pytest

from gps_agent_ros.pybullet_arm import PyBulletArm

Q0 = np.array([0.3, -1.2, 1.4, -1.0, -1.3, 0.4])  # generic pose, gravity loads every big joint


@pytest.fixture(scope="module")
def model(ur5e_urdf) -> tuple[pin.Model, pin.Data]:
    m = pin.buildModelFromUrdf(ur5e_urdf)
    return m, m.createData()


def pybullet_index(arm: PyBulletArm, name: str, field: int) -> int:
    """PyBullet joint index by joint name (field 1) or child link name (field 12)."""
    names = [p.getJointInfo(arm.body_id, j, physicsClientId=arm.client_id)[field].decode()
             for j in range(p.getNumJoints(arm.body_id, physicsClientId=arm.client_id))]
    return names.index(name)


def tool0_height(arm: PyBulletArm) -> float:
    state = p.getLinkState(arm.body_id, pybullet_index(arm, "tool0", 12),
                           computeForwardKinematics=True, physicsClientId=arm.client_id)
    return state[4][2]


def rollout(arm: PyBulletArm, torques: np.ndarray) -> np.ndarray:
    """[T, 2, nj] joint states after each of the T torque commands [T, nj]."""
    return np.array([(arm.step(u), *arm.joint_state())[1:] for u in torques])


def test_module_does_not_import_rclpy():
    code = ("import sys, gps_agent_ros.pybullet_arm\n"
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'std_msgs')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # what this run can import
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == ""


def test_dynamics_match_pinocchio(ur5e_urdf, ur5e_joints, model):
    """URDF inertias are used as written (not recomputed from collision shapes)."""
    m, d = model
    with PyBulletArm(ur5e_urdf, ur5e_joints) as arm:
        mass = p.calculateMassMatrix(arm.body_id, Q0.tolist(), physicsClientId=arm.client_id)
        gravity = p.calculateInverseDynamics(arm.body_id, Q0.tolist(), [0.0] * 6, [0.0] * 6,
                                             physicsClientId=arm.client_id)
    np.testing.assert_allclose(np.array(mass), pin.crba(m, d, Q0), atol=1e-9)
    np.testing.assert_allclose(gravity, pin.computeGeneralizedGravity(m, d, Q0), atol=1e-9)


def test_gravity_compensated_arm_holds_still(ur5e_urdf, ur5e_joints):
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.05) as arm:
        arm.reset(Q0)
        for _ in range(40):  # 2 s
            arm.step(np.zeros(6))
        q, qd = arm.joint_state()
    np.testing.assert_allclose(q, Q0, atol=1e-3)
    np.testing.assert_allclose(qd, 0.0, atol=1e-3)


def test_uncompensated_arm_falls(ur5e_urdf, ur5e_joints, model):
    m, d = model
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.01, gravity_compensation=False) as arm:
        arm.reset(Q0)
        height0 = tool0_height(arm)
        arm.step(np.zeros(6))
        _, qd = arm.joint_state()
        # from rest: M qdd = -g(q)  =>  qd(10 ms) ~ -M^-1 g * 0.01
        qdd = -np.linalg.solve(pin.crba(m, d, Q0), pin.computeGeneralizedGravity(m, d, Q0))
        np.testing.assert_allclose(qd, qdd * 0.01, rtol=0.03, atol=2e-3)
        for _ in range(29):
            arm.step(np.zeros(6))
        assert tool0_height(arm) < height0 - 0.1  # fell more than 10 cm in 0.3 s


@pytest.mark.parametrize("joint, torque", [(1, 10.0), (0, -8.0), (4, 0.5)])
def test_constant_torque_accelerates_as_m_inverse_tau(ur5e_urdf, ur5e_joints, model, joint,
                                                      torque):
    m, d = model
    tau = np.zeros(6)
    tau[joint] = torque
    qdd = np.linalg.solve(pin.crba(m, d, Q0), tau)  # gravity is compensated
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.01) as arm:
        arm.reset(Q0)
        arm.step(tau)
        q, qd = arm.joint_state()
        np.testing.assert_allclose(qd, qdd * 0.01, rtol=0.03, atol=1e-3 * abs(qdd[joint]))
        # semi-implicit Euler over N substeps of h: q moves a h^2 N(N+1)/2 = a t^2/2 (1 + 1/N)
        n = arm.substeps
        np.testing.assert_allclose(q - Q0, 0.5 * qdd * 0.01 ** 2 * (1 + 1 / n), rtol=0.03,
                                   atol=1e-3 * abs(qdd[joint]) * 1e-4)
        for _ in range(19):
            arm.step(tau)
        q, qd = arm.joint_state()
    assert np.sign(q[joint] - Q0[joint]) == np.sign(torque)
    assert np.sign(qd[joint]) == np.sign(torque)


def test_reset_restores_pose_and_replays_exactly(ur5e_urdf, ur5e_joints):
    torques = np.random.default_rng(0).uniform(-20, 20, size=(20, 6))
    with PyBulletArm(ur5e_urdf, ur5e_joints) as arm:
        arm.reset(Q0)
        first = rollout(arm, torques)
        assert np.abs(first[-1, 0] - Q0).max() > 0.05  # it did move
        arm.reset(Q0)
        q, qd = arm.joint_state()
        np.testing.assert_array_equal(q, Q0)
        np.testing.assert_array_equal(qd, np.zeros(6))
        second = rollout(arm, torques)
    np.testing.assert_array_equal(first, second)


def test_joint_order_is_by_name(ur5e_urdf, ur5e_joints):
    perm = [2, 5, 0, 3, 1, 4]
    torques = np.random.default_rng(1).uniform(-10, 10, size=(5, 6))
    with PyBulletArm(ur5e_urdf, ur5e_joints) as arm:
        arm.reset(Q0)
        ordered = rollout(arm, torques)
    with PyBulletArm(ur5e_urdf, [ur5e_joints[i] for i in perm]) as arm:
        arm.reset(Q0[perm])
        permuted = rollout(arm, torques[:, perm])
        np.testing.assert_array_equal(arm.effort_limits, np.array([150, 150, 150, 28, 28, 28])[perm])
    np.testing.assert_allclose(permuted, ordered[:, :, perm], atol=1e-12)


def test_torques_are_clipped_to_effort_limits(ur5e_urdf, ur5e_joints):
    limits = np.array([150.0, 150.0, 150.0, 28.0, 28.0, 28.0])
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.01) as arm:
        np.testing.assert_array_equal(arm.effort_limits, limits)
        runs = {}
        for label, scale in (("limit", 1.0), ("huge", 100.0), ("below", 0.9)):
            arm.reset(Q0)
            runs[label] = rollout(arm, np.tile(scale * limits * [1, -1, 1, -1, 1, -1], (3, 1)))
    np.testing.assert_array_equal(runs["huge"], runs["limit"])
    assert np.abs(runs["below"] - runs["limit"]).max() > 1e-3  # the limit is not lower


def test_non_finite_or_misshaped_torque_rejected_and_nothing_applied(ur5e_urdf, ur5e_joints):
    with PyBulletArm(ur5e_urdf, ur5e_joints) as arm:
        arm.reset(Q0)
        arm.step(np.full(6, 5.0))
        before = arm.joint_state()
        for bad in ([np.nan, 0, 0, 0, 0, 0], [0, 0, np.inf, 0, 0, 0], np.zeros(5)):
            with pytest.raises(ValueError, match="torques"):
                arm.step(np.array(bad, dtype=float))
        after = arm.joint_state()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_construction_and_reset_errors(ur5e_urdf, ur5e_joints):
    with pytest.raises(ValueError, match="shoulder_pan_joint"):
        PyBulletArm(ur5e_urdf, ["shoulder_pan", *ur5e_joints[1:]])
    with pytest.raises(ValueError, match="dt"):
        PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.0)
    with pytest.raises(ValueError, match="substeps"):
        PyBulletArm(ur5e_urdf, ur5e_joints, substeps=0)
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.02) as arm:
        assert arm.joint_names == tuple(ur5e_joints)
        assert arm.dt == 0.02 and arm.substeps == 20
        with pytest.raises(ValueError, match="elbow_joint"):
            arm.reset([0, 0, 4.0, 0, 0, 0])  # elbow limit is +-pi
        with pytest.raises(ValueError, match="q0"):
            arm.reset([0, 0, np.nan, 0, 0, 0])


ARMATURE = np.array([0.4, 0.4, 0.4, 0.1, 0.1, 0.1])
DAMPING = np.array([5.0, 5.0, 5.0, 1.0, 1.0, 1.0])


def test_armature_adds_to_the_inertia_diagonal(ur5e_urdf, ur5e_joints, model):
    m, d = model
    tau = np.array([10.0, -10.0, 5.0, 2.0, -2.0, 1.0])
    qdd = np.linalg.solve(pin.crba(m, d, Q0) + np.diag(ARMATURE), tau)
    qdd_bare = np.linalg.solve(pin.crba(m, d, Q0), tau)
    assert np.abs(qdd - qdd_bare).max() > 10 * np.abs(qdd).max()  # armature matters here
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.01, armature=ARMATURE) as arm:
        arm.reset(Q0)
        arm.step(tau)
        _, qd = arm.joint_state()
    np.testing.assert_allclose(qd, qdd * 0.01, rtol=0.02, atol=1e-4)


def test_damping_decelerates_as_viscous_friction(ur5e_urdf, ur5e_joints, model):
    m, d = model
    qd0 = np.array([0.5, -0.4, 0.6, 1.0, -1.0, 1.5])
    # zero command, gravity compensated: (M + A) qdd = -c(q, qd) - D qd
    coriolis = pin.rnea(m, d, Q0, qd0, np.zeros(6)) - pin.computeGeneralizedGravity(m, d, Q0)
    qdd = np.linalg.solve(pin.crba(m, d, Q0) + np.diag(ARMATURE), -coriolis - DAMPING * qd0)
    with PyBulletArm(ur5e_urdf, ur5e_joints, dt=0.005, armature=ARMATURE,
                     damping=DAMPING) as arm:
        arm.reset(Q0)
        for name, q, v in zip(ur5e_joints, Q0, qd0):  # give the arm an initial velocity
            p.resetJointState(arm.body_id, pybullet_index(arm, name, 1), q, v,
                              physicsClientId=arm.client_id)
        arm.step(np.zeros(6))
        _, qd = arm.joint_state()
    np.testing.assert_allclose(qd - qd0, qdd * 0.005, rtol=0.05, atol=1e-4)
    assert np.all(np.abs(qd) < np.abs(qd0))  # every joint slowed down


def test_armature_and_damping_validation(ur5e_urdf, ur5e_joints):
    with pytest.raises(ValueError, match="armature"):
        PyBulletArm(ur5e_urdf, ur5e_joints, armature=[0.1, 0.1])
    with pytest.raises(ValueError, match="damping"):
        PyBulletArm(ur5e_urdf, ur5e_joints, damping=-1.0)


def test_random_torques_stay_bounded_with_armature_and_damping(ur5e_urdf, ur5e_joints):
    """The reach experiment's regime: dt = 0.05, T = 100, +-20 N m big joints, +-5 N m wrists."""
    torques = np.random.default_rng(0).uniform(-1, 1, size=(100, 6)) * [20, 20, 20, 5, 5, 5]
    home = np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
    with PyBulletArm(ur5e_urdf, ur5e_joints, armature=0.1, damping=DAMPING) as arm:
        arm.reset(home)
        states = rollout(arm, torques)
    assert np.all(np.isfinite(states))
    assert np.abs(states[:, 1]).max() < 6.0  # rad/s; steady state |tau|/D <= 5
    assert np.abs(states[:, 0] - home).max() < 3.0
