"""MPC teacher cost on the arm: one window re-solve, and the controller's time per control step, against
the neural-network policy's forward (what the arm runs instead of the teacher once trained).

Size: the UR5e of config/ur5e_reach_mdgps.yaml, dX = 30 (6 joints, 3 end-effector points), dU = 6,
T = 100; windows of H = 5, 10, 20 steps; re-solve every 1, 2, 5 steps. The problem is synthetic but of
the production shape and convexity (random stable time-varying dynamics, a PSD cost with a PD action
block): the solve's work does not depend on the values.

  solve_us             one HorizonSolver.solve (H backward steps), median
  solve_per_step_us    solve_us / H
  command_us[r]        MPCController.command averaged over a trial re-solving every r steps
  network_us           NetworkPolicyController.command of the (64, 64) tanh MLP of ur5e_reach_mdgps
  build_ms             MPCController construction (problem checks and the augmented arrays), once a trial
Variants are timed in interleaved rounds (median of rounds) so a loaded machine slows all alike.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mpc.py [--rounds 7]
The last line of stdout is JSON; human-readable lines go to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gps_controllers.mpc_controller import MPCController, MPCSpec  # noqa: E402
from gps_controllers.network_controller import NetworkPolicyController  # noqa: E402
from gps_core.policies.nn_policy import PolicyNetwork  # noqa: E402
from gps_core.policies.spec import policy_spec  # noqa: E402
from gps_core.traj_opt.mpc import HorizonSolver, MPCProblem  # noqa: E402

T, dX, dU = 100, 30, 6
HORIZONS = (5, 10, 20)
REPLANS = (1, 2, 5)


def problem(horizon: int, replan_every: int, rng: np.random.Generator) -> MPCProblem:
    dXU = dX + dU
    Fm = np.concatenate([np.eye(dX) + 0.02 * rng.standard_normal((T, dX, dX)),
                         0.05 * rng.standard_normal((T, dX, dU))], axis=2)
    L = rng.standard_normal((T, dXU, dXU))
    Cm = L @ np.swapaxes(L, 1, 2) / dXU + np.diag([0.0] * dX + [1e-2] * dU)
    return MPCProblem(Fm, 0.01 * rng.standard_normal((T, dX)), Cm, rng.standard_normal((T, dXU)),
                      horizon, replan_every)


def time_per_call(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def trial_command_us(spec: MPCSpec, X: np.ndarray) -> float:
    ctrl = MPCController(spec, T, dX, dU)
    out = np.empty(dU)
    t0 = time.perf_counter()
    for t in range(T):
        ctrl.command(t, X[t], out)
    return (time.perf_counter() - t0) / T * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T, dX))
    problems = {(h, r): problem(h, r, rng) for h in HORIZONS for r in REPLANS if r <= h}
    solvers = {h: HorizonSolver(problems[(h, 1)].Fm, problems[(h, 1)].fv, problems[(h, 1)].Cm,
                                problems[(h, 1)].cv, h) for h in HORIZONS}
    net = PolicyNetwork(dX, dU, (64, 64), 'tanh', torch.Generator().manual_seed(0))
    net_ctrl = NetworkPolicyController(policy_spec(net), T, dX, dU)
    out = np.empty(dU)
    samples: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for h, solver in solvers.items():
            samples.setdefault(f'solve_us[H={h}]', []).append(time_per_call(lambda s=solver: s.solve(40), 200))
        for (h, r), prob in problems.items():
            samples.setdefault(f'command_us[H={h},r={r}]', []).append(
                statistics.median(trial_command_us(MPCSpec(prob), X) for _ in range(3)))
        samples.setdefault('network_us', []).append(
            time_per_call(lambda: net_ctrl.command(40, X[40], out), 2000))
        t0 = time.perf_counter()
        MPCController(MPCSpec(problems[(10, 1)]), T, dX, dU)
        samples.setdefault('build_ms', []).append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        problem(10, 1, np.random.default_rng(1))
        samples.setdefault('problem_check_ms', []).append((time.perf_counter() - t0) * 1e3)
    result = {k: statistics.median(v) for k, v in samples.items()}
    for h in HORIZONS:
        result[f'solve_per_step_us[H={h}]'] = result[f'solve_us[H={h}]'] / h
    for h in HORIZONS:
        result[f'solve_over_network[H={h}]'] = result[f'solve_us[H={h}]'] / result['network_us']
    for k, v in result.items():
        print(f'{k:32s} {v:10.2f}', file=sys.stderr)
    print(json.dumps({'dX': dX, 'dU': dU, 'T': T, **result}))


if __name__ == '__main__':
    main()
