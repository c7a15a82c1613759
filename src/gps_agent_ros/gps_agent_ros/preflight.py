"""Pre-flight checks of an experiment, after validation and before the first sample (ROS-free).

Two questions that otherwise cost a whole training run to answer:

- Can the arm reach each target? Damped least squares IK (Levenberg-Marquardt) on the state
  encoder's pinocchio model, from q0 and a few seeded starts, inside the joint limits. A target
  the first end-effector point cannot get within algorithm.success_distance of can never count as
  solved: refused, naming the distance left, unless allow_unreachable (then a warning).
- Is the simulation stable as configured? From each q0, zero torque for a short time with the
  YAML's substeps, gravity compensation, armature and damping. A joint whose speed blows up is
  named, with a substep count that is stable (found by doubling).

    warnings = preflight(Experiment(cfg), allow_unreachable=False)   # raises PreflightError
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from gps_agent_ros.experiment import Experiment
from gps_controllers.state_encoder import StateEncoder
from gps_controllers.urdf_limits import read_joint_limits
from gps_core.config import ConfigError

if TYPE_CHECKING:
    from gps_agent_ros.pybullet_arm import PyBulletArm

IK_STARTS = 8                   # seeded starts besides q0
IK_ITERATIONS = 200             # per start
IK_TOLERANCE_M = 1e-4
BLOWUP_VELOCITY_FACTOR = 10.0   # a joint faster than this times its URDF velocity limit has blown up
STABILITY_HORIZON_S = 2.0       # simulated per start pose (or the trial length, if shorter)
MIN_PHYSICS_STEP_S = 1e-5       # the substep search stops here


class PreflightError(ConfigError):
    """The experiment is valid but cannot train as configured."""


@dataclass(frozen=True)
class Reach:
    """How close the arm gets to one condition's target."""

    key: str                # where the target is in the YAML, e.g. 'conditions[1].target_position'
    distance: float         # [m] closest the first end-effector point gets to its target
    pose_distance: float    # [m] largest point-to-target distance when all points aim at theirs
    q: np.ndarray           # [nj] the configuration that gets `distance`, within the joint limits


@dataclass(frozen=True)
class Blowup:
    """A joint whose speed passed its bound in the zero-torque check."""

    joint: str
    speed: float            # [unit] when it passed
    unit: str               # 'rad/s' (revolute) or 'm/s' (prismatic)
    time_s: float           # [s] after the start
    start_key: str          # the start pose, e.g. 'conditions[0].initial_joint_positions'


def preflight(experiment: Experiment, allow_unreachable: bool = False) -> list[str]:
    """Run every check; return warnings, raise PreflightError (FILE: KEY: ...) on a failure."""
    warnings = check_reach(experiment, allow_unreachable)
    warnings += check_simulation(experiment)
    return warnings


# ------------------------------------------------------------------------------ reachability
def check_reach(experiment: Experiment, allow_unreachable: bool = False) -> list[str]:
    cfg = experiment.config
    limit = cfg.algorithm.success_distance
    warnings, unreachable = [], []
    conds = [(f'conditions[{i}]', c, cc) for i, (c, cc) in enumerate(zip(experiment.conditions, cfg.conditions))]
    conds += [(f'test_conditions[{i}]', c, cc)
              for i, (c, cc) in enumerate(zip(experiment.test_conditions, cfg.test_conditions))]
    for key, cond, cond_cfg in conds:
        r = reach(experiment.encoder, cond.q0, cond.targets, f'{key}.target_position')
        if r.distance > limit:
            target = [float(v) for v in cfg.target(cond_cfg)]     # given, or above a block, or in a hole
            unreachable.append((r.key, (
                f'{target} is out of reach: the first end-effector point gets no closer than {r.distance:.3f} m '
                f'(IK from q0 and {IK_STARTS} other starts within the joint limits; expected within '
                f'algorithm.success_distance {limit:g} m')))
        elif r.pose_distance > limit:
            rpy_key = f'{key}.target_rpy' if cond_cfg.target_rpy is not None else 'target_rpy'
            warnings.append(str(ConfigError(
                f'the target pose of {key} is out of reach: aiming every end-effector point at its target '
                f'leaves one {r.pose_distance:.3f} m away (expected within {limit:g} m; the position is '
                f'reachable, the cost will trade it against the orientation)', rpy_key, cfg.source)))
    if not unreachable:
        return warnings
    if allow_unreachable:
        return [str(ConfigError(f'{msg}); training anyway (--allow-unreachable)', key, cfg.source))
                for key, msg in unreachable] + warnings
    key, msg = unreachable[0]
    more = f'; {len(unreachable) - 1} more target(s) out of reach' if len(unreachable) > 1 else ''
    raise PreflightError(f'{msg}{more}; --allow-unreachable trains anyway)', key, cfg.source)


