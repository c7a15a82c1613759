"""Peg insertion pieces on the PyBullet UR5e.

- Geometry against hand-computed numbers: rays cast down hit the floor inside the hole, the rim on the
  walls and nothing outside; a free cylinder of the peg's size centred in the hole is `clearance` from
  the walls, touches them when moved sideways by the clearance.
- The success rule on hand-placed tips.
- The peg URDF: the peg is part of the arm's body (mass in PyBullet and pinocchio), and the state
  encoder's points on the plain arm URDF (peg_ee_points) are the simulated peg's tip.
- Physics at the experiments' control period and substeps (0.05 s, 20: 2.5 ms physics steps), the arm
  position-controlled by a joint PD at every physics step tracking IK of a straight descent of the tip:
  centred, the peg goes in and stops on the floor (no tunnelling, even when driven fast to 1 cm below
  it); 6 mm off centre (more than the 2 mm clearance) it stops on the rim.
"""
from __future__ import annotations

import numpy as np
import pinocchio as pin
import pybullet as p
import pytest

from gps_agent_ros.disturbance import link_index
from gps_agent_ros.peg_task import (HoleBlock, HoleBlockConfig, PegConfig, PegTask, block_boxes, inserted,
                                    peg_ee_points, tip_from_state, write_peg_urdf)
from gps_agent_ros.pybullet_arm import PyBulletArm
from gps_controllers.state_encoder import StateEncoder

TASK = PegTask(PegConfig(radius=0.01, length=0.08), HoleBlockConfig(clearance=0.002, depth=0.06, wall=0.02, floor=0.02))
RIM = np.array([0.5, 0.13, 0.25])
DOWN = p.getQuaternionFromEuler([np.pi, 0.0, -np.pi / 2])    # tool0 z pointing down (the reach configs' target_rpy)
HOME = np.array([0.0, -1.5707963, 1.5707963, -1.5707963, -1.5707963, 0.0])
KP = np.array([2000.0, 2000.0, 2000.0, 300.0, 300.0, 300.0])
KD = np.array([100.0, 100.0, 100.0, 15.0, 15.0, 15.0])


@pytest.fixture
def client():
    cid = p.connect(p.DIRECT)
    yield cid
    p.disconnect(cid)


@pytest.fixture(scope='module')
def peg_urdf(ur5e_urdf, tmp_path_factory):
    return write_peg_urdf(ur5e_urdf, TASK.peg, tmp_path_factory.mktemp('peg') / 'ur5e_peg.urdf')


def test_block_geometry_by_rays(client):
    block = HoleBlock(client, TASK, RIM)
    assert TASK.hole_half_width == pytest.approx(0.012)

    def hit_z(dx: float, dy: float = 0.0):
        start, end = RIM + [dx, dy, 0.2], RIM + [dx, dy, -0.2]
        body, _, frac, pos, _ = p.rayTest(start.tolist(), end.tolist(), physicsClientId=client)[0]
        return None if body != block.body_id else pos[2] - RIM[2]

    assert hit_z(0.0) == pytest.approx(-0.06, abs=2e-5)              # the floor's top, depth below the rim
    assert hit_z(0.0119, -0.0119) == pytest.approx(-0.06, abs=2e-5)  # still inside the 24 mm square
    assert hit_z(0.0121) == pytest.approx(0.0, abs=2e-5)             # the wall's top
    assert hit_z(0.0, 0.0315) == pytest.approx(0.0, abs=2e-5)        # outer edge at 12 + 20 mm
    assert hit_z(0.0325) is None and hit_z(0.0, -0.033) is None
    assert len(block_boxes(TASK)) == 5


def test_a_centred_peg_is_clearance_from_the_walls(client):
    block = HoleBlock(client, TASK, RIM)
    shape = p.createCollisionShape(p.GEOM_CYLINDER, radius=TASK.peg.radius, height=TASK.peg.length,
                                   physicsClientId=client)
    centre = RIM + [0.0, 0.0, -0.06 + TASK.peg.length / 2 + 0.005]  # 5 mm above the floor
    probe = p.createMultiBody(0.0, shape, basePosition=centre.tolist(), physicsClientId=client)

    def gap(dx: float) -> float:
        p.resetBasePositionAndOrientation(probe, (centre + [dx, 0.0, 0.0]).tolist(), (0, 0, 0, 1),
                                          physicsClientId=client)
        pts = p.getClosestPoints(probe, block.body_id, 0.01, physicsClientId=client)
        return min(c[8] for c in pts)

    assert gap(0.0) == pytest.approx(0.002, abs=2e-4)
    assert gap(0.0015) == pytest.approx(0.0005, abs=2e-4)
    assert gap(0.0025) < 0.0                                  # moved past the clearance: into the wall


def test_success_rule_on_hand_placed_tips():
    x, y, z = RIM
    tips = np.array([
        [x, y, z - 0.059],                  # on the floor, centred
        [x + 0.011, y - 0.011, z - 0.041],  # in a corner, 41 mm below the rim (> 40 = L/2)
        [x, y, z - 0.039],                  # inside, but only 39 mm deep
        [x, y, z + 0.01],                   # above the rim
        [x + 0.013, y, z - 0.05],           # beside the hole (in the wall)
        [x + 0.05, y, z - 0.05],            # outside the block, as deep as inside
        [x, y, z - 0.085],                  # below the block's bottom (through the floor)
    ])
    np.testing.assert_array_equal(inserted(tips, RIM, TASK), [True, True, False, False, False, False, False])
    assert inserted(tips.reshape(7, 1, 3), RIM, TASK).shape == (7, 1)
    with pytest.raises(ValueError, match='block.depth'):
        PegTask(PegConfig(length=0.1), HoleBlockConfig(depth=0.05))


