"""The ROS 2 agent: trials run by controller_nodes through the RunTrial action, on several arms.

Same interface as the in-process agent (`Agent`): the controller description (linear-Gaussian
gains or a network policy) travels in the goal, the sample comes back in the result. Each arm is
a namespace with its own controller_node (/<ns>/run_trial), on any host of the DDS domain. A
batch of trials is a work queue: every idle arm gets the next trial, so all arms stay busy, and
the results come back in the order asked (a trial's result does not depend on the arm).

An arm is taken out of the pool, with a warning naming it, when its controller_node is not heard
from for `hang_timeout_s` during a trial (the lifecycle sends feedback at least every 0.5 s in
every phase: a hung or killed node), when its nodes died (`arm_health`), or after
ARM_FAILURES_TO_DROP trials in a row ended for reasons of the arm (stale joint_states, a failed
reset, the robot stopped, interference); its trial goes to another arm. A trial that fails for
its own reasons (a joint limit) is retried on any arm up to `retries` times; an invalid
controller fails at once (it would everywhere). The batch fails only when no arm is left.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from rclpy.action import ActionClient
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.task import Future

from gps_agent_ros.agent import SafetyStop, SafetyStopped, Trial, TrialFailed, TrialRequest, trial_spec
from gps_agent_ros.conversions import result_images, result_timing, result_to_arrays, run_trial_goal
from gps_agent_ros.experiment import Experiment
from gps_interfaces.action import RunTrial

_STATUS = {v: k for k, v in vars(RunTrial.Result).items() if k.startswith('STATUS_')}
R = RunTrial.Result
_ARM_FAULTS = {R.STATUS_ABORTED_STALE_STATE, R.STATUS_RESET_FAILED, R.STATUS_ABORTED_ROBOT,
               R.STATUS_ABORTED_INTERFERENCE, R.STATUS_CANCELLED}
ARM_FAILURES_TO_DROP = 2
SPIN_S = 0.02
__all__ = ['RosAgent', 'TrialFailed']


def action_name(namespace: str) -> str:
    ns = namespace.strip('/')
    return f'/{ns}/run_trial' if ns else '/run_trial'


@dataclass
class _Arm:
    """One arm's client and the trial it runs (request index), if any."""

    namespace: str
    client: ActionClient
    job: int | None = None
    goal_future: Future | None = None
    handle: object | None = None
    result_future: Future | None = None
    started: float = 0.0
    last_heard: float = 0.0
    failures: int = 0
    steps: int = 0
    phase: str = ''
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return action_name(self.namespace)


