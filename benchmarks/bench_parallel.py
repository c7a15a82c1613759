"""Lockstep sampling throughput: one batch of trials through the node graph with K = 1, 2, 4 arms
against the in-process agent, in one run, on the same requests. Each arm is a sim_node +
controller_node pair, run two ways: as two processes (`graph_kK`, as on a real arm, where the
controller runs beside the driver) and composed in one process (`composed_kK`,
gps_agent_ros.composed_arm: the same nodes and topics, the messages handed over inside the
process).

The batch is what one training iteration samples: config/ur5e_reach.yaml's 4 conditions x
`--samples` samples (default 5 -> 20 trials of T = 100 steps), the initial controllers with each
trial's smoothed noise from its own seed (gps_agent_ros.trainer.trial_rng), sent as one
`run_many` call (the trainer's work queue keeps every arm busy). Each setting first runs a
warm-up batch of K trials; `--repeats` timed batches follow and the best is kept (the
minimum is the least disturbed by other load). Every setting's trials must equal the
in-process ones bit for bit (`identical`). `cores_busy`: CPU seconds of every process of the
setting (the nodes and this one, the trainer) per second of the timed batches; on C cores no
setting can be more than C / cores_busy(K = 1) times faster than K = 1 (`speedup_bound`).

Targets on a 2-core machine: speedup_k2 >= 1.6, speedup_k4 >= 1.8 (trials/s vs K = 1), and the
graph with 2 arms faster than the in-process agent (graph_k2_vs_inprocess > 1); the same ratios
are reported for the composed arms (composed_speedup_k2, ..., composed_k2_vs_inprocess).

    OPENBLAS_NUM_THREADS=1 ROS_DOMAIN_ID=93 python benchmarks/bench_parallel.py [--samples 5]

Human-readable lines on stderr; the last stdout line is JSON. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='bench_parallel_ros_log_'))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from gps_agent_ros.agent import TrialRequest  # noqa: E402
from gps_agent_ros.bringup import Bringup  # noqa: E402
from gps_agent_ros.experiment import Experiment  # noqa: E402
from gps_agent_ros.inprocess_agent import InProcessAgent  # noqa: E402
from gps_agent_ros.ros_agent import RosAgent  # noqa: E402
from gps_agent_ros.trainer import NOISE_CONTROLLER, trial_rng  # noqa: E402
from gps_controllers.trial_spec import LinearGaussianSpec  # noqa: E402
from gps_core.config import load_experiment  # noqa: E402
from gps_core.policies import smoothed_noise  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGETS = {'speedup_k2': 1.6, 'speedup_k4': 1.8, 'graph_k2_vs_inprocess': 1.0,
           'composed_speedup_k2': 1.6, 'composed_speedup_k4': 1.8, 'composed_k2_vs_inprocess': 1.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def requests(exp: Experiment, samples: int, iteration: int) -> list[TrialRequest]:
    cfg = exp.config
    out = []
    for m, pol in enumerate(exp.init_policies()):
        for i in range(samples):
            eps = smoothed_noise(trial_rng(cfg.seed, iteration, NOISE_CONTROLLER, m, i), cfg.T, exp.dU,
                                 cfg.algorithm.init.smooth_noise_sigma)
            out.append(TrialRequest(exp.conditions[m], LinearGaussianSpec(pol.K, pol.fold_noise(eps)), i))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, all threads) of this process and of `pids` so far (Linux /proc)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    for pid in pids:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    return total


def timed(agent, batch: list[TrialRequest], repeats: int, pids: list[int] = ()) -> tuple[float, float, list]:
    """(best seconds of `repeats` batches, cores busy over all of them, the last batch's trials)."""
    best, trials, wall, cpu = float('inf'), [], 0.0, cpu_seconds(list(pids))
    for _ in range(repeats):
        start = time.perf_counter()
        trials = agent.run_many(batch)
        seconds = time.perf_counter() - start
        best, wall = min(best, seconds), wall + seconds
    return best, (cpu_seconds(list(pids)) - cpu) / wall, trials


def graph(cfg, exp: Experiment, k: int, batch, repeats: int, log_dir: Path,
          composed: bool = False) -> tuple[float, float, list]:
    layout = 'composed' if composed else 'graph'
    namespaces = [f'bench_{layout}{k}_{i}_{os.getpid()}' for i in range(k)]
    bringups = {ns: Bringup(cfg, ns, 'lockstep', log_dir / ns, composed=composed).start() for ns in namespaces}
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f'bench_parallel_{os.getpid()}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        agent = RosAgent(node, executor, exp, namespaces, arm_health=lambda ns: bringups[ns].dead())
        agent.run_many(requests(exp, 1, 99)[:k])                     # warm-up: every arm once
        return timed(agent, batch, repeats, [p.pid for b in bringups.values() for p in b.procs.values()])
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        for b in bringups.values():
            b.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--experiment', type=Path, default=REPO / 'config' / 'ur5e_reach.yaml')
    p.add_argument('--samples', type=int, default=5, help='samples per condition (4 conditions)')
    p.add_argument('--repeats', type=int, default=2, help='timed batches per setting (best kept)')
    p.add_argument('--arms', type=int, nargs='+', default=[1, 2, 4])
    args = p.parse_args()
    cfg = load_experiment(args.experiment)
    exp = Experiment(cfg)
    batch = requests(exp, args.samples, 1)
    log_dir = Path(tempfile.mkdtemp(prefix='bench_parallel_'))
    log(f'{len(batch)} trials of T={cfg.T} per batch; node logs in {log_dir}; '
        f'ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}, {os.cpu_count()} CPUs')

    local = InProcessAgent(exp)
    try:
        local.run_many(batch[:1])
        seconds, busy, reference = timed(local, batch, args.repeats)
    finally:
        local.close()
    result: dict = {'trials': len(batch), 'T': cfg.T, 'cpus': os.cpu_count(),
                    'inprocess': {'seconds': seconds, 'trials_per_s': len(batch) / seconds, 'cores_busy': busy}}
    log(f'in-process: {seconds:.2f} s, {len(batch) / seconds:.2f} trials/s, {busy:.2f} cores busy')
    for layout in ('graph', 'composed'):
        for k in args.arms:
            seconds, busy, trials = graph(cfg, exp, k, batch, args.repeats, log_dir, composed=layout == 'composed')
            same = all(np.array_equal(a.X, b.X) and np.array_equal(a.U, b.U) for a, b in zip(trials, reference))
            result[f'{layout}_k{k}'] = {
                'seconds': seconds, 'trials_per_s': len(batch) / seconds, 'cores_busy': busy, 'identical': same,
                'trials_per_arm': {a: sum(t.arm == a for t in trials) for a in sorted({t.arm for t in trials})}}
            log(f'{layout}, {k} arm(s): {seconds:.2f} s, {len(batch) / seconds:.2f} trials/s, {busy:.2f} cores busy, '
                f'identical to in-process: {same}')
    rate = {key: v['trials_per_s'] for key, v in result.items() if isinstance(v, dict)}
    for layout, prefix in (('graph', ''), ('composed', 'composed_')):
        if f'{layout}_k1' not in rate:
            continue
        for k in (2, 4):
            if f'{layout}_k{k}' in rate:
                result[f'{prefix}speedup_k{k}'] = rate[f'{layout}_k{k}'] / rate[f'{layout}_k1']
        result[f'{prefix}speedup_bound'] = os.cpu_count() / result[f'{layout}_k1']['cores_busy']
        if f'{layout}_k2' in rate:
            result[f'{layout}_k2_vs_inprocess'] = rate[f'{layout}_k2'] / rate['inprocess']
    result['targets'] = TARGETS
    result['targets_met'] = {name: result[name] >= bound for name, bound in TARGETS.items() if name in result}
    log('targets: ' + ', '.join(f"{n} {result[n]:.2f} ({'met' if ok else 'NOT met'}, >= {TARGETS[n]})"
                                for n, ok in result['targets_met'].items()))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