def reach(encoder: StateEncoder, q0: np.ndarray, targets: np.ndarray, key: str = '',
          seed: int = 0) -> Reach:
    """IK for the target points [P, 3]: the full pose from q0, then the first point alone
    from q0 and IK_STARTS seeded starts, all within the encoder's joint limits."""
    lo, hi = encoder.position_limits.T
    q_pose = _solve(encoder, np.asarray(q0, float), targets, slice(None), lo, hi)
    pose_err = np.linalg.norm(encoder.ee_points_world(q_pose) - targets, axis=1)
    if pose_err[0] <= IK_TOLERANCE_M:
        return Reach(key, float(pose_err[0]), float(pose_err.max()), q_pose)
    rng = np.random.default_rng(seed)
    # starts inside the limits; a continuous or +-2 pi joint is sampled over one turn
    starts = [np.asarray(q0, float)] + [rng.uniform(np.maximum(lo, -np.pi), np.minimum(hi, np.pi))
                                        for _ in range(IK_STARTS)]
    best_q, best = q_pose, float(pose_err[0])
    for start in starts:
        q = _solve(encoder, start, targets, slice(0, 1), lo, hi)
        d = float(np.linalg.norm(encoder.ee_points_world(q)[0] - targets[0]))
        if d < best:
            best_q, best = q, d
        if best <= IK_TOLERANCE_M:
            break
    return Reach(key, best, float(pose_err.max()), best_q)


