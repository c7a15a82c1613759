"""Movable joints that are not controlled (the Panda's fingers): they do not block armature or
damping on the controlled joints, and every reset puts them back where they started."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pinocchio as pin
import pybullet as p
import pybullet_data
import pytest

from gps_agent_ros.pybullet_arm import PyBulletArm
from gps_agent_ros.sim_arm import CommandKind, SimArm, SimArmConfig

PANDA = str(Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf')
ARM = tuple(f'panda_joint{i}' for i in range(1, 8))
FINGERS = ('panda_finger_joint1', 'panda_finger_joint2')
Q0 = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def index(client: int, body: int, name: str) -> int:
    names = [p.getJointInfo(body, j, physicsClientId=client)[1].decode()
             for j in range(p.getNumJoints(body, physicsClientId=client))]
    return names.index(name)


def fingers(client: int, body: int) -> np.ndarray:
    """[2, 2] (position, velocity) of each finger."""
    return np.array([p.getJointState(body, index(client, body, f), physicsClientId=client)[:2] for f in FINGERS])


def open_fingers(client: int, body: int) -> None:
    for f in FINGERS:
        p.resetJointState(body, index(client, body, f), 0.03, 0.05, physicsClientId=client)


def test_reset_puts_the_fingers_back_and_trials_replay_exactly():
    torques = np.random.default_rng(0).uniform(-1, 1, size=(60, 7)) * [30, 30, 30, 30, 5, 5, 5]
    with PyBulletArm(PANDA, ARM, dt=0.05, substeps=20, armature=0.1, damping=2.0) as arm:
        cid, body = arm.client_id, arm.body_id
        start = fingers(cid, body)
        runs = []
        for _ in range(2):
            arm.reset(Q0)
            np.testing.assert_array_equal(fingers(cid, body), start)
            runs.append(np.array([np.concatenate((arm.step(u), *arm.joint_state())[1:]) for u in torques]))
            open_fingers(cid, body)          # e.g. a grasp, or drift: the next reset must undo it
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(start, np.zeros((2, 2)))


def test_sim_arm_reset_puts_the_fingers_back():
    """The node graph's simulator resets through the same arm."""
    sim = SimArm(SimArmConfig(PANDA, ARM, period=0.05, substeps=20, armature=0.1, damping=2.0))
    try:
        cid, body = sim._arm.client_id, sim._arm.body_id
        open_fingers(cid, body)
        sim.set_command(CommandKind.EFFORT, np.ones(7))
        sim.step()
        sim.reset(ARM, Q0)
        np.testing.assert_array_equal(fingers(cid, body), np.zeros((2, 2)))
        np.testing.assert_allclose(sim.joint_state()[0], Q0)
    finally:
        sim.close()


def test_armature_applies_to_the_controlled_joints_while_the_fingers_are_held():
    model = pin.buildModelFromUrdf(PANDA)
    data = model.createData()
    v = [model.joints[model.getJointId(n)].idx_v for n in ARM]
    q = pin.neutral(model)
    for n, qj in zip(ARM, Q0):
        q[model.joints[model.getJointId(n)].idx_q] = qj
    armature = np.array([0.3, 0.3, 0.3, 0.3, 0.1, 0.1, 0.1])
    tau = np.array([8.0, -8.0, 4.0, 6.0, 1.0, -1.0, 1.0])
    M = pin.crba(model, data, q)[np.ix_(v, v)]
    M = np.triu(M) + np.triu(M, 1).T
    qdd = np.linalg.solve(M + np.diag(armature), tau)
    assert np.abs(qdd - np.linalg.solve(M, tau)).max() > 0.5 * np.abs(qdd).max()   # armature matters here
    with PyBulletArm(PANDA, ARM, dt=0.005, substeps=5, armature=armature) as arm:
        arm.reset(Q0)
        arm.step(tau)
        _, qd = arm.joint_state()
        held = fingers(arm.client_id, arm.body_id)
    np.testing.assert_allclose(qd, qdd * 0.005, rtol=0.02, atol=1e-4)
    assert np.abs(held).max() < 1e-4          # the fingers' motors hold them (free, they would slide)


@pytest.mark.parametrize('kw', [dict(armature=0.1), dict(damping=1.0)])
def test_a_held_arm_joint_does_not_block_armature_or_damping(ur5e_urdf, ur5e_joints, kw):
    """UR5e with wrist_3 left out: it is held still while the other five move."""
    with PyBulletArm(ur5e_urdf, ur5e_joints[:5], dt=0.05, **kw) as arm:
        arm.reset([0.3, -1.2, 1.4, -1.0, -1.3])
        wrist_3 = index(arm.client_id, arm.body_id, 'wrist_3_joint')
        for _ in range(10):
            arm.step([5.0, -5.0, 2.0, 1.0, 1.0])
        q, _ = arm.joint_state()
        held = p.getJointState(arm.body_id, wrist_3, physicsClientId=arm.client_id)[:2]
    assert np.abs(q - [0.3, -1.2, 1.4, -1.0, -1.3]).max() > 0.05
    assert abs(held[0]) < 1e-3 and abs(held[1]) < 1e-3
