"""Pre-flight checks against independent oracles: PyBullet's own forward kinematics for reached
targets, a geometric bound and brute-force sampling for unreachable ones, and a direct
zero-torque simulation for the suggested substep count."""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pinocchio as pin
import pybullet as p
import pytest

from gps_agent_ros.experiment import Experiment
from gps_agent_ros.preflight import PreflightError, check_reach, check_simulation, preflight, reach
from gps_agent_ros.pybullet_arm import PyBulletArm
from gps_agent_ros.validate import validate_experiment
from gps_core.config import ConditionConfig, load_experiment

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {name: REPO / 'config' / f'{name}_reach.yaml' for name in ('ur5e', 'panda', 'xarm6')}


@pytest.fixture(scope='module')
def experiments() -> dict[str, Experiment]:
    out = {}
    for name, path in CONFIGS.items():
        cfg = load_experiment(path)
        validate_experiment(cfg)
        out[name] = Experiment(cfg)
    return out


def with_targets(exp: Experiment, *targets) -> Experiment:
    q0 = exp.config.conditions[0].initial_joint_positions
    conds = tuple(ConditionConfig(q0, tuple(t)) for t in targets)
    return Experiment(dataclasses.replace(exp.config, conditions=conds, test_conditions=()))


def pybullet_point(exp: Experiment, q: np.ndarray) -> np.ndarray:
    """The first end-effector point by PyBullet's forward kinematics (base frame = PyBullet world
    for these fixed-base arms)."""
    cfg = exp.config
    with PyBulletArm(exp.urdf_path, cfg.robot.joints) as arm:
        arm.reset(q)
        cid, body = arm.client_id, arm.body_id
        links = [p.getJointInfo(body, j, physicsClientId=cid)[12].decode()
                 for j in range(p.getNumJoints(body, physicsClientId=cid))]
        state = p.getLinkState(body, links.index(cfg.robot.ee_link), computeForwardKinematics=True,
                               physicsClientId=cid)
    R = np.array(p.getMatrixFromQuaternion(state[5])).reshape(3, 3)
    return np.array(state[4]) + R @ np.asarray(cfg.robot.ee_points[0])


@pytest.mark.parametrize('name', list(CONFIGS))
def test_shipped_targets_are_reached_within_the_limits(experiments, name):
    exp = experiments[name]
    lo, hi = exp.encoder.position_limits.T
    for m, cond in enumerate(exp.conditions):
        r = reach(exp.encoder, cond.q0, cond.targets, f'conditions[{m}].target_position')
        assert r.distance < 1e-3 and r.pose_distance < 1e-3
        assert np.all(r.q >= lo) and np.all(r.q <= hi)
        np.testing.assert_allclose(pybullet_point(exp, r.q), cond.targets[0], atol=2e-3)


def reach_bound(exp: Experiment, target: np.ndarray) -> float:
    """No configuration brings tool0's origin closer to `target` than |target - o1| - L: o1 is the
    first joint's origin (it never moves) and L the summed lengths of the URDF origins after it."""
    model = pin.buildModelFromUrdf(exp.urdf_path)
    data = model.createData()
    pin.forwardKinematics(model, data, pin.neutral(model))
    o1 = data.oMi[model.getJointId(exp.config.robot.joints[0])].translation
    root = ET.parse(exp.urdf_path).getroot()
    parent_joint = {j.find('child').get('link'): j for j in root.iter('joint')}
    length, link = 0.0, exp.config.robot.ee_link
    while parent_joint[link].get('name') != exp.config.robot.joints[0]:
        joint = parent_joint[link]
        length += np.linalg.norm([float(v) for v in joint.find('origin').get('xyz').split()])
        link = joint.find('parent').get('link')
    return float(np.linalg.norm(target - o1) - length)


