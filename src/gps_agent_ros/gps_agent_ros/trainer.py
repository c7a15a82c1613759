"""The GPS training loop: sample every condition with its controller, update, report.

Agent-agnostic: the in-process PyBullet agent and the ROS 2 action client both plug in here, so
both produce the same metrics.json, checkpoints and plot.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from gps_agent_ros.agent import Agent
from gps_agent_ros.experiment import Experiment
from gps_agent_ros.report import write_plot
from gps_core.algorithms import TrajOptAlgorithm
from gps_core.checkpoint import save_checkpoint
from gps_core.config import to_dict
from gps_core.policies import LinearGaussianPolicy, smoothed_noise
from gps_core.samples import SampleBatch


@dataclass
class Metrics:
    experiment: str
    agent: str
    iterations: list[dict] = field(default_factory=list)
    solved_at_iteration: int | None = None

    def write(self, path: Path) -> None:
        tmp = path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(path)


def sample_condition(agent: Agent, exp: Experiment, m: int, policy: LinearGaussianPolicy, n: int,
                     rng: np.random.Generator) -> SampleBatch:
    """n trials of condition m, each with fresh smoothed noise folded into k."""
    T, dU = policy.T, policy.dU
    sigma = exp.config.algorithm.init.smooth_noise_sigma
    trials = [agent.run_trial(exp.conditions[m], policy.K, policy.fold_noise(smoothed_noise(rng, T, dU, sigma)))
              for _ in range(n)]
    return SampleBatch(np.stack([t.X for t in trials]), np.stack([t.U for t in trials]))


def train(exp: Experiment, agent: Agent, agent_name: str, out: Path, iterations: int,
          progress: Callable[[str], None] = print) -> Metrics:
    cfg = exp.config
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    costs = exp.costs()
    algorithm = TrajOptAlgorithm(cfg.algorithm, cfg.dynamics, cfg.traj_opt, costs, exp.init_policies(), rng)
    metrics = Metrics(cfg.experiment, agent_name)
    threshold = cfg.algorithm.success_distance
    progress(f'{cfg.experiment}: {len(exp.conditions)} conditions, T={cfg.T}, dX={exp.dX}, dU={exp.dU}, '
             f'{cfg.samples_per_condition} samples/condition, {iterations} iterations -> {out}')
    for it in range(1, iterations + 1):
        t0 = time.perf_counter()
        batches = [sample_condition(agent, exp, m, pol, cfg.samples_per_condition, rng)
                   for m, pol in enumerate(algorithm.policies)]
        sampling = time.perf_counter() - t0
        dist = [float(np.mean(exp.final_distance(b.X))) for b in batches]
        cost = float(np.mean([costs[m].eval(b.X, b.U).l.sum(axis=1).mean() for m, b in enumerate(batches)]))
        stats = algorithm.iteration(batches)
        record = {'iteration': it, 'samples': sum(b.N for b in batches), 'mean_cost': cost,
                  'final_ee_distance': dist,
                  'seconds': {'sampling': sampling, **stats.seconds},
                  'kl': stats.kl, 'kl_step': stats.kl_step, 'eta': stats.eta, 'step_mult': stats.step_mult}
        metrics.iterations.append(record)
        solved = all(d <= threshold for d in dist)
        if solved and metrics.solved_at_iteration is None:
            metrics.solved_at_iteration = it
        save_checkpoint(out / 'checkpoints', it, algorithm.policies,
                        {'eta': stats.eta, 'step_mult': stats.step_mult}, to_dict(cfg))
        metrics.write(out / 'metrics.json')
        write_plot(metrics.iterations, threshold, out / 'training.png')
        progress(f'iter {it:2d}/{iterations}  cost {cost:9.2f}  final distance [m] '
                 + ' '.join(f'{d:.3f}' for d in dist) + ('  SOLVED' if solved else '')
                 + f'  (sampling {sampling:.1f} s, dynamics {stats.seconds["dynamics"]:.2f} s, '
                   f'traj_opt {stats.seconds["traj_opt"]:.2f} s)')
    return metrics
