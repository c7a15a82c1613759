"""Per-condition GPS update time: dynamics prior update + fit, and the KL trajectory update.

Size: a 7-joint arm (KUKA iiwa from pybullet_data) with 3 end-effector points: dX = 32, dU = 7,
T = 100, N = 5 samples, one condition, the prior's window full (20 trajectories). Samples are
real: 4 GPS iterations are run first so the controller, the window and eta are what an update
sees in training. Each repeat runs the production code (TrajOptAlgorithm.iteration) on a deep
copy of that state; the median over repeats is reported.

Baseline, measured in the same run on the same data: a per-time-step implementation with the
structure of the 2017 reference code (GMM responsibilities and cluster factorizations recomputed
for every step, one regression per step, uncapped EM, a x10 bracketing eta search, per-step KL).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_update.py [--repeats 15]
The last line is JSON with dynamics_ms, traj_opt_ms, total_ms and the baseline ratios.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402
import pybullet_data  # noqa: E402
import yaml  # noqa: E402

from baseline_update import baseline_dynamics, baseline_traj_opt  # noqa: E402
from gps_agent_ros.experiment import Experiment  # noqa: E402
from gps_agent_ros.inprocess_agent import InProcessAgent  # noqa: E402
from gps_agent_ros.trainer import sample_condition  # noqa: E402
from gps_core.algorithms import TrajOptAlgorithm  # noqa: E402
from gps_core.config import load_experiment  # noqa: E402

IIWA = {
    'experiment': 'bench_iiwa', 'seed': 0, 'T': 100, 'dt': 0.05, 'samples_per_condition': 5, 'iterations': 5,
    'robot': {'urdf': os.path.join(pybullet_data.getDataPath(), 'kuka_iiwa', 'model.urdf'),
              'base_link': 'lbr_iiwa_link_0', 'ee_link': 'lbr_iiwa_link_7',
              'joints': [f'lbr_iiwa_joint_{i}' for i in range(1, 8)],
              'ee_points': [[0.0, 0.0, 0.0], [0.05, 0.0, 0.05], [-0.05, 0.0, 0.05]]},
    'conditions': [{'initial_joint_positions': [0.0, 0.6, 0.0, -1.2, 0.0, 0.8, 0.0],
                    'target_position': [0.55, 0.2, 0.55]}],
    'sim': {'substeps': 10, 'armature': 0.1, 'damping': 2.0},
    'algorithm': {'base_kl_step': 0.5, 'max_step_mult': 3.0,
                  'init': {'kp': 20.0, 'kd': 5.0, 'init_var': 4.0}},
}


def prepare(warmup: int) -> tuple[TrajOptAlgorithm, object]:
    """Run `warmup` GPS iterations on the simulated iiwa, then sample the batch to time."""
    path = Path(tempfile.mkdtemp()) / 'bench_iiwa.yaml'
    path.write_text(yaml.safe_dump(IIWA))
    cfg = load_experiment(path)
    exp = Experiment(cfg)
    assert exp.dX == 32 and exp.dU == 7, (exp.dX, exp.dU)
    agent = InProcessAgent(exp)
    rng = np.random.default_rng(cfg.seed)
    alg = TrajOptAlgorithm(cfg.algorithm, cfg.dynamics, cfg.traj_opt, exp.costs(), exp.init_policies(), rng)
    for _ in range(warmup):
        alg.iteration([sample_condition(agent, exp, 0, alg.policies[0], cfg.samples_per_condition, rng)])
    batch = sample_condition(agent, exp, 0, alg.policies[0], cfg.samples_per_condition, rng)
    agent.close()
    return alg, batch


def time_production(alg: TrajOptAlgorithm, batch, repeats: int) -> tuple[list[float], list[float], list[int]]:
    dyn, traj, eta_its = [], [], []
    for _ in range(repeats):
        a = copy.deepcopy(alg)
        stats = a.iteration([batch])
        dyn.append(stats.seconds['dynamics'] * 1e3)
        traj.append(stats.seconds['traj_opt'] * 1e3)
        eta_its.append(stats.eta_iterations[0])
    return dyn, traj, eta_its


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--baseline-repeats', type=int, default=3)
    p.add_argument('--warmup-iterations', type=int, default=4)
    args = p.parse_args()
    alg, batch = prepare(args.warmup_iterations)
    dyn, traj, eta_its = time_production(alg, batch, args.repeats)
    base_dyn = [baseline_dynamics(copy.deepcopy(alg), batch)[0] * 1e3 for _ in range(args.baseline_repeats)]
    base_traj = [baseline_traj_opt(copy.deepcopy(alg), batch)[0] * 1e3 for _ in range(args.baseline_repeats)]
    result = {
        'dX': batch.dX, 'dU': batch.dU, 'T': batch.T, 'N': batch.N, 'repeats': args.repeats,
        'openblas_threads': os.environ.get('OPENBLAS_NUM_THREADS'),
        'dynamics_ms': statistics.median(dyn), 'traj_opt_ms': statistics.median(traj),
        'total_ms': statistics.median([a + b for a, b in zip(dyn, traj)]),
        'eta_iterations': statistics.median(eta_its),
        'baseline_dynamics_ms': statistics.median(base_dyn), 'baseline_traj_opt_ms': statistics.median(base_traj),
    }
    result['baseline_total_ms'] = result['baseline_dynamics_ms'] + result['baseline_traj_opt_ms']
    result['speedup_dynamics'] = result['baseline_dynamics_ms'] / result['dynamics_ms']
    result['speedup_traj_opt'] = result['baseline_traj_opt_ms'] / result['traj_opt_ms']
    result['speedup_total'] = result['baseline_total_ms'] / result['total_ms']
    print(f"dynamics {result['dynamics_ms']:.1f} ms (baseline {result['baseline_dynamics_ms']:.0f} ms, "
          f"x{result['speedup_dynamics']:.1f}); traj_opt {result['traj_opt_ms']:.1f} ms "
          f"(baseline {result['baseline_traj_opt_ms']:.0f} ms, x{result['speedup_traj_opt']:.1f}); "
          f"total {result['total_ms']:.1f} ms (target <= 50, must <= 150)", file=sys.stderr)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}))


if __name__ == '__main__':
    main()