def test_the_peg_is_part_of_the_arm_and_the_encoder_points_are_its_tip(ur5e_urdf, ur5e_joints, peg_urdf):
    base, with_peg = pin.buildModelFromUrdf(ur5e_urdf), pin.buildModelFromUrdf(peg_urdf)
    assert pin.computeTotalMass(with_peg) - pin.computeTotalMass(base) == pytest.approx(TASK.peg.mass)
    with PyBulletArm(peg_urdf, ur5e_joints, dt=0.05, substeps=20) as arm:
        cid, body = arm.client_id, arm.body_id
        peg = link_index(cid, body, 'peg')
        assert p.getDynamicsInfo(body, peg, physicsClientId=cid)[0] == pytest.approx(TASK.peg.mass)
        q = HOME + np.array([0.3, 0.2, -0.4, 0.5, 0.3, 1.0])
        arm.reset(q)
        com, orn = p.getLinkState(body, peg, computeForwardKinematics=True, physicsClientId=cid)[:2]
        axis = np.array(p.getMatrixFromQuaternion(orn)).reshape(3, 3)[:, 2]
        tip = np.array(com) + axis * TASK.peg.length / 2                     # the cylinder's far face
    encoder = StateEncoder(ur5e_urdf, list(ur5e_joints), 'tool0', peg_ee_points(TASK.peg))
    targets = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    x = encoder.encode(q, np.zeros(6), targets)
    np.testing.assert_allclose(tip_from_state(x[encoder.ee_slice], targets), tip, atol=1e-9)


def push(peg_urdf, joints, offset: float, end_below_rim: float, steps: int):
    """Teleport the tip 5 cm above the rim (offset in x), then descend in a straight line to
    end_below_rim over `steps` control steps and hold 20 more. Returns (final tip rel. rim, lowest tip
    z rel. rim over all physics steps, deepest penetration, floor normal force at the end)."""
    with PyBulletArm(peg_urdf, joints, dt=0.05, substeps=20, armature=0.1, damping=[5, 5, 5, 1, 1, 1]) as arm:
        cid, body = arm.client_id, arm.body_id
        block = HoleBlock(cid, TASK, RIM)
        tool, L = link_index(cid, body, 'tool0'), TASK.peg.length

        def tip() -> np.ndarray:
            s = p.getLinkState(body, tool, computeForwardKinematics=True, physicsClientId=cid)
            return np.array(s[4]) + np.array(p.getMatrixFromQuaternion(s[5])).reshape(3, 3)[:, 2] * L

        def ik(tip_pos: np.ndarray) -> np.ndarray:
            return np.array(p.calculateInverseKinematics(body, tool, list(tip_pos + [0.0, 0.0, L]), list(DOWN),
                                                         maxNumIterations=200, residualThreshold=1e-7,
                                                         physicsClientId=cid))

        start, goal = RIM + [offset, 0.0, 0.05], RIM + [offset, 0.0, -end_below_rim]
        arm.reset(HOME)
        for _ in range(5):
            arm.reset(ik(start))
        lowest, deepest = np.inf, 0.0
        for k in range(steps + 20):
            q_ref = ik(start + (goal - start) * min(1.0, (k + 1) / steps))
            for _ in range(arm.substeps):
                q, qd = arm.joint_state()
                arm.step(KP * (q_ref - q) - KD * qd, substeps=1)
                lowest = min(lowest, tip()[2] - RIM[2])
                contacts = p.getContactPoints(body, block.body_id, physicsClientId=cid)
                deepest = min([deepest] + [c[8] for c in contacts])
        floor_force = sum(c[9] for c in p.getContactPoints(body, block.body_id, physicsClientId=cid) if c[7][2] > 0.9)
        return tip() - RIM, lowest, deepest, floor_force


@pytest.mark.parametrize('steps', [40, 8], ids=['2 s descent', '0.4 s descent'])
def test_a_centred_peg_pushed_down_goes_in_and_stops_on_the_floor(peg_urdf, ur5e_joints, steps):
    tip, lowest, deepest, floor_force = push(peg_urdf, ur5e_joints, 0.0, 0.07, steps)   # aim 1 cm into the floor
    assert inserted(tip + RIM, RIM, TASK)
    assert tip[2] == pytest.approx(-0.06, abs=0.003)           # resting on the floor (tilting in the clearance)
    assert lowest > -0.06 - 0.002                              # never through the floor
    assert deepest > -0.002                                    # nor deeper than 2 mm into any face
    assert floor_force > 1.0                                   # the floor carries the push


def test_a_peg_off_centre_by_more_than_the_clearance_stops_on_the_rim(peg_urdf, ur5e_joints):
    tip, lowest, deepest, _ = push(peg_urdf, ur5e_joints, 0.006, 0.005, 40)
    assert not inserted(tip + RIM, RIM, TASK)
    assert -0.002 < tip[2] < 0.003 and lowest > -0.002         # on the wall's top
    assert deepest > -0.002
