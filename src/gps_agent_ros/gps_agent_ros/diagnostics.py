"""diagnostic_msgs for /diagnostics (rqt_robot_monitor, diagnostic_aggregator, Foxglove's
Diagnostics panel) and the trainer's stamped per-iteration record (gps/metrics).

Plain collectors (no ROS; time passed in) gather what a node must report; the builders turn them
into messages. A status is named '<namespace>/<node>: <what>', the namespace without its leading
slash ('arm0/controller_node: control loop'; in the root namespace 'controller_node: control
loop'): rqt_robot_monitor and diagnostic_aggregator split names at '/', so each arm is one group.
hardware_id is the arm's namespace ('/' for the root).

Levels and the rules behind them (dt: the trial's control period):

controller_node: control loop   the last trial's timing, over its measured steps
    ERROR  command latency p99 >= dt (commands computed from states a whole period old), or more
           than SKIPPED_ERROR of the steps skipped
    WARN   a step skipped (no joint_states opened it: the sample holds an interpolated state),
           latency p99 > LATENCY_WARN * dt, or loop period p99 > PERIOD_WARN * dt
    OK     otherwise, and before the first trial
controller_node: trials
    ERROR  the last FAILURES_ERROR trials all ended without completing: the arm is not usable
    WARN   the last trial ended without completing (its status and reason are the message)
    OK     the last trial completed, or none ran yet. A goal refused as invalid never reached
           the arm: it is counted ('rejected goals'), not a trial
sim_node: simulation
    ERROR  realtime mode, step rate below RATE_ERROR * publish_rate_hz
    WARN   realtime mode, step rate below RATE_WARN * publish_rate_hz
    OK     otherwise; in lockstep mode the controller sets the pace: the rate is shown, not judged
sim_node: commands
    WARN   a command was dropped (non-finite or wrong length) since the last report, or the
           watchdog tripped more often than the arm was reset: a trip after a trial's last
           command is routine (one per reset), more mean a controller stopped mid-trial
    OK     otherwise
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from gps_controllers.trial_runner import TrialStatus

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
LATENCY_WARN = 0.5      # x dt
PERIOD_WARN = 1.5       # x dt
SKIPPED_ERROR = 0.1     # fraction of a trial's steps
FAILURES_ERROR = 3      # trials in a row
RATE_WARN, RATE_ERROR = 0.9, 0.5   # x publish_rate_hz


def status_name(namespace: str, node: str, what: str) -> str:
    """'<namespace>/<node>: <what>', the namespace without leading or trailing slashes."""
    ns = namespace.strip('/')
    return f'{ns + "/" if ns else ""}{node}: {what}'


def _status(namespace: str, node: str, what: str, level: int, message: str,
            values: Mapping[str, object]) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=status_name(namespace, node, what), message=message,
                            hardware_id='/' + namespace.strip('/'),
                            values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


def _text(value: object) -> str:
    if isinstance(value, float):
        return 'n/a' if not math.isfinite(value) else f'{value:.6g}'
    return str(value)


def _array(stamp: Time | None, statuses: Sequence[DiagnosticStatus]) -> DiagnosticArray:
    out = DiagnosticArray(status=list(statuses))
    if stamp is not None:
        out.header.stamp = stamp
    return out


# ----------------------------------------------------------------------------- controller_node
@dataclass(frozen=True)
class LoopTiming:
    """One trial's control-loop timing: percentiles (p50, p99, max) [s] of the loop period (time
    between consecutive commands published) and of the latency (state stamp -> command published),
    over the steps that had their own joint_states (skipped steps have no latency)."""

    steps: int
    skipped: int
    dt: float
    period: tuple[float, float, float]
    latency: tuple[float, float, float]

    @classmethod
    def of_trial(cls, stamps: np.ndarray, latencies: np.ndarray, skipped: int, dt: float) -> LoopTiming:
        """stamps [steps] (the joint_states stamp of each step), latencies [steps] (NaN for a
        skipped step), both seconds on the node clock, as TrialRunner records them."""
        stamps = np.asarray(stamps, dtype=float).reshape(-1)
        latencies = np.asarray(latencies, dtype=float).reshape(-1)
        if stamps.shape != latencies.shape:
            raise ValueError(f'{stamps.size} stamps but {latencies.size} latencies')
        if not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f'dt must be a positive number of seconds, got {dt}')
        measured = np.isfinite(latencies)
        published = stamps[measured] + latencies[measured]
        return cls(int(stamps.size), int(skipped), float(dt), _percentiles(np.diff(published)),
                   _percentiles(latencies[measured]))

    @classmethod
    def of_runner(cls, runner, dt: float) -> LoopTiming:
        """From a gps_controllers TrialRunner (its first `steps` rows)."""
        n = runner.steps
        return cls.of_trial(runner.stamps[:n], runner.latencies[:n], runner.skipped_steps, dt)


def _percentiles(a: np.ndarray) -> tuple[float, float, float]:
    if a.size == 0:
        return (math.nan, math.nan, math.nan)
    p50, p99 = np.percentile(a, [50.0, 99.0])
    return (float(p50), float(p99), float(a.max()))


class ControllerHealth:
    """What controller_node's diagnostics report: call `trial_ended` from `finished`."""

    def __init__(self) -> None:
        self.trials = 0                 # trials that reached the arm (validated goals)
        self.completed = 0
        self.rejected = 0               # goals refused as invalid
        self.stale_aborts = 0           # trials ended ABORTED_STALE_STATE
        self.failures_in_a_row = 0
        self.last_status: TrialStatus | None = None
        self.last_reason = ''
        self.timing: LoopTiming | None = None   # of the last trial that ran steps

    def trial_ended(self, status: int, reason: str, timing: LoopTiming | None = None) -> None:
        status = TrialStatus(status)
        if status is TrialStatus.INVALID_CONTROLLER:
            self.rejected += 1
            return
        self.trials += 1
        self.last_status, self.last_reason = status, reason
        if status is TrialStatus.COMPLETED:
            self.completed += 1
            self.failures_in_a_row = 0
        else:
            self.failures_in_a_row += 1
        if status is TrialStatus.ABORTED_STALE_STATE:
            self.stale_aborts += 1
        if timing is not None and timing.steps > 0:
            self.timing = timing


