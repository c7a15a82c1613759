"""Experiment configuration: frozen dataclasses built from YAML at the edge (CLI or node).

Every key is checked when the file is loaded: an unknown or misspelled key, a value of the wrong
type, a non-finite number or a value out of range raises ConfigError naming the file, the key
(a dotted path such as conditions[2].target_position) and what was expected:

    config/ur5e_reach.yaml: algorithm.init.init_var[2]: -1.0 is not > 0 (expected an exploration variance > 0)

The dataclasses and their range checks are here; turning YAML data into them, key by key, is
gps_core.config_build. What depends on the robot (the URDF parses, joints and links exist, start
poses are within the joint limits) is checked by gps_agent_ros.validate, which reads the URDF.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gps_core.config_build import ConfigError, build, to_dict  # noqa: F401 - to_dict: part of this API
from gps_core.costs.ramp import RAMP_KINDS
from gps_core.disturbance_plan import DisturbanceConfig
from gps_core.dynamics.gmm_prior import DynamicsPriorConfig
from gps_core.peg_config import PegTask
from gps_core.policies.policy_config import PolicyConfig
from gps_core.policies.visuomotor_config import VisuomotorPolicyConfig
from gps_core.scene_config import SceneConfig
from gps_core.traj_opt.kl_lqr import TrajOptConfig
from gps_core.traj_opt.mpc import MPCConfig
from gps_core.traj_opt.pi2 import PI2Config

ALGORITHMS = ('traj_opt', 'mdgps', 'badmm', 'pigps', 'mpcgps')


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(problem, key)


def _values(value: float | tuple[float, ...], key: str, n: int | None, what: str) -> list[tuple[str, float]]:
    """(key, value) of a scalar or a per-item list; n: the length a list must have (None: any)."""
    if isinstance(value, tuple):
        _require(n is None or len(value) == n, key,
                 f'has {len(value)} values (expected one number, or {n}: one per {what})')
        return [(f'{key}[{i}]', v) for i, v in enumerate(value)]
    return [(key, value)]


def _at_least(value: float | tuple[float, ...], key: str, low: float, strict: bool = False,
              n: int | None = None, what: str = 'joint') -> None:
    """Each value >= low (> low if strict); a list must have n values."""
    for k, v in _values(value, key, n, what):
        ok = v > low if strict else v >= low
        _require(ok, k, f'{v!r} is not {">" if strict else ">="} {low:g} (expected a number {">" if strict else ">="} {low:g})')


def _count(value: int, key: str, low: int) -> None:
    _require(value >= low, key, f'{value} is below {low} (expected an integer >= {low})')


def _one_of(value: str, key: str, options: tuple[str, ...]) -> None:
    _require(value in options, key, f'{value!r} is not a valid choice (expected one of {list(options)})')


@dataclass(frozen=True)
class RobotConfig:
    urdf: str                                     # relative to the YAML file, package://pkg/... or pybullet_data://...
    joints: tuple[str, ...]
    ee_link: str
    ee_points: tuple[tuple[float, float, float], ...]   # [P, 3] offsets in the ee_link frame
    base_link: str = 'base_link'

    def __post_init__(self) -> None:
        _require(bool(self.urdf), 'urdf', 'is empty (expected a URDF path)')
        _require(len(self.joints) >= 1, 'joints', 'is empty (expected the controlled joints)')
        for i, name in enumerate(self.joints):
            _require(name not in self.joints[:i], f'joints[{i}]',
                     f'{name!r} is listed twice (expected each joint once)')
        _require(bool(self.ee_link), 'ee_link', 'is empty (expected a link name)')
        _require(bool(self.base_link), 'base_link', 'is empty (expected a link name)')
        _require(len(self.ee_points) >= 1, 'ee_points', 'is empty (expected at least one [x, y, z] point)')


@dataclass(frozen=True)
class SimConfig:
    substeps: int = 50
    gravity_compensation: bool = True             # a real UR compensates gravity itself
    armature: tuple[float, ...] | float = 0.0     # reflected rotor inertia per controlled joint [kg m^2]
    damping: tuple[float, ...] | float = 0.0      # viscous joint friction per controlled joint [N m s / rad]

    def __post_init__(self) -> None:
        _count(self.substeps, 'substeps', 1)
        _at_least(self.armature, 'armature', 0.0)
        _at_least(self.damping, 'damping', 0.0)


@dataclass(frozen=True)
class ConditionConfig:
    initial_joint_positions: tuple[float, ...]
    # of the first end-effector point, base frame [m]; with a scene, default: above the block
    target_position: tuple[float, float, float] | None = None
    target_rpy: tuple[float, float, float] | None = None  # target ee orientation; default: experiment's
    block: tuple[float, float] | None = None       # the scene's block on the table at this xy [m]
    distractor: tuple[float, float] | None = None  # the scene's distractor block at this xy [m]
    # peg_task: the centre of the hole's rim, base frame [m]; the target default: the hole's floor
    hole: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class ActionCostConfig:
    weight: float = 1.0
    wu: tuple[float, ...] | float = 1e-3

    def __post_init__(self) -> None:
        _at_least(self.weight, 'weight', 0.0)
        _at_least(self.wu, 'wu', 0.0)


@dataclass(frozen=True)
class EEPointCostConfig:
    weight: float = 1.0
    wp: tuple[float, ...] | float = 1.0
    l1: float = 0.1
    l2: float = 10.0
    alpha: float = 1e-5
    ramp: str = 'linear'
    final_multiplier: float = 5.0

    def __post_init__(self) -> None:
        for name in ('weight', 'wp', 'l1', 'l2', 'final_multiplier'):
            _at_least(getattr(self, name), name, 0.0)
        _at_least(self.alpha, 'alpha', 0.0, strict=True)
        _one_of(self.ramp, 'ramp', RAMP_KINDS)


@dataclass(frozen=True)
class StateCostConfig:
    weight: float = 1.0
    indices: tuple[int, ...] = ()
    target: tuple[float, ...] = ()
    wp: tuple[float, ...] | float = 1.0
    ramp: str = 'constant'
    final_multiplier: float = 1.0

    def __post_init__(self) -> None:
        for name in ('weight', 'wp', 'final_multiplier'):
            _at_least(getattr(self, name), name, 0.0)
        _require(len(self.indices) >= 1, 'indices', 'is empty (expected the state indices to penalize)')
        _require(len(self.target) == len(self.indices), 'target',
                 f'has {len(self.target)} values (expected {len(self.indices)}: one per index)')
        if isinstance(self.wp, tuple):
            _values(self.wp, 'wp', len(self.indices), 'index')
        _one_of(self.ramp, 'ramp', RAMP_KINDS)


@dataclass(frozen=True)
class CostConfig:
    action: ActionCostConfig | None = ActionCostConfig()
    ee_point: EEPointCostConfig | None = EEPointCostConfig()
    state: StateCostConfig | None = None

    def __post_init__(self) -> None:
        _require(any(c is not None for c in (self.action, self.ee_point, self.state)), '',
                 'enables no cost term (expected at least one of action, ee_point, state)')


@dataclass(frozen=True)
class InitControllerConfig:
    kp: tuple[float, ...] | float = 10.0
    kd: tuple[float, ...] | float = 2.0
    init_var: tuple[float, ...] | float = 1.0     # exploration variance of each action [N^2 m^2]
    smooth_noise_sigma: float = 2.0               # time steps

    def __post_init__(self) -> None:
        _at_least(self.kp, 'kp', 0.0)
        _at_least(self.kd, 'kd', 0.0)
        _at_least(self.init_var, 'init_var', 0.0, strict=True)
        _at_least(self.smooth_noise_sigma, 'smooth_noise_sigma', 0.0)


@dataclass(frozen=True)
class MDGPSConfig:
    """Mirror-descent GPS (Montgomery & Levine NIPS'16)."""

    sample_on_policy: bool = False                # True: sample the network (+ its noise) after iteration 1


@dataclass(frozen=True)
class BADMMConfig:
    """Bregman-ADMM GPS (Levine et al. JMLR'16, Sec. 4 / App. A)."""

    inner_iterations: int = 4                     # policy / dual / trajectory rounds per GPS iteration
    init_pol_wt: float = 0.01                     # initial nu_t, weight of KL(p || pi) per time step
    pol_wt_step: float = 10.0                     # nu_t += pol_wt_step * KL_t (dual gradient step)
    max_pol_wt: float = 1.0e4
    dual_rate: float = 0.1                        # lambda_t -= dual_rate * nu_t * P_t (mu_p - mu_pi)

    def __post_init__(self) -> None:
        _count(self.inner_iterations, 'inner_iterations', 1)
        _at_least(self.init_pol_wt, 'init_pol_wt', 0.0, strict=True)
        _require(self.init_pol_wt <= self.max_pol_wt, 'max_pol_wt',
                 f'{self.max_pol_wt!r} is below init_pol_wt {self.init_pol_wt!r} (expected init_pol_wt <= max_pol_wt)')
        _at_least(self.pol_wt_step, 'pol_wt_step', 0.0)
        _at_least(self.dual_rate, 'dual_rate', 0.0)


@dataclass(frozen=True)
class AlgorithmConfig:
    type: str = 'traj_opt'                        # traj_opt | mdgps | badmm | pigps | mpcgps
    base_kl_step: float = 0.2                     # per time step; epsilon = base_kl_step * step_mult * T
    min_step_mult: float = 0.01
    max_step_mult: float = 10.0
    initial_eta: float = 1.0
    success_distance: float = 0.05                # metres, per condition
    init: InitControllerConfig = InitControllerConfig()
    mdgps: MDGPSConfig = MDGPSConfig()
    badmm: BADMMConfig = BADMMConfig()
    pi2: PI2Config = PI2Config()                  # pigps's C-step (gps_core.traj_opt.pi2)
    mpc: MPCConfig = MPCConfig()                  # mpcgps's teacher (gps_core.traj_opt.mpc)

    def __post_init__(self) -> None:
        _one_of(self.type, 'type', ALGORITHMS)
        for name in ('base_kl_step', 'min_step_mult', 'initial_eta', 'success_distance'):
            _at_least(getattr(self, name), name, 0.0, strict=True)
        _require(self.min_step_mult <= self.max_step_mult, 'max_step_mult',
                 f'{self.max_step_mult!r} is below min_step_mult {self.min_step_mult!r} '
                 f'(expected min_step_mult <= max_step_mult)')


@dataclass(frozen=True)
class DynamicsConfig:
    regularization: float = 1e-6
    prior: DynamicsPriorConfig = DynamicsPriorConfig()

    def __post_init__(self) -> None:
        _at_least(self.regularization, 'regularization', 0.0)


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: str
    robot: RobotConfig
    conditions: tuple[ConditionConfig, ...]
    T: int = 100
    dt: float = 0.05
    samples_per_condition: int = 5
    iterations: int = 10
    seed: int = 0
    target_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    test_conditions: tuple[ConditionConfig, ...] = ()
    sim: SimConfig = SimConfig()
    cost: CostConfig = CostConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    dynamics: DynamicsConfig = DynamicsConfig()
    traj_opt: TrajOptConfig = TrajOptConfig()
    # the neural-network policy (mdgps, badmm, pigps): policy.kind mlp (on the state) or
    # spatial_softmax (a visuomotor CNN on the scene's camera images + the robot's own state)
    policy: PolicyConfig | VisuomotorPolicyConfig = PolicyConfig()
    scene: SceneConfig | None = None              # table, block(s) and camera (visuomotor experiments)
    distractor_conditions: tuple[ConditionConfig, ...] = ()   # a second block elsewhere (evaluated apart)
    # pushes during trials (gps_core.disturbance_plan): mpcgps's disturbed samples, the evaluation's
    disturbance: DisturbanceConfig | None = None
    peg_task: PegTask | None = None               # a peg at the flange, a block with a hole (conditions' hole)
    source: str = field(default='', compare=False)     # the file it came from (set by load)

    def __post_init__(self) -> None:
        try:
            self._check()
        except ConfigError as err:
            raise err.within(self.source) from None

    def _check(self) -> None:
        _require(bool(self.experiment) and '/' not in self.experiment and self.experiment not in ('.', '..'),
                 'experiment', f'{self.experiment!r} is not a name (expected a non-empty name without "/", '
                               f'used for the default output folder runs/<experiment>)')
        _count(self.T, 'T', 2)
        _at_least(self.dt, 'dt', 0.0, strict=True)
        _count(self.samples_per_condition, 'samples_per_condition', 1)
        _count(self.iterations, 'iterations', 1)
        _count(self.seed, 'seed', 0)
        _require(len(self.conditions) >= 1, 'conditions', 'is empty (expected at least one condition)')
        nj, n_points = len(self.robot.joints), len(self.robot.ee_points)
        for name, conds in (('conditions', self.conditions), ('test_conditions', self.test_conditions),
                            ('distractor_conditions', self.distractor_conditions)):
            for i, c in enumerate(conds):
                n = len(c.initial_joint_positions)
                _require(n == nj, f'{name}[{i}].initial_joint_positions',
                         f'has {n} values for {nj} joints (expected one per robot.joints)')
                self._check_objects(c, f'{name}[{i}]', distractor=name == 'distractor_conditions')
        visuomotor = isinstance(self.policy, VisuomotorPolicyConfig)
        _require(not visuomotor or self.scene is not None, 'scene',
                 'is missing (expected a scene with a camera: policy.kind spatial_softmax sees its images)')
        _require(not self.distractor_conditions or (self.scene is not None and self.scene.distractor is not None),
                 'scene.distractor', 'is missing (expected one: distractor_conditions place it)')
        per_joint = [('sim.armature', self.sim.armature), ('sim.damping', self.sim.damping),
                     ('algorithm.init.kp', self.algorithm.init.kp), ('algorithm.init.kd', self.algorithm.init.kd),
                     ('algorithm.init.init_var', self.algorithm.init.init_var)]
        if self.cost.action is not None:
            per_joint.append(('cost.action.wu', self.cost.action.wu))
        for key, value in per_joint:
            _values(value, key, nj, 'robot.joints')
        if self.cost.ee_point is not None:
            _values(self.cost.ee_point.wp, 'cost.ee_point.wp', 3 * n_points, 'end-effector point coordinate')
        if self.cost.state is not None:
            dX = 2 * nj + 6 * n_points
            for i, idx in enumerate(self.cost.state.indices):
                _require(0 <= idx < dX, f'cost.state.indices[{i}]',
                         f'{idx} is outside the state (expected 0 <= index < dX = {dX})')
        if self.algorithm.type == 'pigps':
            # PI2 reweights a condition's samples with KL(weights || uniform) <= kl_threshold < log N
            bound = math.log(self.samples_per_condition)
            _require(self.algorithm.pi2.kl_threshold < bound, 'algorithm.pi2.kl_threshold',
                     f'{self.algorithm.pi2.kl_threshold!r} is not below log(samples_per_condition) = {bound:.3g} '
                     f'(expected a bound the sample weights can meet)')
        if self.algorithm.type == 'mpcgps':
            _require(not visuomotor, 'policy.kind', "is spatial_softmax for algorithm.type mpcgps (expected mlp: "
                     "the teacher's regression runs on the state)")
            _require(self.algorithm.mpc.horizon <= self.T, 'algorithm.mpc.horizon',
                     f'{self.algorithm.mpc.horizon} exceeds T = {self.T} (expected a window inside the trial)')
        self._check_disturbance()
        _require(self.peg_task is None or self.scene is None, 'peg_task',
                 'is given with a scene (expected one of them: the peg task has its own block)')
        t = self.traj_opt
        _at_least(t.min_eta, 'traj_opt.min_eta', 0.0, strict=True)
        _require(t.min_eta < t.max_eta, 'traj_opt.max_eta',
                 f'{t.max_eta!r} is not above min_eta {t.min_eta!r} (expected min_eta < max_eta)')
        _count(t.max_iterations, 'traj_opt.max_iterations', 1)
        _at_least(t.kl_tolerance, 'traj_opt.kl_tolerance', 0.0, strict=True)

    def _check_disturbance(self) -> None:
        """Disturbed samples only for mpcgps (the one algorithm told which trials were pushed, so it
        keeps them out of its dynamics fit), fewer than the samples; a disturbed evaluation only for a
        network; impulses that start inside the trial."""
        d = self.disturbance
        if d is None:
            return
        if d.disturbed_samples > 0:
            _require(self.algorithm.type == 'mpcgps', 'disturbance.disturbed_samples',
                     f'is {d.disturbed_samples} for algorithm.type {self.algorithm.type!r} (expected 0: only mpcgps '
                     f'keeps disturbed trials out of its dynamics fit)')
            _require(d.disturbed_samples < self.samples_per_condition, 'disturbance.disturbed_samples',
                     f'{d.disturbed_samples} is not below samples_per_condition {self.samples_per_condition} '
                     f'(expected undisturbed samples left for the dynamics fit)')
        _require(not d.evaluation or self.algorithm.type != 'traj_opt', 'disturbance.evaluation',
                 'is true for algorithm.type traj_opt (expected a network algorithm: the evaluation runs the network)')
        _require(d.disturbed_samples > 0 or d.evaluation, 'disturbance',
                 'disturbs nothing (expected disturbed_samples > 0 or evaluation: true)')
        duration = self.T * self.dt
        _require(d.t_max < duration, 'disturbance.t_max',
                 f'{d.t_max!r} s is not inside the trial of T * dt = {duration:g} s (expected t_max < {duration:g})')

    def _check_objects(self, c: ConditionConfig, key: str, distractor: bool) -> None:
        """A condition names its target, or a block the target is above, or a hole the peg goes into;
        blocks need a scene and lie in its area, holes a peg_task; a distractor position only for
        distractor conditions."""
        _require(c.target_position is not None or c.block is not None or c.hole is not None, f'{key}.target_position',
                 'is missing (expected a target position, a block position with a scene, or a hole with a peg_task)')
        _require(c.hole is None or self.peg_task is not None, f'{key}.hole', 'needs a peg_task (expected a peg_task: section)')
        _require(self.peg_task is None or c.hole is not None, f'{key}.hole',
                 'is missing (expected the hole of every condition of a peg_task experiment)')
        if c.block is not None or c.distractor is not None:
            _require(self.scene is not None, f'{key}.block', 'needs a scene (expected a scene: section)')
        for what in ('block', 'distractor'):
            xy = getattr(c, what)
            if xy is not None:
                (x0, x1), (y0, y1) = self.scene.area_x, self.scene.area_y
                _require(x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1, f'{key}.{what}',
                         f'{list(xy)} is outside the scene area (expected x in {[x0, x1]}, y in {[y0, y1]})')
        _require((c.distractor is not None) == distractor, f'{key}.distractor',
                 'is given outside distractor_conditions (expected it only there)' if not distractor
                 else 'is missing (expected the distractor block position)')

    def target(self, c: ConditionConfig) -> tuple[float, float, float]:
        """The condition's target of the first end-effector point [m]."""
        if c.target_position is not None:
            return c.target_position
        if c.hole is not None:
            return tuple(float(v) for v in self.peg_task.tip_target(c.hole))
        return tuple(float(v) for v in self.scene.target_above(c.block))

    def resolve(self, relative: str) -> Path:
        """A path named in the YAML: relative to the YAML file's folder, absolute, a ROS package
        file (package://pkg/path) or a file shipped with PyBullet (pybullet_data://path)."""
        if relative.startswith('package://'):
            from ament_index_python.packages import get_package_share_directory  # ROS edge only
            pkg, _, rest = relative[len('package://'):].partition('/')
            return Path(get_package_share_directory(pkg)) / rest
        if relative.startswith('pybullet_data://'):
            # located without importing: the core never loads the simulator
            spec = importlib.util.find_spec('pybullet_data')
            if spec is None or not spec.submodule_search_locations:
                raise ConfigError('the pybullet_data package is not installed (expected pip install pybullet)',
                                  'robot.urdf', self.source)
            return Path(list(spec.submodule_search_locations)[0]) / relative[len('pybullet_data://'):]
        p = Path(relative)
        return p if p.is_absolute() else (Path(self.source).parent / p).resolve()


def load_experiment(path: str | Path, **overrides: Any) -> ExperimentConfig:
    """Read an experiment YAML into an ExperimentConfig; overrides replace top-level keys."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f'cannot read: {err.strerror or err} (expected an experiment YAML file)', '',
                          str(path.resolve())) from err
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark is not None else ''
        problem = getattr(err, 'problem', None) or str(err).splitlines()[0]
        raise ConfigError(f'not valid YAML: {where}{problem} (expected a YAML mapping)', '',
                          str(path.resolve())) from err
    if not isinstance(data, dict):
        raise ConfigError(f'the file holds a {type(data).__name__} (expected a mapping of keys at the top level)',
                          '', str(path.resolve()))
    data.update({k: v for k, v in overrides.items() if v is not None})
    data['source'] = str(path.resolve())
    return build(ExperimentConfig, data, data['source'])
