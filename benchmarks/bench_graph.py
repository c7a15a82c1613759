"""The node graph's speed: the controller loop free-running at 20 Hz and 500 Hz (linear-Gaussian
controller, and the MDGPS network policy at 500 Hz), and lockstep trials through the graph
against the in-process agent (linear-Gaussian and network policy).

(a) Free-running loop. sim_node (mode 'realtime', publish_rate_hz = the loop rate) and
controller_node run as separate processes (Bringup); this process sends a RunTrial goal with a
zero-gain controller (K = 0, k = 0: the arm only holds itself up under gravity compensation) of
`--steps-500` steps at dt = 2 ms and `--steps-20` steps at dt = 50 ms. Everything is read from
the RunTrial result (conversions.result_timing):
  tick period      stamps[t] - stamps[t-1] between two measured ticks (the sim's state stamps),
  latency          state stamp -> command published by controller_node (node clocks, one host),
  compute          encode + K x + k + safety filter inside the joint_states callback,
  on time          a tick whose state was received (not a skipped step) and whose command was
                   published within one period of its state's stamp: latency <= dt, i.e. before
                   the next state is due (`on_time_share`). `period_ok_share` is the share of
                   periods within dt +- 10 % (the sim's timer jitter, reported, not a target).
Statistics are over ticks 1.. of the trial; tick 0 (the first state after the reset, possibly
received before the reset response) is reported apart as first_tick_latency_ms.
`policy_500hz` runs the same loop with the network of config/ur5e_reach_mdgps.yaml (its
architecture: tanh MLP 64-64 on the 30-d state, float64; weights drawn at random, the output
layer scaled down so the arm only holds itself: the compute is that of the trained network).
Targets at 500 Hz (both controllers): p99 latency <= 2 ms and on_time_share >= 99.5 %.

(b) Lockstep trial. The same graph in 'lockstep' mode (sim time, one physics period per
command); T = 100 steps of config/ur5e_reach.yaml, condition 0, the initial controller with
smoothed exploration noise folded into k (as the trainer samples). Each of `--trials`
controllers runs through the graph (RosAgent.run_trial, what gps-train --agent ros does) and
in-process (InProcessAgent.run_trial), interleaved so that both see the same machine load; the
medians of the wall times and their ratio are reported, whether every graph trial equals its
in-process twin bit for bit, and the CPU time the two node processes used per graph trial.
`lockstep_policy` does the same with the network policy (the trial's noise in the goal, as
on-policy sampling sends it). Target: graph / in-process <= 1.5.

    OPENBLAS_NUM_THREADS=1 ROS_DOMAIN_ID=91 python benchmarks/bench_graph.py [--trials 15]

Human-readable lines on stderr; the last stdout line is JSON with every number and whether each
target was met. Run it on an idle machine: the nodes share this machine's two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='bench_graph_ros_log_'))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from gps_agent_ros.agent import run_one  # noqa: E402
from gps_agent_ros.bringup import Bringup  # noqa: E402
from gps_agent_ros.conversions import result_timing, run_trial_goal  # noqa: E402
from gps_agent_ros.experiment import Condition, Experiment  # noqa: E402
from gps_agent_ros.inprocess_agent import InProcessAgent  # noqa: E402
from gps_agent_ros.ros_agent import RosAgent  # noqa: E402
from gps_controllers.trial_spec import ControllerSpec, LinearGaussianSpec, NetworkSpec, TrialSpec  # noqa: E402
from gps_core.config import load_experiment  # noqa: E402
from gps_core.policies import smoothed_noise  # noqa: E402
from gps_core.policies.spec import policy_spec  # noqa: E402
from gps_interfaces.action import RunTrial  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_LATENCY_P99_MS = 2.0      # at 500 Hz
TARGET_ON_TIME_SHARE = 0.995     # at 500 Hz
TARGET_GRAPH_RATIO = 1.5         # lockstep graph trial / in-process trial
PERIOD_TOLERANCE = 0.10          # period_ok_share: |period - dt| <= 10 % of dt


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Client:
    """This process's side of the graph: a node, its executor and a RosAgent (handshaken)."""

    def __init__(self, exp: Experiment, bringup: Bringup):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f'bench_graph_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.agent = RosAgent(self.node, self.executor, exp, bringup.namespace, arm_health=lambda _ns: bringup.dead())

    def run_goal(self, goal: RunTrial.Goal, timeout_s: float) -> RunTrial.Result:
        future = self.agent.arms[0].client.send_goal_async(goal)
        result_future = _wait(self.executor, future, timeout_s).get_result_async()
        result = _wait(self.executor, result_future, timeout_s).result
        if result.status != RunTrial.Result.STATUS_COMPLETED:
            raise RuntimeError(f'trial {goal.condition!r} ended with status {result.status}: {result.reason}')
        return result

    def close(self) -> None:
        self.agent.close()
        self.node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


