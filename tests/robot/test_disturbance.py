"""Impulse disturbances on the PyBullet UR5e.

Oracle: pinocchio's rigid-body model of the same URDF. From rest, under gravity compensation and zero
commanded torque, the arm stays still; a wrench W held for a short time dt changes the joint momentum
by the generalized impulse, M(q) dqd = J(q)^T W dt, with J the Jacobian of the point the force acts at
(the link's centre of mass, from PyBullet, with pinocchio's frame Jacobian shifted to it) or the link's
angular Jacobian for a torque. The pushes are sized for 0.15-0.5 rad/s, where the velocity-squared terms
over the 20 ms are negligible (measured: agreement to 0.1-0.2% of the largest component; the test allows
1%). Without armature the wrists are light: 20 N at tool0 would spin wrist_2 at ~7 rad/s.

With armature A (PyBulletArm's rotor-inertia emulation, which shapes the joint torques PyBullet is given)
the same push must change the velocity by (M(q) + A)^-1 J^T W dt: the rotors resist the push as they
resist a joint torque (pinocchio's M plus A on the diagonal is the oracle).
"""
from __future__ import annotations

import numpy as np
import pinocchio as pin
import pybullet as p
import pytest

from gps_agent_ros.disturbance import (DisturbanceConfig, DisturbanceHook, DisturbancePlan, Impulse, draw_plan,
                                       link_index, step_arm)
from gps_agent_ros.pybullet_arm import PyBulletArm

DT, SUBSTEPS = 0.05, 20                      # the experiments' control period and substeps
H = DT / SUBSTEPS
Q0 = np.array([0.0, -1.2, 1.5, -1.9, -1.57, 0.3])


@pytest.fixture
def make_arm(ur5e_urdf, ur5e_joints):
    arms = []

    def make() -> PyBulletArm:
        arm = PyBulletArm(ur5e_urdf, ur5e_joints, dt=DT, substeps=SUBSTEPS)
        arm.reset(Q0)
        arms.append(arm)
        return arm
    yield make
    for arm in arms:
        arm.close()


def one_impulse(link: str, kind: str, vector, start: int = 50, n: int = 8) -> DisturbancePlan:
    return DisturbancePlan(link, kind, H, (Impulse(start, n, tuple(vector)),))


def run(arm: PyBulletArm, plan: DisturbancePlan | None, steps: int = 6) -> np.ndarray:
    """[steps + 1, 12] (q, qd) at every control step, zero torque commanded."""
    hook = None if plan is None else DisturbanceHook(arm, plan)
    out = [np.concatenate(arm.joint_state())]
    for _ in range(steps):
        step_arm(arm, np.zeros(6), SUBSTEPS, hook)
        out.append(np.concatenate(arm.joint_state()))
    return np.array(out)