def _solve(encoder: StateEncoder, q: np.ndarray, targets: np.ndarray, points: slice,
           lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Levenberg-Marquardt on the points' position error, each step clipped to the limits.
    Jacobians by forward differences of the encoder's forward kinematics."""
    def residual(qq: np.ndarray) -> np.ndarray:
        return (targets[points] - encoder.ee_points_world(qq)[points]).ravel()

    q = np.clip(q, lo, hi)
    e = residual(q)
    err, lam, h = float(e @ e), 1e-2, 1e-7
    for _ in range(IK_ITERATIONS):
        if err <= IK_TOLERANCE_M ** 2 or lam > 1e6:
            break
        J = np.empty((e.size, q.size))                   # d(points)/dq = -d(residual)/dq
        for k in range(q.size):
            dq = np.zeros(q.size)
            dq[k] = h
            J[:, k] = (e - residual(q + dq)) / h
        while lam <= 1e6:
            step = J.T @ np.linalg.solve(J @ J.T + lam * np.eye(e.size), e)
            step *= min(1.0, 0.5 / max(np.abs(step).max(), 1e-12))  # at most 0.5 rad per joint
            q_new = np.clip(q + step, lo, hi)
            e_new = residual(q_new)
            err_new = float(e_new @ e_new)
            if err_new < err:
                q, e, err, lam = q_new, e_new, err_new, max(lam / 3.0, 1e-6)
                break
            lam *= 4.0
    return q


# ------------------------------------------------------------------------------ simulation
def _pybullet() -> ModuleType:
    """pybullet, imported on first use without the build-time banner it writes to stderr (a
    mistake reported by the CLI stays one line)."""
    if 'pybullet' not in sys.modules:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            import pybullet  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    return sys.modules['pybullet']


def check_simulation(experiment: Experiment) -> list[str]:
    """Raise PreflightError at sim.substeps if the simulation blows up at zero torque; warn
    about links PyBullet models differently from the URDF."""
    cfg = experiment.config
    substeps = cfg.sim.substeps
    blowup, warnings = _zero_torque_blowup(experiment, substeps, collect_warnings=True)
    if blowup is None:
        return warnings
    suggestion = suggest_substeps(experiment, substeps)
    found = (f'{suggestion} is (physics step {cfg.dt / suggestion * 1e3:.3g} ms)' if suggestion is not None else
             f'none up to {int(cfg.dt / MIN_PHYSICS_STEP_S)} is: check the URDF inertias and <dynamics damping>')
    raise PreflightError(
        f'{substeps} is unstable: {blowup.joint} reaches {blowup.speed:.1f} {blowup.unit} {blowup.time_s:.2f} s after '
        f'{blowup.start_key} at zero torque (physics step {cfg.dt / substeps * 1e3:.3g} ms; expected a stable '
        f'substep count: {found})', 'sim.substeps', cfg.source)


def suggest_substeps(experiment: Experiment, substeps: int) -> int | None:
    """The first of 2x, 4x, 8x, ... substeps that is stable from every start pose."""
    n = 2 * substeps
    while experiment.config.dt / n >= MIN_PHYSICS_STEP_S:
        if _zero_torque_blowup(experiment, n)[0] is None:
            return n
        n *= 2
    return None


def _zero_torque_blowup(experiment: Experiment, substeps: int,
                        collect_warnings: bool = False) -> tuple[Blowup | None, list[str]]:
    """Simulate every distinct start pose at zero torque; the first joint that blows up."""
    p = _pybullet()
    from gps_agent_ros.pybullet_arm import PyBulletArm
    cfg = experiment.config
    starts: dict[tuple[float, ...], str] = {}
    for name, conds in (('conditions', cfg.conditions), ('test_conditions', cfg.test_conditions)):
        for i, c in enumerate(conds):
            starts.setdefault(tuple(c.initial_joint_positions), f'{name}[{i}].initial_joint_positions')
    limits = read_joint_limits(experiment.urdf_path)
    steps = max(1, int(np.ceil(min(STABILITY_HORIZON_S, cfg.T * cfg.dt) / cfg.dt)))
    peg_arm = None
    if cfg.peg_task is not None:                       # the arm as simulated: with the peg
        from gps_agent_ros.peg_task import PegArm
        peg_arm = PegArm(experiment.urdf_path, cfg.peg_task.peg)
    arm = PyBulletArm(experiment.urdf_path if peg_arm is None else peg_arm.urdf_path, list(cfg.robot.joints),
                      dt=cfg.dt, substeps=substeps, gravity_compensation=cfg.sim.gravity_compensation,
                      armature=cfg.sim.armature, damping=cfg.sim.damping)
    try:
        cid, body = arm.client_id, arm.body_id
        movable = {}                                   # PyBullet index -> (name, unit), every movable joint
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            info = p.getJointInfo(body, j, physicsClientId=cid)
            if info[2] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC):
                movable[j] = (info[1].decode(), 'm/s' if info[2] == p.JOINT_PRISMATIC else 'rad/s')
        index = list(movable)
        bound = np.array([BLOWUP_VELOCITY_FACTOR * limits[movable[j][0]].velocity for j in index])
        warnings = _inertia_warnings(experiment, arm) if collect_warnings else []
        zeros = np.zeros(len(cfg.robot.joints))
        for q0, key in starts.items():
            arm.reset(q0)
            for t in range(steps):
                arm.step(zeros)
                qd = np.array([s[1] for s in p.getJointStates(body, index, physicsClientId=cid)])
                bad = ~(np.abs(qd) <= bound)             # NaN counts as blown up
                if bad.any():
                    k = int(np.argmax(np.where(bad, np.nan_to_num(np.abs(qd) / bound, nan=np.inf), -1.0)))
                    name, unit = movable[index[k]]
                    return Blowup(name, float(abs(qd[k])), unit, (t + 1) * cfg.dt, key), warnings
        return None, warnings
    finally:
        arm.close()
        if peg_arm is not None:
            peg_arm.close()


def _inertia_warnings(experiment: Experiment, arm: PyBulletArm) -> list[str]:
    """PyBullet zeroes inertia tensors it finds unphysical (principal moments breaking the
    triangle inequality): the simulated dynamics then differ from the URDF's."""
    p = _pybullet()
    cid, body = arm.client_id, arm.body_id
    zeroed = []
    for j in range(p.getNumJoints(body, physicsClientId=cid)):
        mass, _, inertia = p.getDynamicsInfo(body, j, physicsClientId=cid)[:3]
        if mass > 0 and not any(inertia):
            zeroed.append(p.getJointInfo(body, j, physicsClientId=cid)[12].decode())
    if not zeroed:
        return []
    cfg = experiment.config
    return [str(ConfigError(f'PyBullet simulates links {zeroed} with zero inertia (their URDF inertia tensors are '
                            f'not physical; expected principal moments that satisfy the triangle inequality)',
                            'robot.urdf', cfg.source))]