def _wait(executor, future, timeout_s: float):
    end = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > end:
            raise RuntimeError(f'no answer within {timeout_s:.0f} s')
        executor.spin_once(timeout_sec=0.01)
    return future.result()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return float('nan')


def _ms(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=float) * 1e3
    if values.size == 0:
        return {'p50': float('nan'), 'p99': float('nan'), 'max': float('nan')}
    return {'p50': float(np.median(values)), 'p99': float(np.percentile(values, 99)), 'max': float(values.max())}


def loop_stats(results: list[RunTrial.Result], dt: float) -> dict:
    """Tick period, latency, compute time and on-time share of free-running trials, over ticks
    1.. of each trial. Tick 0 runs on the first state after the reset, which may have been
    received (and stamped) before the reset response came back: its latency includes the reset
    handshake and is reported apart (first_tick_latency_ms, the worst over the trials)."""
    periods, latencies, computes, on_time, period_ok, ticks, skipped = [], [], [], 0, 0, 0, 0
    first = []
    for result in results:
        stamps, lat, comp = result_timing(result)
        first.append(lat[0])
        stamps, lat, comp = stamps[1:], lat[1:], comp[1:]
        measured = np.isfinite(lat)               # skipped steps (no state of their own) are NaN
        both = measured[1:] & measured[:-1]
        p = np.diff(stamps)[both]
        periods.append(p)
        latencies.append(lat[measured])
        computes.append(comp[measured])
        ticks += lat.size
        skipped += int((~measured).sum())
        on_time += int((lat[measured] <= dt).sum())
        period_ok += int((np.abs(p - dt) <= PERIOD_TOLERANCE * dt).sum())
    periods_all = np.concatenate(periods)
    stamps_span = sum(float(np.ptp(result_timing(r)[0][1:])) for r in results)
    return {
        'dt_ms': dt * 1e3, 'ticks': ticks, 'skipped_ticks': skipped,
        'first_tick_latency_ms': 1e3 * float(np.nanmax(first)),
        'achieved_rate_hz': (ticks - len(results)) / stamps_span if stamps_span > 0 else float('nan'),
        'period_ms': _ms(periods_all),
        'latency_ms': _ms(np.concatenate(latencies)),
        'compute_ms': _ms(np.concatenate(computes)),
        'on_time_share': on_time / ticks,
        'period_ok_share': period_ok / max(1, periods_all.size),
    }


def mdgps_network(exp: Experiment, output_scale: float):
    """A network with the architecture of config/ur5e_reach_mdgps.yaml, normalization fitted on
    states near the start pose; the output layer scaled by output_scale."""
    import torch
    from gps_core.policies.nn_policy import PolicyNetwork
    policy = load_experiment(REPO / 'config' / 'ur5e_reach_mdgps.yaml').policy
    net = PolicyNetwork(exp.dX, exp.dU, policy.hidden, policy.activation, torch.Generator().manual_seed(0))
    cond, rng = exp.conditions[0], np.random.default_rng(0)
    net.fit_normalization(np.stack([exp.encoder.encode(cond.q0 + 0.05 * rng.standard_normal(exp.dU),
                                                       0.1 * rng.standard_normal(exp.dU), cond.targets)
                                    for _ in range(200)]))
    with torch.no_grad():
        net.net[-1].weight.mul_(output_scale)
        net.net[-1].bias.mul_(output_scale)
    return net


