"""The GPS training loop: sample every condition with its controller, update, report.

Agent-agnostic: the in-process PyBullet agent and the ROS 2 action client both plug in here, so
both produce the same metrics.json, checkpoints and plot. The algorithm is the YAML's
algorithm.type: traj_opt (local controllers only), mdgps or badmm (plus a neural-network policy,
evaluated alone and noiseless on the training and test conditions every iteration, and exported
with the checkpoints).
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
from gps_agent_ros.policy_rollouts import policy_final_distances, sample_network
from gps_agent_ros.report import write_plot
from gps_controllers.trial_spec import LinearGaussianSpec
from gps_core.algorithms import make_algorithm
from gps_core.checkpoint import save_checkpoint
from gps_core.config import to_dict
from gps_core.policies import LinearGaussianPolicy, smoothed_noise
from gps_core.samples import SampleBatch


@dataclass
class Metrics:
    experiment: str
    agent: str
    iterations: list[dict] = field(default_factory=list)
    solved_at_iteration: int | None = None         # all training conditions' samples within success_distance
    policy_solved_at_iteration: int | None = None  # the network alone on all training conditions (mdgps, badmm)
    policy_evaluation_agent: str | None = None     # where the network's trials ran: 'ros' | 'inprocess'

    def write(self, path: Path) -> None:
        tmp = path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(path)


def sample_condition(agent: Agent, exp: Experiment, m: int, policy: LinearGaussianPolicy, n: int,
                     rng: np.random.Generator) -> SampleBatch:
    """n trials of condition m, each with fresh smoothed noise folded into k."""
    T, dU = policy.T, policy.dU
    sigma = exp.config.algorithm.init.smooth_noise_sigma
    trials = [agent.run(exp.conditions[m], LinearGaussianSpec(policy.K, policy.fold_noise(smoothed_noise(rng, T, dU, sigma))))
              for _ in range(n)]
    return SampleBatch(np.stack([t.X for t in trials]), np.stack([t.U for t in trials]))


def train(exp: Experiment, agent: Agent, agent_name: str, out: Path, iterations: int,
          progress: Callable[[str], None] = print,
          on_iteration: Callable[[dict], None] | None = None) -> Metrics:
    cfg = exp.config
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    costs = exp.costs()
    algorithm = make_algorithm(cfg, costs, exp.init_policies(), rng)
    network = getattr(algorithm, 'network', None)
    if network is not None:
        import torch
        # minibatches of a small MLP: one thread measured ~6x faster than two (thread hand-off dominates)
        torch.set_num_threads(1)
    metrics = Metrics(cfg.experiment, agent_name, policy_evaluation_agent=agent_name if network is not None else None)
    threshold = cfg.algorithm.success_distance
    progress(f'{cfg.experiment} ({cfg.algorithm.type}): {len(exp.conditions)} conditions'
             f'{f" + {len(exp.test_conditions)} test" if network is not None else ""}, T={cfg.T}, dX={exp.dX}, '
             f'dU={exp.dU}, {cfg.samples_per_condition} samples/condition, {iterations} iterations -> {out}')
    for it in range(1, iterations + 1):
        t0 = time.perf_counter()
        on_policy = getattr(algorithm, 'samples_from_network', False)
        batches = [sample_network(agent, exp, m, network, cfg.samples_per_condition, rng) if on_policy
                   else sample_condition(agent, exp, m, pol, cfg.samples_per_condition, rng)
                   for m, pol in enumerate(algorithm.policies)]
        sampling = time.perf_counter() - t0
        dist = [float(np.mean(exp.final_distance(b.X))) for b in batches]
        cost = float(np.mean([costs[m].eval(b.X, b.U).l.sum(axis=1).mean() for m, b in enumerate(batches)]))
        stats = algorithm.iteration(batches)
        record = {'iteration': it, 'samples': sum(b.N for b in batches), 'mean_cost': cost,
                  'final_ee_distance': dist,
                  'seconds': {'sampling': sampling, **stats.seconds},
                  'kl': stats.kl, 'kl_step': stats.kl_step, 'eta': stats.eta, 'step_mult': stats.step_mult,
                  **stats.extra}
        solved = all(d <= threshold for d in dist)
        if solved and metrics.solved_at_iteration is None:
            metrics.solved_at_iteration = it
        line = ''
        if network is not None:
            line = _evaluate_policy(agent, exp, network, record, threshold)
            if all(d <= threshold for d in record['policy_final_ee_distance']) and metrics.policy_solved_at_iteration is None:
                metrics.policy_solved_at_iteration = it
            from gps_core.policies.export import export_policy   # torch: only for network algorithms
            export_policy(network, out / 'checkpoints', f'policy_iteration_{it:03d}')
        metrics.iterations.append(record)
        save_checkpoint(out / 'checkpoints', it, algorithm.policies,
                        {'eta': stats.eta, 'step_mult': stats.step_mult}, to_dict(cfg))
        metrics.write(out / 'metrics.json')
        if on_iteration is not None:
            on_iteration(record)
        write_plot(metrics.iterations, threshold, out / 'training.png')
        progress(f'iter {it:2d}/{iterations}  cost {cost:9.2f}  final distance [m] '
                 + ' '.join(f'{d:.3f}' for d in dist) + ('  SOLVED' if solved else '') + line
                 + f'  (sampling {sampling:.1f} s, ' + ', '.join(f'{k} {v:.2f} s' for k, v in stats.seconds.items()) + ')')
    return metrics


def _evaluate_policy(agent: Agent, exp: Experiment, network, record: dict, threshold: float) -> str:
    """Noiseless rollouts of the network alone: adds the policy distances to the record; returns
    a progress-line fragment."""
    t0 = time.perf_counter()
    train_d = policy_final_distances(agent, exp, exp.conditions, network)
    record['policy_final_ee_distance'] = train_d
    line = '  | policy ' + ' '.join(f'{d:.3f}' for d in train_d)
    if exp.test_conditions:
        test_d = policy_final_distances(agent, exp, exp.test_conditions, network)
        record['policy_test_final_ee_distance'] = test_d
        record['policy_test_success_rate'] = float(np.mean([d <= threshold for d in test_d]))
        line += f'  test {sum(d <= threshold for d in test_d)}/{len(test_d)} within {threshold} m'
    record['seconds']['policy_eval'] = time.perf_counter() - t0
    return line