def test_unreachable_target_is_refused_with_the_distance_left(experiments):
    target = np.array([2.0, 0.0, 0.5])
    exp = with_targets(experiments['ur5e'], [0.5, 0.1, 0.4], target)
    r = reach(exp.encoder, exp.conditions[1].q0, exp.conditions[1].targets)
    # brute force: the closest of 20000 random configurations within the limits
    rng = np.random.default_rng(1)
    lo, hi = exp.encoder.position_limits.T
    sampled = min(np.linalg.norm(exp.encoder.ee_points_world(q)[0] - target)
                  for q in rng.uniform(lo, hi, size=(20000, len(lo))))
    assert reach_bound(exp, target) - 1e-9 <= r.distance <= sampled + 1e-3
    assert r.distance > 1.0
    with pytest.raises(PreflightError) as err:
        check_reach(exp)
    assert err.value.key == 'conditions[1].target_position' and err.value.file == exp.config.source
    assert err.value.problem.startswith(f'[2.0, 0.0, 0.5] is out of reach: the first end-effector point gets '
                                        f'no closer than {r.distance:.3f} m')
    assert err.value.problem.endswith('--allow-unreachable trains anyway)')


def test_allow_unreachable_turns_the_refusal_into_a_warning(experiments):
    exp = with_targets(experiments['ur5e'], [2.0, 0.0, 0.5], [0.5, 0.1, 0.4], [0.0, 0.0, 1.5])
    warnings = check_reach(exp, allow_unreachable=True)
    assert [w.split(': ')[1] for w in warnings] == ['conditions[0].target_position', 'conditions[2].target_position']
    assert all(w.startswith(exp.config.source) and w.endswith('training anyway (--allow-unreachable)')
               for w in warnings)
    with pytest.raises(PreflightError, match=r'; 1 more target\(s\) out of reach'):
        check_reach(exp)


def test_unstable_substeps_are_named_with_a_stable_count(experiments):
    cfg = experiments['xarm6'].config
    exp = Experiment(dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, substeps=20)))
    with pytest.raises(PreflightError) as err:
        check_simulation(exp)
    assert err.value.key == 'sim.substeps'
    assert err.value.problem.startswith('20 is unstable: joint6 reaches ')
    suggested = int(err.value.problem.split('expected a stable substep count: ')[1].split()[0])
    assert suggested == 320

    def max_speed(substeps: int) -> float:
        """Zero torque for 2 s from q0, simulated directly."""
        with PyBulletArm(exp.urdf_path, cfg.robot.joints, dt=cfg.dt, substeps=substeps) as arm:
            arm.reset(cfg.conditions[0].initial_joint_positions)
            speeds = [np.abs((arm.step(np.zeros(6)), arm.joint_state())[1][1]).max() for _ in range(40)]
        return float(np.max(speeds))

    assert max_speed(suggested) < 1e-3             # holds still, as a gravity-compensated arm should
    assert max_speed(suggested // 2) > 30.0        # the count before it still blows up (limit 3.14 rad/s)


def test_shipped_experiments_pass_the_preflight(experiments):
    assert preflight(experiments['ur5e']) == []
    assert preflight(experiments['panda']) == []
    # PyBullet zeroes the inertia of two xArm links whose URDF tensors are unphysical: said, not refused
    warnings = preflight(experiments['xarm6'])
    assert len(warnings) == 1 and "robot.urdf: PyBullet simulates links ['link2', 'link3'] with zero inertia" in warnings[0]



def test_unreachable_orientation_is_a_warning(tmp_path):
    """A UR5e moving only its first three joints places the tool, but cannot also orient it."""
    import yaml
    data = yaml.safe_load(CONFIGS['ur5e'].read_text())
    data['robot'].update(urdf=str(REPO / 'urdf' / 'ur5e.urdf'), joints=data['robot']['joints'][:3])
    for c in data['conditions']:
        c['initial_joint_positions'] = c['initial_joint_positions'][:3]
    data['sim'].update(armature=0.1, damping=5.0)
    data['algorithm']['init'].update(kp=20.0, kd=5.0, init_var=9.0)
    data['cost']['action']['wu'] = 1e-3
    path = tmp_path / 'exp.yaml'
    path.write_text(yaml.safe_dump(data))
    exp = Experiment(load_experiment(path))
    warnings = check_reach(exp)                 # no PreflightError: every position is reachable
    assert len(warnings) == 4
    for m, w in enumerate(warnings):
        assert w.startswith(f'{path}: target_rpy: the target pose of conditions[{m}] is out of reach')
    r = reach(exp.encoder, exp.conditions[0].q0, exp.conditions[0].targets)
    assert r.distance < 1e-3 and r.pose_distance > 0.05
    np.testing.assert_allclose(pybullet_point(exp, r.q), exp.conditions[0].targets[0], atol=2e-3)