class RosAgent:
    SERVER_TIMEOUT_S = 30.0                   # how long to wait for each arm's action server

    def __init__(self, node: Node, executor: Executor, experiment: Experiment,
                 namespaces: Sequence[str] | str = ('arm0',), server_timeout_s: float | None = None,
                 retries: int = 2, arm_health: Callable[[str], str | None] | None = None,
                 hang_timeout_s: float = 2.0):
        self.node, self.executor, self.experiment = node, executor, experiment
        self.retries, self.hang_timeout_s = retries, hang_timeout_s
        self.arm_health = arm_health or (lambda _ns: None)
        namespaces = [namespaces] if isinstance(namespaces, str) else list(namespaces)
        if not namespaces or len(set(namespaces)) != len(namespaces):
            raise ValueError(f'arm namespaces must be distinct and at least one, got {namespaces}')
        self.arms = [_Arm(ns, ActionClient(node, RunTrial, action_name(ns))) for ns in namespaces]
        self.dropped: dict[str, str] = {}
        self._connect(server_timeout_s or self.SERVER_TIMEOUT_S)

    # ------------------------------------------------------------- discovery
    def _connect(self, timeout_s: float) -> None:
        """Wait for every arm's server (an arm not up in time is dropped with a warning), then
        probe each with an invalid goal: right after discovery Fast DDS can lose a goal response
        although the server looks ready, so a real trial is never started unheard."""
        deadline = time.monotonic() + timeout_s
        pending = list(self.arms)
        while pending and time.monotonic() < deadline:
            pending = [a for a in pending if not a.client.server_is_ready()]
            for arm in pending:
                if (why := self.arm_health(arm.namespace)) is not None:
                    raise TrialFailed(f'{arm.name}: {why}')
            self.executor.spin_once(timeout_sec=0.1)
        for arm in pending:
            self._drop(arm, f'no RunTrial action server at {arm.name} after {timeout_s:.0f} s '
                            f'(is controller_node running in this ROS_DOMAIN_ID?)')
        for arm in list(self.arms):
            if not self._probe(arm):
                self._drop(arm, f'{arm.name} never answered a goal')
        if not self.arms:
            raise TrialFailed('no arm to run trials on: ' + '; '.join(self.dropped.values()))

    def _probe(self, arm: _Arm, attempts: int = 10) -> bool:
        for _ in range(attempts):
            future = arm.client.send_goal_async(RunTrial.Goal(condition='handshake'))
            end = time.monotonic() + 2.0
            while not future.done() and time.monotonic() < end:
                self.executor.spin_once(timeout_sec=0.05)
            if future.done():
                return True
        return False

    # -------------------------------------------------------------- batches
    def run_many(self, requests: Sequence[TrialRequest], safety_stops: bool = False) -> list[Trial | SafetyStop]:
        goals = [run_trial_goal(trial_spec(self.experiment, r.condition, r.controller, r.record_images,
                                           r.disturbance))
                 for r in requests]
        results: list[Trial | SafetyStop | None] = [None] * len(requests)
        queue, attempts = deque(range(len(requests))), [0] * len(requests)
        cfg = self.experiment.config
        trial_timeout = 60.0 + 20.0 * cfg.T * cfg.dt
        while queue or any(a.job is not None for a in self.arms):
            for arm in self.arms:
                if arm.job is None and queue:
                    self._start(arm, queue.popleft(), goals)
            self.executor.spin_once(timeout_sec=SPIN_S)
            now = time.monotonic()
            for arm in list(self.arms):
                if arm.job is None:
                    continue
                job, outcome = arm.job, self._poll(arm, now, trial_timeout)
                if outcome is None:
                    continue
                arm.job = None
                if isinstance(outcome, Trial):
                    results[job] = outcome
                    arm.failures = 0
                    continue
                status, reason, arm_fault = outcome
                label = f'{requests[job].condition.name} (sample {requests[job].sample})'
                if status == R.STATUS_INVALID_CONTROLLER:
                    raise TrialFailed(f'{label}: controller rejected by {arm.name}: {reason}')
                if status == R.STATUS_ABORTED_LIMIT:     # the controller's doing: not run again
                    message = f'{label}: trial ended ABORTED_LIMIT on {arm.name}: {reason}'
                    if not safety_stops:
                        raise SafetyStopped(message)
                    results[job] = SafetyStop(requests[job].condition.name, requests[job].sample, message)
                    continue
                attempts[job] += 1
                self.node.get_logger().warning(f'{label} on {arm.name} ended {_STATUS.get(status, status)}: '
                                               f'{reason} (attempt {attempts[job]}/{self.retries + 1})')
                if attempts[job] > self.retries:
                    raise TrialFailed(f'{label}: trial failed {attempts[job]} times; last on {arm.name}: '
                                      f'{_STATUS.get(status, status)}: {reason}')
                queue.appendleft(job)
                if arm_fault:
                    arm.failures += 1
                    if arm.failures >= ARM_FAILURES_TO_DROP or status is None:
                        self._drop(arm, reason)
            if not self.arms:
                raise TrialFailed('no arm left to run trials on: ' + '; '.join(
                    f'{name}: {why}' for name, why in self.dropped.items()))
        return results  # type: ignore[return-value]

    def _start(self, arm: _Arm, job: int, goals: list[RunTrial.Goal]) -> None:
        arm.job, arm.handle, arm.result_future, arm.steps, arm.phase = job, None, None, 0, ''
        arm.started = arm.last_heard = time.monotonic()
        arm.goal_future = arm.client.send_goal_async(goals[job], feedback_callback=lambda fb, a=arm: self._heard(a, fb))

    @staticmethod
    def _heard(arm: _Arm, feedback) -> None:
        arm.last_heard = time.monotonic()
        arm.steps, arm.phase = feedback.feedback.step, feedback.feedback.phase

    def _poll(self, arm: _Arm, now: float, trial_timeout: float):
        """None while the trial runs; else a Trial, or (status or None, reason, the arm's fault)."""
        if (why := self.arm_health(arm.namespace)) is not None:
            return None, why, True
        if arm.handle is None and arm.goal_future.done():
            arm.handle, arm.last_heard = arm.goal_future.result(), now
            if not arm.handle.accepted:
                return R.STATUS_CANCELLED, f'{arm.name} rejected the goal (another trial running?)', True
            arm.result_future = arm.handle.get_result_async()
        if arm.result_future is not None and arm.result_future.done():
            result = arm.result_future.result().result
            if result.status == R.STATUS_COMPLETED:
                X, U = result_to_arrays(result)
                return Trial(X, U, result_timing(result)[0], arm.namespace, result_images(result))
            return result.status, result.reason, result.status in _ARM_FAULTS
        silent = now - arm.last_heard
        if silent > self.hang_timeout_s or now - arm.started > trial_timeout:
            if arm.handle is not None:
                arm.handle.cancel_goal_async()
            what = (f'sent nothing for {silent:.1f} s during a trial ({arm.phase or "before accepting"}, '
                    f'step {arm.steps}): hung or gone' if silent > self.hang_timeout_s
                    else f'did not finish a trial within {trial_timeout:.0f} s')
            return None, f'controller_node at {arm.name} {what}', True
        return None

    def _drop(self, arm: _Arm, reason: str) -> None:
        self.node.get_logger().warning(f'taking {arm.name} out of the pool: {reason}')
        self.dropped[arm.name] = reason
        self.arms.remove(arm)
        arm.client.destroy()

    def close(self) -> None:
        """Cancel the trials still running (their arms are zeroed), then let go of the servers."""
        running = [arm.handle.cancel_goal_async() for arm in self.arms
                   if arm.job is not None and arm.handle is not None and arm.handle.accepted]
        end = time.monotonic() + 1.0
        while running and not all(f.done() for f in running) and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)
        for arm in self.arms:
            arm.client.destroy()
        self.arms = []