def free_running(cfg, exp: Experiment, rate_hz: float, steps: int, trials: int, log_dir: Path,
                 controller: ControllerSpec | None = None, label: str = '') -> dict:
    """Trials of `steps` steps at dt = 1/rate_hz against sim_node free-running at rate_hz;
    controller: the default holds zero torque (K = 0, k = 0)."""
    dt = 1.0 / rate_hz
    ns = f'bench_rt{int(rate_hz)}_{os.getpid()}'
    if controller is None:
        controller = LinearGaussianSpec(np.zeros((steps, exp.dU, exp.dX)), np.zeros((steps, exp.dU)))
    cond = exp.conditions[0]
    goal = run_trial_goal(TrialSpec('bench/free_running', tuple(cfg.robot.joints), cond.q0, cond.targets,
                                    steps, dt, controller))
    with Bringup(cfg, ns, 'realtime', log_dir / f'realtime_{int(rate_hz)}hz{label}',
                 parameters={'sim_node': {'publish_rate_hz': float(rate_hz)}}) as bringup:
        client = Client(exp, bringup)
        try:
            results = [client.run_goal(goal, 30.0 + 3.0 * steps * dt) for _ in range(trials)]
        finally:
            client.close()
    stats = loop_stats(results, dt)
    log(f"{rate_hz:g} Hz free-running{label}, {stats['ticks']} ticks ({stats['skipped_ticks']} skipped), "
        f"{stats['achieved_rate_hz']:.1f} Hz achieved: period p50/p99/max "
        f"{stats['period_ms']['p50']:.3f}/{stats['period_ms']['p99']:.3f}/{stats['period_ms']['max']:.3f} ms; "
        f"latency p50/p99/max {stats['latency_ms']['p50']:.3f}/{stats['latency_ms']['p99']:.3f}/"
        f"{stats['latency_ms']['max']:.3f} ms; compute p50/p99 {stats['compute_ms']['p50']:.3f}/"
        f"{stats['compute_ms']['p99']:.3f} ms; on time {100 * stats['on_time_share']:.2f} % "
        f"(periods within +-10 %: {100 * stats['period_ok_share']:.2f} %); first tick latency "
        f"{stats['first_tick_latency_ms']:.2f} ms")
    return stats


def lockstep_vs_inprocess(cfg, exp: Experiment, controllers: list[ControllerSpec], log_dir: Path,
                          label: str) -> dict:
    """Each controller through the graph (RosAgent.run, what gps-train --agent ros does) and
    in-process (InProcessAgent.run), interleaved; the first pair warms both paths up."""
    trials = len(controllers) - 1
    cond: Condition = exp.conditions[0]
    graph_s, inproc_s, differing = [], [], []
    ns = f'bench_lockstep_{label}_{os.getpid()}'
    local = InProcessAgent(exp)
    try:
        with Bringup(cfg, ns, 'lockstep', log_dir / f'lockstep_{label}') as bringup:
            client = Client(exp, bringup)
            try:
                cpu0 = {}
                for i, ctrl in enumerate(controllers):
                    if i == 1:
                        cpu0 = {name: _cpu_s(proc.pid) for name, proc in bringup.procs.items()}
                    start = time.perf_counter()
                    via_graph = run_one(client.agent, cond, ctrl)
                    t_graph = time.perf_counter() - start
                    start = time.perf_counter()
                    direct = local.run(cond, ctrl)
                    t_local = time.perf_counter() - start
                    if not (np.array_equal(via_graph.X, direct.X) and np.array_equal(via_graph.U, direct.U)):
                        differing.append(i)
                        rows = np.flatnonzero(np.any(via_graph.X != direct.X, axis=1))
                        log(f'trial {i}: the graph sample differs from the in-process one from step '
                            f'{rows[0] if rows.size else "?"} on (max |dX| {np.abs(via_graph.X - direct.X).max():.3g})')
                    if i > 0:
                        graph_s.append(t_graph)
                        inproc_s.append(t_local)
                cpu = {name: 1e3 * (_cpu_s(proc.pid) - cpu0[name]) / trials for name, proc in bringup.procs.items()}
            finally:
                client.close()
    finally:
        local.close()
    T = cfg.T
    out = {
        'T': T, 'trials': trials,
        'graph_trial_ms': 1e3 * statistics.median(graph_s),
        'inprocess_trial_ms': 1e3 * statistics.median(inproc_s),
        'graph_total_s': sum(graph_s), 'inprocess_total_s': sum(inproc_s),
        'identical_samples': not differing, 'differing_trials': differing,
        'node_cpu_ms_per_trial': cpu,
    }
    out['ratio'] = out['graph_trial_ms'] / out['inprocess_trial_ms']
    out['graph_step_overhead_ms'] = (out['graph_trial_ms'] - out['inprocess_trial_ms']) / T
    log(f"lockstep {label} T={T}: graph {out['graph_trial_ms']:.1f} ms, in-process {out['inprocess_trial_ms']:.1f} ms "
        f"per trial (medians of {trials}), ratio {out['ratio']:.2f} (target <= {TARGET_GRAPH_RATIO}); "
        f"{out['graph_step_overhead_ms']:.3f} ms extra per step; samples identical: {not differing}; node CPU per "
        f"trial: " + ', '.join(f'{name} {ms:.0f} ms' for name, ms in cpu.items()))
    return out


