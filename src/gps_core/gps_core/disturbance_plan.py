"""Impulse disturbances as data: the settings of a trial's pushes (the experiment's `disturbance:`
section), one trial's drawn impulses, and how they are drawn. numpy only; gps_agent_ros.disturbance
applies a plan to a simulated arm.

MPC-guided policy search (Zhang, Kahn, Levine, Abbeel, ICRA 2016) pushes the arm during training so
that its teacher shows the policy how to recover; the same settings push the network's evaluation
trials (with plans fixed per condition) to judge it under disturbances.

  DisturbanceConfig   the schedule's settings (frozen): which link, force or torque, magnitude,
                      duration, how many impulses per trial and the window of their start times, and
                      where they are used (how many of each condition's samples, the evaluation);
  DisturbancePlan     one trial's impulses, drawn by `draw_plan` from a generator the caller seeds
                      (the trainer: the trial's own seed): plain data that travels to the arm as it is
                      (a RunTrial goal, then sim_node's reset request), so every agent pushes alike.

Impulse times are in physics substeps counted from the trial's reset; the wrench is in the world frame
at the link's centre of mass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KINDS = ('force', 'torque')


@dataclass(frozen=True)
class DisturbanceConfig:
    """Settings of a trial's impulse disturbances.

    link: URDF link the wrench acts on (at its centre of mass); kind: 'force' [N] or 'torque' [N m];
    magnitude: the wrench's norm; duration [s]: how long each impulse lasts (rounded to physics steps,
    at least one); count_min, count_max: impulses per trial, drawn uniformly from [count_min, count_max];
    t_min, t_max [s]: window of the start times after the trial's start, drawn uniformly (sorted);
    direction: a world-frame direction (normalized) for every impulse, or None: uniform on the sphere,
    drawn per impulse.
    disturbed_samples: how many of each condition's samples per iteration are pushed (the last ones;
    the others stay undisturbed for the dynamics fit); evaluation: push the network's evaluation trials
    too, each condition with one plan fixed for the whole run.
    """

    link: str
    kind: str = 'force'
    magnitude: float = 20.0
    duration: float = 0.02
    count_min: int = 1
    count_max: int = 1
    t_min: float = 0.5
    t_max: float = 4.0
    direction: tuple[float, float, float] | None = None
    disturbed_samples: int = 0
    evaluation: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.link, str) or not self.link:
            raise ValueError(f'link: {self.link!r} is not a link name (expected a URDF link)')
        if self.kind not in KINDS:
            raise ValueError(f'kind: {self.kind!r} is not one of {list(KINDS)} (expected one of them)')
        for name in ('magnitude', 'duration'):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f'{name}: {v!r} is not a finite number > 0 (expected one)')
        for name in ('count_min', 'count_max', 'disturbed_samples'):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f'{name}: {v!r} is not an integer >= 0 (expected one)')
        if self.count_max < self.count_min:
            raise ValueError(f'count_max: {self.count_max} is below count_min {self.count_min} '
                             f'(expected count_min <= count_max)')
        for name in ('t_min', 't_max'):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f'{name}: {v!r} is not a finite time >= 0 [s] (expected one)')
        if self.t_max < self.t_min:
            raise ValueError(f't_max: {self.t_max} is below t_min {self.t_min} (expected t_min <= t_max)')
        if self.direction is not None:
            d = np.asarray(self.direction, dtype=float)
            if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
                raise ValueError(f'direction: {self.direction!r} is not a non-zero [x, y, z] (expected one, or null)')


@dataclass(frozen=True)
class Impulse:
    """A constant wrench for physics substeps [start, start + substeps); vector [3] world frame."""

    start: int
    substeps: int
    vector: tuple[float, float, float]


@dataclass(frozen=True)
class DisturbancePlan:
    """One trial's impulses on `link` ('force' or 'torque'), sorted by start; physics_dt [s]: the
    physics step the substep counts are in (a simulator with another step must refuse the plan)."""

    link: str
    kind: str
    physics_dt: float
    impulses: tuple[Impulse, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'disturbance kind {self.kind!r} is not one of {list(KINDS)}')
        if not (math.isfinite(self.physics_dt) and self.physics_dt > 0):
            raise ValueError(f'disturbance physics_dt {self.physics_dt!r} is not a positive number of seconds')
        for i, imp in enumerate(self.impulses):
            if imp.start < 0 or imp.substeps < 1 or len(imp.vector) != 3 or not all(map(math.isfinite, imp.vector)):
                raise ValueError(f'disturbance impulse {i} must start at a substep >= 0, last >= 1 substep and '
                                 f'have a finite [x, y, z]; got {imp}')
        starts = [imp.start for imp in self.impulses]
        if starts != sorted(starts):
            raise ValueError(f'disturbance impulses must be sorted by start, got starts {starts}')

    @property
    def disturbed(self) -> bool:
        return bool(self.impulses)

    def momentum(self) -> np.ndarray:
        """[n, 3] each impulse's integral of the wrench over time [N s] or [N m s]."""
        return np.array([np.asarray(i.vector) * i.substeps * self.physics_dt for i in self.impulses]).reshape(-1, 3)


def draw_plan(config: DisturbanceConfig, rng: np.random.Generator, physics_dt: float) -> DisturbancePlan:
    """Draw a trial's impulses: count, then start times, then directions, in that order from rng."""
    if not (math.isfinite(physics_dt) and physics_dt > 0):
        raise ValueError(f'physics_dt must be a positive number of seconds, got {physics_dt!r}')
    count = int(rng.integers(config.count_min, config.count_max + 1))
    starts = np.sort(rng.uniform(config.t_min, config.t_max, size=count))
    if config.direction is None:
        dirs = rng.standard_normal((count, 3))
    else:
        dirs = np.tile(np.asarray(config.direction, dtype=float), (count, 1))
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    n = max(1, int(round(config.duration / physics_dt)))
    impulses = tuple(Impulse(int(round(s / physics_dt)), n, tuple(float(v) for v in config.magnitude * d))
                     for s, d in zip(starts, dirs))
    return DisturbancePlan(config.link, config.kind, float(physics_dt), impulses)