def generalized_impulse(urdf: str, joints, q: np.ndarray, link: str, kind: str, point: np.ndarray,
                        momentum: np.ndarray, armature: float = 0.0) -> np.ndarray:
    """(M(q) + armature I)^-1 J(q)^T (wrench impulse) by pinocchio, in `joints` order."""
    model = pin.buildModelFromUrdf(urdf)
    data = model.createData()
    qp = pin.neutral(model)
    idx = [model.joints[model.getJointId(n)].idx_q for n in joints]
    qp[idx] = q
    M = pin.crba(model, data, qp)
    M = 0.5 * (M + M.T)
    pin.computeJointJacobians(model, data, qp)
    pin.updateFramePlacements(model, data)
    fid = model.getFrameId(link)
    J = pin.getFrameJacobian(model, data, fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
    if kind == 'force':
        r = point - data.oMf[fid].translation
        Jp = J[:3] - pin.skew(r) @ J[3:]
        tau = Jp.T @ momentum
    else:
        tau = J[3:].T @ momentum
    vidx = [model.joints[model.getJointId(n)].idx_v for n in joints]
    M[vidx, vidx] += armature
    dqd = np.linalg.solve(M, tau)
    return dqd[vidx]


@pytest.mark.parametrize('link, kind, vector', [('tool0', 'force', (0.6, -0.4, 0.75)),
                                                ('forearm_link', 'force', (0.0, 30.0, -10.0)),
                                                ('wrist_2_link', 'torque', (0.05, -0.08, 0.02))])
def test_an_impulse_changes_the_velocity_by_the_generalized_impulse(make_arm, ur5e_urdf, ur5e_joints,
                                                                     link, kind, vector):
    arm = make_arm()
    start, n = 50, 8
    plan = one_impulse(link, kind, vector, start, n)
    hook = DisturbanceHook(arm, plan)
    for _ in range(start):
        hook.before_substep()
        arm.step(np.zeros(6), substeps=1)
    q, qd = arm.joint_state()
    assert np.abs(qd).max() < 1e-9                 # still at rest before the impulse
    cid, body = arm.client_id, arm.body_id
    point = np.array(p.getLinkState(body, link_index(cid, body, link), physicsClientId=cid)[0])
    tau_ext = hook.generalized_force()            # PyBullet's J^T W for the coming step
    for _ in range(n):
        hook.before_substep()
        arm.step(np.zeros(6), substeps=1)
    _, qd_after = arm.joint_state()
    expected = generalized_impulse(ur5e_urdf, ur5e_joints, q, link, kind, point, plan.momentum()[0])
    M = np.asarray(p.calculateMassMatrix(body, list(q), physicsClientId=cid))
    np.testing.assert_allclose(np.linalg.solve(M, tau_ext) * n * H, expected, rtol=1e-6, atol=1e-9)
    assert not np.any(hook.generalized_force())   # the impulse is over
    assert np.abs(expected).max() > 0.02           # a visible push, rad/s
    np.testing.assert_allclose(qd_after, expected, rtol=0, atol=0.01 * np.abs(expected).max())


@pytest.mark.parametrize('link, vector', [('forearm_link', (0.0, 25.0, 0.0)), ('tool0', (15.0, -10.0, 5.0))])
def test_with_armature_a_push_acts_on_the_rotor_inertia_too(ur5e_urdf, ur5e_joints, link, vector):
    """A 25 N push on the forearm for 40 ms (the experiments' disturbance) through step_arm, the one
    stepping path of the agents, on an arm with 0.1 kg m^2 of armature on every joint."""
    armature = 0.1
    arm = PyBulletArm(ur5e_urdf, ur5e_joints, dt=DT, substeps=SUBSTEPS, armature=armature)
    try:
        arm.reset(Q0)
        n = 16
        plan = one_impulse(link, 'force', vector, start=SUBSTEPS + 2, n=n)   # inside control step 1
        hook = DisturbanceHook(arm, plan)
        step_arm(arm, np.zeros(6), SUBSTEPS, hook)
        q, qd = arm.joint_state()
        assert np.abs(qd).max() < 1e-9
        cid, body = arm.client_id, arm.body_id
        index = link_index(cid, body, link)
        for _ in range(2):
            hook.before_substep()
            arm.step(np.zeros(6), substeps=1)
        point = np.array(p.getLinkState(body, index, physicsClientId=cid)[0])
        for _ in range(n):
            step_arm(arm, np.zeros(6), 1, hook)
        _, qd_after = arm.joint_state()
    finally:
        arm.close()
    expected = generalized_impulse(ur5e_urdf, ur5e_joints, q, link, 'force', point, plan.momentum()[0], armature)
    unresisted = generalized_impulse(ur5e_urdf, ur5e_joints, q, link, 'force', point, plan.momentum()[0])
    assert np.abs(unresisted - expected).max() > 5 * 0.01 * np.abs(expected).max()   # the test can tell them apart
    np.testing.assert_allclose(qd_after, expected, rtol=0, atol=0.01 * np.abs(expected).max())


def test_the_trajectory_changes_only_from_the_impulse_on_and_replays_bit_identically(make_arm):
    plan = one_impulse('tool0', 'force', (0.0, 20.0, 0.0), start=2 * SUBSTEPS + 7)   # inside control step 2
    calm, pushed, again = run(make_arm(), None), run(make_arm(), plan), run(make_arm(), plan)
    np.testing.assert_array_equal(pushed[:3], calm[:3])      # states before step 2 is applied
    assert np.all(np.abs(pushed[3:] - calm[3:]).max(axis=1) > 1e-3)   # and every state after it
    np.testing.assert_array_equal(pushed, again)
    # a hook without impulses is bit-identical to none: the batched steps are taken
    empty = DisturbancePlan('tool0', 'force', H, ())
    np.testing.assert_array_equal(run(make_arm(), empty), calm)


def test_plans_are_drawn_from_the_seeded_generator_within_the_settings():
    cfg = DisturbanceConfig(link='tool0', magnitude=25.0, duration=0.02, count_min=1, count_max=3, t_min=0.5, t_max=4.0)
    plans = [draw_plan(cfg, np.random.default_rng(seed), H) for seed in range(40)]
    assert draw_plan(cfg, np.random.default_rng(3), H) == plans[3]
    assert {len(pl.impulses) for pl in plans} == {1, 2, 3}
    for pl in plans:
        starts = [i.start for i in pl.impulses]
        assert starts == sorted(starts)
        for imp in pl.impulses:
            assert round(0.5 / H) <= imp.start <= round(4.0 / H)
            assert imp.substeps == 8                 # 20 ms of 2.5 ms physics steps
            assert np.linalg.norm(imp.vector) == pytest.approx(25.0)
    fixed = draw_plan(DisturbanceConfig(link='tool0', direction=(0.0, 0.0, -2.0), magnitude=10.0),
                      np.random.default_rng(0), H)
    np.testing.assert_allclose(fixed.impulses[0].vector, (0.0, 0.0, -10.0))
    assert plans[0] != plans[1]


def test_settings_and_link_names_are_validated(make_arm):
    with pytest.raises(ValueError, match='count_max'):
        DisturbanceConfig(link='tool0', count_min=2, count_max=1)
    with pytest.raises(ValueError, match='kind'):
        DisturbanceConfig(link='tool0', kind='push')
    with pytest.raises(ValueError, match='duration'):
        DisturbanceConfig(link='tool0', duration=0.0)
    with pytest.raises(ValueError, match="link 'gripper' is not in the body"):
        DisturbanceHook(make_arm(), DisturbancePlan('gripper', 'force', H, ()))