def lg_controllers(cfg, exp: Experiment, n: int) -> list[ControllerSpec]:
    """The initial controller with fresh smoothed noise folded into k (as the trainer samples)."""
    pol, rng = exp.init_policies()[0], np.random.default_rng(cfg.seed)
    sigma = cfg.algorithm.init.smooth_noise_sigma
    return [LinearGaussianSpec(pol.K, pol.fold_noise(smoothed_noise(rng, pol.T, pol.dU, sigma))) for _ in range(n)]


def policy_controllers(cfg, exp: Experiment, n: int) -> list[ControllerSpec]:
    """The MDGPS network with fresh smoothed noise per trial (as on-policy sampling sends it)."""
    spec, rng = policy_spec(mdgps_network(exp, 0.2)), np.random.default_rng(cfg.seed)
    sigma = cfg.algorithm.init.smooth_noise_sigma
    return [NetworkSpec(spec, 0.3 * smoothed_noise(rng, cfg.T, exp.dU, sigma)) for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--experiment', type=Path, default=REPO / 'config' / 'ur5e_reach.yaml')
    p.add_argument('--trials', type=int, default=15, help='lockstep: trials per agent (after one warm-up each)')
    p.add_argument('--steps-500', type=int, default=1000, help='free-running 500 Hz trial length [steps]')
    p.add_argument('--steps-20', type=int, default=100, help='free-running 20 Hz trial length [steps]')
    p.add_argument('--rt-trials', type=int, default=1, help='free-running trials per rate (pooled)')
    p.add_argument('--skip-realtime', action='store_true')
    p.add_argument('--skip-lockstep', action='store_true')
    p.add_argument('--log-dir', type=Path, default=None, help='node logs (default: a temporary directory)')
    args = p.parse_args()
    cfg = load_experiment(args.experiment)
    exp = Experiment(cfg)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix='bench_graph_'))
    log(f'node logs in {log_dir}; ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}')

    result: dict = {'experiment': cfg.experiment, 'openblas_threads': os.environ.get('OPENBLAS_NUM_THREADS'),
                    'cpus': os.cpu_count()}
    targets: dict[str, bool] = {}
    if not args.skip_realtime:
        result['free_running_20hz'] = free_running(cfg, exp, 20.0, args.steps_20, args.rt_trials, log_dir)
        fast = free_running(cfg, exp, 500.0, args.steps_500, args.rt_trials, log_dir)
        result['free_running_500hz'] = fast
        targets['latency_p99_500hz_le_2ms'] = fast['latency_ms']['p99'] <= TARGET_LATENCY_P99_MS
        targets['on_time_500hz_ge_99_5pct'] = fast['on_time_share'] >= TARGET_ON_TIME_SHARE
        net = mdgps_network(exp, 0.01)
        pol = free_running(cfg, exp, 500.0, args.steps_500, args.rt_trials, log_dir,
                           NetworkSpec(policy_spec(net)), label=' policy')
        result['policy_500hz'] = pol
        targets['policy_latency_p99_500hz_le_2ms'] = pol['latency_ms']['p99'] <= TARGET_LATENCY_P99_MS
        targets['policy_on_time_500hz_ge_99_5pct'] = pol['on_time_share'] >= TARGET_ON_TIME_SHARE
    if not args.skip_lockstep:
        lock = lockstep_vs_inprocess(cfg, exp, lg_controllers(cfg, exp, args.trials + 1), log_dir, 'lg')
        result['lockstep'] = lock
        targets['lockstep_ratio_le_1_5'] = lock['ratio'] <= TARGET_GRAPH_RATIO
        lock = lockstep_vs_inprocess(cfg, exp, policy_controllers(cfg, exp, args.trials + 1), log_dir, 'policy')
        result['lockstep_policy'] = lock
        targets['lockstep_policy_ratio_le_1_5'] = lock['ratio'] <= TARGET_GRAPH_RATIO
    result['targets'] = {'latency_p99_500hz_ms': TARGET_LATENCY_P99_MS, 'on_time_share_500hz': TARGET_ON_TIME_SHARE,
                         'lockstep_ratio': TARGET_GRAPH_RATIO}
    result['targets_met'] = targets
    log('targets: ' + ', '.join(f"{k} {'met' if v else 'NOT met'}" for k, v in targets.items()))

    def rounded(value):
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return value
    print(json.dumps(rounded(result)))


if __name__ == '__main__':
    main()