def control_loop_status(namespace: str, timing: LoopTiming | None) -> DiagnosticStatus:
    what = 'control loop'
    if timing is None:
        return _status(namespace, 'controller_node', what, OK, 'no trial yet', {})
    dt, (lat50, lat99, lat_max), (per50, per99, per_max) = timing.dt, timing.latency, timing.period
    values = {'steps': timing.steps, 'skipped steps': timing.skipped, 'control period [ms]': dt * 1e3,
              'loop period p50 [ms]': per50 * 1e3, 'loop period p99 [ms]': per99 * 1e3,
              'loop period max [ms]': per_max * 1e3, 'latency p50 [ms]': lat50 * 1e3,
              'latency p99 [ms]': lat99 * 1e3, 'latency max [ms]': lat_max * 1e3}
    problems: list[tuple[int, str]] = []
    if timing.skipped > SKIPPED_ERROR * timing.steps:
        problems.append((ERROR, f'{timing.skipped} of {timing.steps} steps skipped'))
    elif timing.skipped:
        problems.append((WARN, f'{timing.skipped} of {timing.steps} steps skipped'))
    if lat99 >= dt:
        problems.append((ERROR, f'latency p99 {lat99 * 1e3:.1f} ms >= the control period {dt * 1e3:.0f} ms'))
    elif lat99 > LATENCY_WARN * dt:
        problems.append((WARN, f'latency p99 {lat99 * 1e3:.1f} ms > {LATENCY_WARN:g} control period'))
    if per99 > PERIOD_WARN * dt:
        problems.append((WARN, f'loop period p99 {per99 * 1e3:.1f} ms > {PERIOD_WARN:g} x {dt * 1e3:.0f} ms'))
    level = max((lvl for lvl, _ in problems), default=OK)
    message = '; '.join(text for _, text in problems) or (
        f'last trial: latency p99 {lat99 * 1e3:.2f} ms, loop period p99 {per99 * 1e3:.1f} ms')
    return _status(namespace, 'controller_node', what, level, message, values)


def trials_status(namespace: str, health: ControllerHealth) -> DiagnosticStatus:
    values = {'trials': health.trials, 'completed': health.completed,
              'failed in a row': health.failures_in_a_row, 'stale-state aborts': health.stale_aborts,
              'rejected goals': health.rejected,
              'last status': health.last_status.name if health.last_status is not None else 'none',
              'last reason': health.last_reason}
    if health.last_status is None:
        level, message = OK, 'no trial yet'
    elif health.last_status is TrialStatus.COMPLETED:
        level, message = OK, 'last trial completed'
    else:
        level = ERROR if health.failures_in_a_row >= FAILURES_ERROR else WARN
        message = (f'last trial {health.last_status.name}: {health.last_reason}'
                   + (f' ({health.failures_in_a_row} in a row)' if health.failures_in_a_row > 1 else ''))
    return _status(namespace, 'controller_node', 'trials', level, message, values)


def controller_diagnostics(namespace: str, health: ControllerHealth, stamp: Time | None = None) -> DiagnosticArray:
    """controller_node's /diagnostics message: its control loop and its trials."""
    return _array(stamp, [control_loop_status(namespace, health.timing), trials_status(namespace, health)])


# ----------------------------------------------------------------------------- sim_node
@dataclass(frozen=True)
class SimReport:
    """sim_node over one report window (rate, drops) and since it started (counters)."""

    mode: str
    target_rate_hz: float | None      # realtime: publish_rate_hz; lockstep: None
    step_rate_hz: float
    steps: int
    resets: int
    watchdog_trips: int
    dropped_commands: int
    dropped_in_window: int


