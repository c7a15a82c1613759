"""Experiment configuration: frozen dataclasses built from YAML at the edge (CLI or node).

Every key is checked: an unknown or misspelled key raises ConfigError naming the key, where it
sits and the file, instead of being silently ignored.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gps_core.dynamics.gmm_prior import DynamicsPriorConfig
from gps_core.policies.policy_config import PolicyConfig
from gps_core.traj_opt.kl_lqr import TrajOptConfig

ALGORITHMS = ('traj_opt', 'mdgps', 'badmm')


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class RobotConfig:
    urdf: str                                     # path relative to the YAML file, or package://pkg/...
    joints: tuple[str, ...]
    ee_link: str
    ee_points: tuple[tuple[float, float, float], ...]   # [P, 3] offsets in the ee_link frame
    base_link: str = 'base_link'


@dataclass(frozen=True)
class SimConfig:
    substeps: int = 50
    gravity_compensation: bool = True             # a real UR compensates gravity itself
    armature: tuple[float, ...] | float = 0.0     # reflected rotor inertia per joint [kg m^2]
    damping: tuple[float, ...] | float = 0.0      # viscous joint friction [N m s / rad]


@dataclass(frozen=True)
class ConditionConfig:
    initial_joint_positions: tuple[float, ...]
    target_position: tuple[float, float, float]   # of the first end-effector point, base frame [m]
    target_rpy: tuple[float, float, float] | None = None  # target ee orientation; default: experiment's


@dataclass(frozen=True)
class ActionCostConfig:
    weight: float = 1.0
    wu: tuple[float, ...] | float = 1e-3


@dataclass(frozen=True)
class EEPointCostConfig:
    weight: float = 1.0
    wp: tuple[float, ...] | float = 1.0
    l1: float = 0.1
    l2: float = 10.0
    alpha: float = 1e-5
    ramp: str = 'linear'
    final_multiplier: float = 5.0


@dataclass(frozen=True)
class StateCostConfig:
    weight: float = 1.0
    indices: tuple[int, ...] = ()
    target: tuple[float, ...] = ()
    wp: tuple[float, ...] | float = 1.0
    ramp: str = 'constant'
    final_multiplier: float = 1.0


@dataclass(frozen=True)
class CostConfig:
    action: ActionCostConfig | None = ActionCostConfig()
    ee_point: EEPointCostConfig | None = EEPointCostConfig()
    state: StateCostConfig | None = None


@dataclass(frozen=True)
class InitControllerConfig:
    kp: tuple[float, ...] | float = 10.0
    kd: tuple[float, ...] | float = 2.0
    init_var: tuple[float, ...] | float = 1.0     # exploration variance of each action [N^2 m^2]
    smooth_noise_sigma: float = 2.0               # time steps


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
        if self.inner_iterations < 1:
            raise ValueError(f'badmm.inner_iterations must be >= 1, got {self.inner_iterations}')
        if not 0 < self.init_pol_wt <= self.max_pol_wt:
            raise ValueError(f'badmm: need 0 < init_pol_wt <= max_pol_wt, got {self.init_pol_wt}, {self.max_pol_wt}')
        if self.pol_wt_step < 0 or self.dual_rate < 0:
            raise ValueError('badmm.pol_wt_step and badmm.dual_rate must be >= 0')


@dataclass(frozen=True)
class AlgorithmConfig:
    type: str = 'traj_opt'                        # traj_opt | mdgps | badmm
    base_kl_step: float = 0.2                     # per time step; epsilon = base_kl_step * step_mult * T
    min_step_mult: float = 0.01
    max_step_mult: float = 10.0
    initial_eta: float = 1.0
    success_distance: float = 0.05                # metres, per condition
    init: InitControllerConfig = InitControllerConfig()
    mdgps: MDGPSConfig = MDGPSConfig()
    badmm: BADMMConfig = BADMMConfig()

    def __post_init__(self) -> None:
        if self.type not in ALGORITHMS:
            raise ValueError(f'algorithm.type must be one of {list(ALGORITHMS)}, got {self.type!r}')


@dataclass(frozen=True)
class DynamicsConfig:
    regularization: float = 1e-6
    prior: DynamicsPriorConfig = DynamicsPriorConfig()


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
    policy: PolicyConfig = PolicyConfig()         # the neural-network policy (mdgps, badmm)
    source: str = field(default='', compare=False)     # the file it came from (set by load)

    def __post_init__(self) -> None:
        checks = [(self.T >= 2, f'T must be >= 2, got {self.T}'),
                  (self.dt > 0, f'dt must be > 0, got {self.dt}'),
                  (self.samples_per_condition >= 1, 'samples_per_condition must be >= 1'),
                  (self.iterations >= 1, 'iterations must be >= 1'),
                  (len(self.conditions) >= 1, 'at least one condition is required')]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f'{self.source or "experiment"}: {msg}')
        nj = len(self.robot.joints)
        for name, conds in (('conditions', self.conditions), ('test_conditions', self.test_conditions)):
            for i, c in enumerate(conds):
                if len(c.initial_joint_positions) != nj:
                    raise ConfigError(f'{self.source}: {name}[{i}].initial_joint_positions has '
                                      f'{len(c.initial_joint_positions)} values for {nj} joints')

    def resolve(self, relative: str) -> Path:
        """A path named in the YAML, relative to the YAML file's folder (or a package:// URI)."""
        if relative.startswith('package://'):
            from ament_index_python.packages import get_package_share_directory  # ROS edge only
            pkg, _, rest = relative[len('package://'):].partition('/')
            return Path(get_package_share_directory(pkg)) / rest
        p = Path(relative)
        return p if p.is_absolute() else (Path(self.source).parent / p).resolve()


def load_experiment(path: str | Path, **overrides: Any) -> ExperimentConfig:
    """Read an experiment YAML into an ExperimentConfig; overrides replace top-level keys."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f'cannot read experiment file {path}: {err}') from err
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level, got {type(data).__name__}')
    data.update({k: v for k, v in overrides.items() if v is not None})
    data['source'] = str(path.resolve())
    return build(ExperimentConfig, data, str(path))


def build(cls: type, data: Any, where: str) -> Any:
    """Construct dataclass `cls` from plain YAML data, recursively and strictly."""
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping for {cls.__name__}, got {data!r}')
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown} in {cls.__name__}; '
                          f'valid keys: {sorted(names - {"source"})}')
    kwargs = {k: _convert(hints[k], v, f'{where}: {k}') for k, v in data.items()}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f'{where}: missing required key(s) {missing} in {cls.__name__}')
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f'{where}: {err}') from err


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in (o for o in options if o is not type(None)):
            try:
                return _convert(opt, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[-1] if errors else f'{where}: invalid value {value!r}')
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {value!r}')
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f'{where}[{i}]') for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f'{where}: expected {len(args)} values, got {len(value)}')
        return tuple(_convert(a, v, f'{where}[{i}]') for i, (a, v) in enumerate(zip(args, value)))
    if tp is float:
        if isinstance(value, str):                # YAML 1.1 reads 1.0e16 (no exponent sign) as text
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: expected a number, got {value!r}')
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}: expected an integer, got {value!r}')
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true/false, got {value!r}')
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string, got {value!r}')
        return value
    raise ConfigError(f'{where}: unsupported config type {tp}')


def to_dict(cfg: Any) -> Any:
    """Plain data (lists, dicts) for writing the resolved config back to YAML."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name != 'source'}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    return cfg
