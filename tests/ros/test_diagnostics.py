"""gps_agent_ros.diagnostics without DDS: names rqt_robot_monitor groups by arm, percentiles
against hand-computed values, the documented level rules at and around their thresholds, the
trainer's record exact to the last digit, and serialization of every message."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.serialization import deserialize_message, serialize_message

from gps_agent_ros.diagnostics import (ControllerHealth, LoopTiming, SimHealth, commands_status,
                                       control_loop_status, controller_diagnostics, iteration_metrics,
                                       sim_diagnostics, simulation_status, status_name, trials_status)
from gps_controllers.trial_runner import TrialStatus

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
DT = 0.05


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def roundtrip(array: DiagnosticArray) -> DiagnosticArray:
    return deserialize_message(serialize_message(array), DiagnosticArray)


def timing(steps: int = 100, skipped: int = 0, latency: float = 0.001, period: float = DT) -> LoopTiming:
    stamps = np.arange(steps) * period
    latencies = np.full(steps, latency)
    latencies[1:1 + skipped] = np.nan
    return LoopTiming.of_trial(stamps, latencies, skipped, DT)


def test_names_put_each_arm_in_its_own_group():
    assert status_name('/arm0', 'controller_node', 'control loop') == 'arm0/controller_node: control loop'
    assert status_name('arm0/', 'sim_node', 'commands') == 'arm0/sim_node: commands'
    assert status_name('/', 'controller_node', 'trials') == 'controller_node: trials'
    array = controller_diagnostics('/arm1', ControllerHealth())
    assert [s.name for s in array.status] == ['arm1/controller_node: control loop', 'arm1/controller_node: trials']
    assert {s.hardware_id for s in array.status} == {'/arm1'}


def test_loop_timing_percentiles_by_hand():
    # 5 steps; the third had no joint_states of its own (skipped: no latency)
    t = LoopTiming.of_trial(np.array([0.0, 0.05, 0.10, 0.15, 0.20]),
                            np.array([0.001, 0.002, np.nan, 0.001, 0.003]), skipped=1, dt=DT)
    # published at 0.001, 0.052, 0.151, 0.203: periods 0.051, 0.099, 0.052
    assert t.period == pytest.approx((0.052, 0.052 + 0.98 * (0.099 - 0.052), 0.099))
    assert t.latency == pytest.approx((0.0015, 0.002 + 0.97 * 0.001, 0.003))   # p99 of [1, 1, 2, 3] ms
    assert (t.steps, t.skipped, t.dt) == (5, 1, DT)
    runner = SimpleNamespace(steps=3, stamps=np.array([0.0, 0.05, 0.1, 0.0]), latencies=np.array([0.001] * 4),
                             skipped_steps=0)
    assert LoopTiming.of_runner(runner, DT).steps == 3          # only the rows the trial ran
    with pytest.raises(ValueError, match='3 stamps but 2 latencies'):
        LoopTiming.of_trial(np.zeros(3), np.zeros(2), 0, DT)


@pytest.mark.parametrize('kwargs,level,message', [
    ({}, OK, 'last trial: latency p99 1.00 ms'),
    ({'skipped': 1}, WARN, '1 of 100 steps skipped'),
    ({'skipped': 10}, WARN, '10 of 100 steps skipped'),            # 10 % is the limit, not beyond it
    ({'skipped': 11}, ERROR, '11 of 100 steps skipped'),
    ({'latency': 0.025}, OK, 'last trial'),                        # exactly half a period
    ({'latency': 0.026}, WARN, 'latency p99 26.0 ms > 0.5 control period'),
    ({'latency': 0.05}, ERROR, 'latency p99 50.0 ms >= the control period 50 ms'),
    ({'period': 0.08}, WARN, 'loop period p99 80.0 ms > 1.5 x 50 ms'),
])
def test_control_loop_levels(kwargs, level, message):
    status = control_loop_status('arm0', timing(**kwargs))
    assert status.level == level and message in status.message, status.message
    assert values(status)['control period [ms]'] == '50'


def test_control_loop_before_any_trial_is_ok():
    status = control_loop_status('arm0', None)
    assert (status.level, status.message, status.values) == (OK, 'no trial yet', [])


def test_trials_levels_follow_the_last_trials():
    health = ControllerHealth()
    assert trials_status('arm0', health).level == OK and trials_status('arm0', health).message == 'no trial yet'
    health.trial_ended(TrialStatus.INVALID_CONTROLLER, 'a handshake')     # never reached the arm
    assert trials_status('arm0', health).level == OK and health.trials == 0 and health.rejected == 1
    health.trial_ended(TrialStatus.COMPLETED, '', timing())
    assert trials_status('arm0', health).message == 'last trial completed'
    health.trial_ended(TrialStatus.ABORTED_STALE_STATE, 'no joint_states for 0.6 s')
    status = trials_status('arm0', health)
    assert status.level == WARN and status.message == 'last trial ABORTED_STALE_STATE: no joint_states for 0.6 s'
    health.trial_ended(TrialStatus.RESET_FAILED, 'the arm did not reach the start pose')
    assert trials_status('arm0', health).level == WARN
    health.trial_ended(TrialStatus.ABORTED_ROBOT, 'the robot program stopped')
    status = trials_status('arm0', health)
    assert status.level == ERROR and status.message.endswith('(3 in a row)')
    assert values(status) == {'trials': '4', 'completed': '1', 'failed in a row': '3', 'stale-state aborts': '1',
                              'rejected goals': '1', 'last status': 'ABORTED_ROBOT',
                              'last reason': 'the robot program stopped'}
    health.trial_ended(TrialStatus.COMPLETED, '', None)                  # no timing: keeps the last one's
    assert trials_status('arm0', health).level == OK and health.timing is not None
    assert roundtrip(controller_diagnostics('arm0', health)).status[1].message == 'last trial completed'


def test_sim_step_rate_is_judged_against_the_target_in_realtime_only():
    def report(mode: str, target: float | None, steps: int):
        health = SimHealth(mode, target, now=10.0)
        for _ in range(steps):
            health.stepped()
        return health.report(now=12.0)                                   # a 2 s window

    assert simulation_status('arm0', report('realtime', 500.0, 1000)).level == OK
    assert simulation_status('arm0', report('realtime', 500.0, 900)).level == OK        # 0.9 x target
    status = simulation_status('arm0', report('realtime', 500.0, 880))
    assert status.level == WARN and status.message == 'realtime: 440.0 steps/s, below the 500 Hz target'
    assert simulation_status('arm0', report('realtime', 500.0, 400)).level == ERROR
    status = simulation_status('arm0', report('lockstep', None, 6))
    assert status.level == OK and values(status)['step rate [Hz]'] == '3' and 'target rate [Hz]' not in values(status)
    assert status.message == 'lockstep: 3.0 steps/s'


def test_sim_commands_warn_on_drops_in_the_window_and_on_trips_mid_trial():
    health = SimHealth('lockstep', None, now=0.0)
    health.reset()
    health.watchdog_tripped()                     # after the trial's last command: routine
    assert commands_status('arm0', health.report(1.0)).level == OK
    health.command_dropped()
    status = commands_status('arm0', health.report(2.0))
    assert status.level == WARN and '1 command(s) dropped' in status.message
    assert commands_status('arm0', health.report(3.0)).level == OK              # the next window
    health.watchdog_tripped()                     # a second trip without a reset: stopped mid-trial
    status = commands_status('arm0', health.report(4.0))
    assert status.level == WARN and '2 watchdog trips for 1 resets' in status.message
    assert values(status) == {'watchdog trips': '2', 'resets': '1', 'dropped commands': '1'}
    array = roundtrip(sim_diagnostics('/arm0', health.report(5.0)))
    assert [s.name for s in array.status] == ['arm0/sim_node: simulation', 'arm0/sim_node: commands']


def test_the_iteration_record_is_exact_and_flattened():
    record = {'iteration': 3, 'samples': 20, 'mean_cost': -15.101234567891234,
              'final_ee_distance': [0.012, 0.0251, 0.041, 0.03], 'seconds': {'sampling': 3.6, 'dynamics': 0.02},
              'kl': [1.5, 2.5]}
    array = iteration_metrics(record, success_distance=0.05)
    (status,) = array.status
    v = values(status)
    assert status.name == 'trainer_node: iteration' and status.level == OK
    assert status.message == 'iteration 3: mean cost -15.1, 4/4 conditions within 0.05 m'
    assert float(v['mean_cost']) == record['mean_cost'] and v['iteration'] == '3'
    assert [float(v[f'final_ee_distance[{i}]']) for i in range(4)] == record['final_ee_distance']
    assert float(v['seconds.sampling']) == 3.6 and float(v['kl[1]']) == 2.5
    far = iteration_metrics({**record, 'final_ee_distance': [0.012, 0.07, 0.041, 0.06]}, success_distance=0.05)
    assert far.status[0].level == OK and far.status[0].message.endswith(', 2/4 conditions within 0.05 m')
    assert iteration_metrics({**record, 'mean_cost': float('nan')}).status[0].level == ERROR
    assert iteration_metrics(record).status[0].message == 'iteration 3: mean cost -15.1'
    assert roundtrip(array).status[0].values[2].value == v['mean_cost']