class SimHealth:
    """What sim_node's diagnostics report; times are seconds on a monotonic clock."""

    def __init__(self, mode: str, target_rate_hz: float | None, now: float) -> None:
        self.mode, self.target_rate_hz = mode, target_rate_hz
        self.steps = self.resets = self.watchdog_trips = self.dropped_commands = 0
        self._window_start, self._window_steps, self._window_dropped = float(now), 0, 0

    def stepped(self) -> None:
        self.steps += 1

    def reset(self) -> None:
        self.resets += 1

    def watchdog_tripped(self) -> None:
        self.watchdog_trips += 1

    def command_dropped(self) -> None:
        self.dropped_commands += 1

    def report(self, now: float) -> SimReport:
        """The window since the last report ends now (the next one starts)."""
        span = float(now) - self._window_start
        rate = (self.steps - self._window_steps) / span if span > 0.0 else math.nan
        dropped = self.dropped_commands - self._window_dropped
        self._window_start, self._window_steps, self._window_dropped = float(now), self.steps, self.dropped_commands
        return SimReport(self.mode, self.target_rate_hz, rate, self.steps, self.resets, self.watchdog_trips,
                         self.dropped_commands, dropped)


def simulation_status(namespace: str, r: SimReport) -> DiagnosticStatus:
    values = {'mode': r.mode, 'step rate [Hz]': r.step_rate_hz, 'steps': r.steps, 'resets': r.resets}
    level, message = OK, f'{r.mode}: {r.step_rate_hz:.1f} steps/s'
    if r.target_rate_hz is not None:
        values['target rate [Hz]'] = r.target_rate_hz
        if math.isfinite(r.step_rate_hz) and r.step_rate_hz < RATE_WARN * r.target_rate_hz:
            level = ERROR if r.step_rate_hz < RATE_ERROR * r.target_rate_hz else WARN
            message = f'{r.mode}: {r.step_rate_hz:.1f} steps/s, below the {r.target_rate_hz:g} Hz target'
    return _status(namespace, 'sim_node', 'simulation', level, message, values)


def commands_status(namespace: str, r: SimReport) -> DiagnosticStatus:
    values = {'watchdog trips': r.watchdog_trips, 'resets': r.resets, 'dropped commands': r.dropped_commands}
    problems = []
    if r.dropped_in_window:
        problems.append(f'{r.dropped_in_window} command(s) dropped (non-finite or wrong length)')
    if r.watchdog_trips > r.resets:
        problems.append(f'{r.watchdog_trips} watchdog trips for {r.resets} resets: commands stopped mid-trial')
    return _status(namespace, 'sim_node', 'commands', WARN if problems else OK,
                   '; '.join(problems) or 'commands fresh', values)


def sim_diagnostics(namespace: str, report: SimReport, stamp: Time | None = None) -> DiagnosticArray:
    """sim_node's /diagnostics message: the simulation's pace and the commands it took."""
    return _array(stamp, [simulation_status(namespace, report), commands_status(namespace, report)])


# ----------------------------------------------------------------------------- trainer_node
def iteration_metrics(record: Mapping[str, object], stamp: Time | None = None,
                      success_distance: float | None = None) -> DiagnosticArray:
    """The trainer's per-iteration record (metrics.json's entry) as one stamped status
    'trainer_node: iteration' for gps/metrics: every number as a value ('seconds.sampling',
    'final_ee_distance[2]': nested fields flattened), exact to the last digit (repr). Level OK
    (an unsolved condition is progress to watch, not a fault; the message counts the solved ones
    when success_distance is given), ERROR when the mean cost is not finite."""
    values: dict[str, str] = {}
    _flatten('', record, values)
    cost = float(record.get('mean_cost', math.nan))
    distances = [float(d) for d in record.get('final_ee_distance', [])]
    level, message = OK, f'iteration {record.get("iteration")}: mean cost {cost:.4g}'
    if not math.isfinite(cost):
        level = ERROR
    if success_distance is not None:
        solved = sum(d <= success_distance for d in distances)
        message += f', {solved}/{len(distances)} conditions within {success_distance:g} m'
    status = DiagnosticStatus(level=level, name='trainer_node: iteration', message=message, hardware_id='trainer',
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    return _array(stamp, [status])


def _flatten(prefix: str, value: object, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f'{prefix}.{k}' if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(f'{prefix}[{i}]', v, out)
    elif isinstance(value, float):
        out[prefix] = repr(value)
    else:
        out[prefix] = str(value)


def publish_diagnostics(node, make: Callable[[Time], DiagnosticArray], period_s: float = 1.0) -> None:
    """Publish make(stamp) on /diagnostics every period_s of the steady clock (under a lockstep
    simulator sim time stands still between trials; rqt_robot_monitor still wants news)."""
    from rclpy.clock import Clock, ClockType
    publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
    node.create_timer(period_s, lambda: publisher.publish(make(node.get_clock().now().to_msg())),
                      clock=Clock(clock_type=ClockType.STEADY_TIME))
