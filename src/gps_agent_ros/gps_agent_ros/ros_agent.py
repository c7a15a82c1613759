"""The ROS 2 agent: trials run by a controller_node through the RunTrial action.

Same interface as the in-process agent (`Agent`), so the trainer cannot tell them apart: the
controller description (linear-Gaussian gains or a network policy) travels in the goal, the
sample comes back in the result. One RosAgent per arm namespace.
"""
from __future__ import annotations

from typing import Callable

from rclpy.action import ActionClient
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.task import Future

from gps_agent_ros.agent import Trial, TrialFailed, trial_spec
from gps_agent_ros.conversions import result_to_arrays, run_trial_goal
from gps_agent_ros.experiment import Condition, Experiment
from gps_controllers.trial_spec import ControllerSpec
from gps_interfaces.action import RunTrial

_STATUS = {v: k for k, v in vars(RunTrial.Result).items() if k.startswith('STATUS_')}
__all__ = ['RosAgent', 'TrialFailed']


class RosAgent:
    SERVER_TIMEOUT_S = 30.0                   # how long to wait for controller_node's action server

    def __init__(self, node: Node, executor: Executor, experiment: Experiment, namespace: str = 'arm0',
                 server_timeout_s: float | None = None, retries: int = 2,
                 health_check: Callable[[], None] | None = None):
        self.node, self.executor, self.experiment = node, executor, experiment
        ns = namespace.strip('/')
        self.action_name = f'/{ns}/run_trial' if ns else '/run_trial'
        self.client = ActionClient(node, RunTrial, self.action_name)
        self.retries = retries
        self.health_check = health_check or (lambda: None)
        self._wait_for_server(server_timeout_s or self.SERVER_TIMEOUT_S)
        self._handshake()

    def _handshake(self, attempts: int = 10) -> None:
        """Right after discovery Fast DDS can lose a goal response although the server looks
        ready: probe with an invalid goal (rejected at once, nothing reaches the arm but zeros)
        until one is answered, so a real trial is never started unheard."""
        for _ in range(attempts):
            try:
                self._wait(self.client.send_goal_async(RunTrial.Goal(condition='handshake')), 2.0, 'handshake')
                return
            except TrialFailed:
                continue
        raise TrialFailed(f'{self.action_name} never answered a goal ({attempts} attempts)')

    def _wait_for_server(self, timeout_s: float) -> None:
        waited = 0.0
        while not self.client.wait_for_server(timeout_sec=0.5):
            self.health_check()
            waited += 0.5
            if waited >= timeout_s:
                raise TrialFailed(f'no RunTrial action server at {self.action_name} after {timeout_s:.0f} s '
                                  f'(is controller_node running in this ROS_DOMAIN_ID?)')

    def run(self, condition: Condition, controller: ControllerSpec) -> Trial:
        cfg = self.experiment.config
        goal = run_trial_goal(trial_spec(self.experiment, condition, controller))
        timeout = 60.0 + 20.0 * cfg.T * cfg.dt
        for attempt in range(self.retries + 1):
            result = self._send(goal, timeout)
            if result.status == RunTrial.Result.STATUS_COMPLETED:
                X, U = result_to_arrays(result)
                return Trial(X, U)
            status = _STATUS.get(result.status, str(result.status))
            if result.status == RunTrial.Result.STATUS_INVALID_CONTROLLER:
                raise TrialFailed(f'{condition.name}: controller rejected: {result.reason}')
            self.node.get_logger().warning(f'{condition.name}: trial ended {status}: {result.reason} '
                                           f'(attempt {attempt + 1}/{self.retries + 1})')
        raise TrialFailed(f'{condition.name}: trial failed {self.retries + 1} times; last: {status}: {result.reason}')

    def _send(self, goal: RunTrial.Goal, timeout_s: float) -> RunTrial.Result:
        handle = self._wait(self.client.send_goal_async(goal), 10.0, 'goal acceptance')
        if not handle.accepted:
            raise TrialFailed(f'{self.action_name} rejected the goal (another trial running?)')
        try:
            return self._wait(handle.get_result_async(), timeout_s, 'trial result').result
        except TrialFailed:
            handle.cancel_goal_async()
            raise

    def _wait(self, future: Future, timeout_s: float, what: str):
        waited = 0.0
        while not future.done():
            self.executor.spin_until_future_complete(future, timeout_sec=0.25)
            self.health_check()
            waited += 0.25
            if waited >= timeout_s and not future.done():
                raise TrialFailed(f'timed out after {timeout_s:.0f} s waiting for {what} from {self.action_name}')
        return future.result()

    def close(self) -> None:
        self.client.destroy()
