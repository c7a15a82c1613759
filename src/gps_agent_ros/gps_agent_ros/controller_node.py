"""controller_node: runs GPS trials on an arm behind the RunTrial action.

Topics (relative: push the node into a namespace per arm, e.g. /arm0):
  sub  joint_states                  sensor_msgs/JointState (joint_state_broadcaster or sim_node)
  pub  <controller_name>/commands    std_msgs/Float64MultiArray (forward_command_controller)
  sub  robot_description             std_msgs/String, transient local (only if urdf_path is empty)
  client  <reset_service>            gps_interfaces/srv/ResetArm
  action  run_trial                  gps_interfaces/action/RunTrial

  sub  <robot_program_topic>         std_msgs/Bool, transient local (optional: trials only while true)

A goal carries its controller as data (linear-Gaussian gains, or a network policy with the
trial's noise). The trial, from validation through the reset to T steps, is
gps_controllers.trial_lifecycle: this node turns messages into its events and its requests into
messages; commands are computed in the joint_states callback. Goals follow ros2/examples'
deferred pattern: kept from handle_accepted_callback, executed once the trial ended, when the
execute callback only reports (a coroutine awaiting the trial would spin a core).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import JointState
from service_msgs.msg import ServiceEventInfo
from std_msgs.msg import Bool, Float64MultiArray, String

from gps_agent_ros.controller_params import declare_controller_parameters, resolve_path, robot_model
from gps_agent_ros.conversions import (JointStateReader, run_trial_result, time_to_seconds,
                                       to_float64_multi_array, trial_spec_from_goal)
from gps_agent_ros.node_runtime import run_node, spin_while
from gps_agent_ros.ur_reset import RobotProgramMonitor
from gps_controllers.trial_lifecycle import LifecycleTimeouts, TrialLifecycle, TrialOutcome
from gps_controllers.trial_runner import TrialStatus
from gps_interfaces.action import RunTrial
from gps_interfaces.srv import ResetArm

TICK_PERIOD_S = 0.02         # lifecycle deadlines and the stale-state watchdog (upper bound)
_NO_WAIT = Duration(seconds=0)
_LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


class ControllerNode(Node):
    """Serves RunTrial on one arm (see the module docstring); implements the lifecycle's ArmPort."""

    def __init__(self, **kwargs) -> None:
        super().__init__("controller_node", **kwargs)
        p = self._params = declare_controller_parameters(self)
        self._reader = JointStateReader(p["joints"])
        self._q, self._qd = np.zeros(len(p["joints"])), np.zeros(len(p["joints"]))
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        timeouts = LifecycleTimeouts(stale_s=p["stale_timeout_s"], reset_s=p["reset_timeout_s"])
        self._reset_name = self.resolve_service_name(p["reset_service"])
        self._lifecycle = TrialLifecycle(self, len(p["joints"]), timeouts, self._clock_s, self._reset_name,
                                         track_resets=True, state_topic=self.resolve_topic_name("joint_states"))
        self._goal: ServerGoalHandle | None = None    # the goal of the active trial
        self._unreported = 0                           # goals ended whose result is not yet handed over
        self._reset_future: Future | None = None
        self._pending_description: str | None = None
        self._cmd_msg, self._feedback = Float64MultiArray(), RunTrial.Feedback()

        self._cmd_pub = self.create_publisher(Float64MultiArray, f"{p['controller_name']}/commands", 10)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        self._reset_client = self.create_client(ResetArm, p["reset_service"])
        # every request the reset service gets (service introspection): a reset not ours is interference
        self.create_subscription(ResetArm.Event, f"{p['reset_service']}/_service_event", self._on_reset_event, 10)
        # every goal is executed with its own reporting callback (see finished), never this one
        self._action = ActionServer(self, RunTrial, "run_trial", execute_callback=lambda _h: RunTrial.Result(),
                                    goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
                                    cancel_callback=self._on_cancel)
        self.create_timer(min(TICK_PERIOD_S, timeouts.stale_s / 4.0), self._on_tick, clock=self._steady)
        self._program = RobotProgramMonitor(required=bool(p["robot_program_topic"]), topic=p["robot_program_topic"])
        if p["robot_program_topic"]:  # latched, published when it changes (ur_robot_driver)
            self.create_subscription(Bool, p["robot_program_topic"], self._on_program, _LATCHED)
        if p["urdf_path"]:
            self._set_robot(resolve_path(p["urdf_path"]))
        else:
            self.create_subscription(String, "robot_description", self._on_description, _LATCHED)
            self.get_logger().info("waiting for the URDF on robot_description")
        self.get_logger().info(f"commands -> {self._cmd_pub.topic_name} ({p['command_interface']}), reset via "
                               f"{self._reset_name}, stale timeout {timeouts.stale_s:g} s")

    # ------------------------------------------------------------- robot model
    def _set_robot(self, urdf_path: str | Path | None = None, urdf_text: str | None = None) -> None:
        """The encoder and safety filter of a URDF; raises ValueError on a bad URDF / joints."""
        encoder, safety = robot_model(self._params, urdf_path, urdf_text)
        self._lifecycle.set_robot(encoder, safety)
        self.get_logger().info(f"robot: {len(self._params['joints'])} joints, {encoder.n_points} end-effector "
                               f"points, dX={encoder.dX}, command limits {np.round(safety.command_limits, 3).tolist()}")

    def _on_description(self, msg: String | None) -> None:
        """robot_description arrived (msg), or a trial ended with one pending (None)."""
        if msg is not None:
            self._pending_description = msg.data
        if self._lifecycle.active or self._pending_description is None:
            return  # never swap the model under a trial
        urdf, self._pending_description = self._pending_description, None
        try:
            self._set_robot(urdf_text=urdf)
        except ValueError as exc:
            self.get_logger().error(f"cannot use robot_description: {exc}")

    # ------------------------------------------------------- events -> lifecycle
    def _on_joint_states(self, msg: JointState) -> None:
        now = self._steady_s()
        try:
            q, qd = self._reader.read(msg, self._q, self._qd)
        except ValueError as exc:
            self._lifecycle.on_bad_state(str(exc), now)
            return
        self._lifecycle.on_state(q, qd, time_to_seconds(msg.header.stamp), now)

    def _on_tick(self) -> None:
        self._lifecycle.on_tick(self._steady_s())

    def _on_reset_event(self, msg: ResetArm.Event) -> None:
        if msg.info.event_type == ServiceEventInfo.REQUEST_RECEIVED:
            self._lifecycle.on_reset_seen(self._steady_s())

    def _on_program(self, msg: Bool) -> None:
        if self._program.update(msg.data):
            self._lifecycle.abort(TrialStatus.ABORTED_ROBOT, self._program.stop_reason())

    def _on_goal(self, goal: RunTrial.Goal) -> GoalResponse:
        if self._lifecycle.active or self._lifecycle.halted:
            why = "shutting down" if self._lifecycle.halted else "a trial is running"
            self.get_logger().warning(f"rejecting goal {goal.condition!r}: {why}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_accepted(self, goal_handle: ServerGoalHandle) -> None:
        goal: RunTrial.Goal = goal_handle.request
        self._goal = goal_handle
        self.get_logger().info(f"goal {goal.condition!r}: T={goal.horizon}, dt={goal.dt:g}, "
                               f"controller_type {goal.controller_type}")
        self._lifecycle.start(lambda: trial_spec_from_goal(goal), self._steady_s())
        if (refusal := self._program.refusal()) is not None:
            self._lifecycle.abort(TrialStatus.ABORTED_ROBOT, refusal)
        self._lifecycle.on_tick(self._steady_s())  # on at once, with the time after validation

    def _on_cancel(self, goal_handle: ServerGoalHandle) -> CancelResponse:
        if goal_handle is not self._goal:
            return CancelResponse.REJECT  # already ended: its result is on the way
        self._lifecycle.cancel("cancelled by the client")
        return CancelResponse.ACCEPT

    # ------------------------------------------------------------- ArmPort
    def publish(self, u: np.ndarray) -> None:
        self._cmd_pub.publish(to_float64_multi_array(u, self._cmd_msg))

    def commands_delivered(self) -> bool:
        return self._cmd_pub.wait_for_all_acked(_NO_WAIT)

    def other_commanders(self) -> list[str]:
        me = (self.get_name(), self.get_namespace())
        return [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in self.get_publishers_info_by_topic(
            self._cmd_pub.topic_name) if (i.node_name, i.node_namespace) != me]

    def reset_service_ready(self) -> bool:
        return self._reset_client.service_is_ready()

    def request_reset(self, joint_names, q0: np.ndarray) -> None:
        request = ResetArm.Request(joint_names=list(joint_names), joint_positions=q0.tolist())
        self._reset_future = self._reset_client.call_async(request)
        self._reset_future.add_done_callback(self._on_reset_answer)

    def _on_reset_answer(self, future: Future) -> None:
        if future is self._reset_future:
            self._reset_future = None
            r = future.result()
            self._lifecycle.on_reset_answer(r.success, r.message, time_to_seconds(r.stamp), self._steady_s())

    def cancel_reset(self) -> None:
        if self._reset_future is not None:
            self._reset_client.remove_pending_request(self._reset_future)
            self._reset_future = None

    def feedback(self, step: int, phase: str) -> None:
        self._feedback.step, self._feedback.phase = step, phase
        self._goal.publish_feedback(self._feedback)

    def finished(self, outcome: TrialOutcome) -> None:
        goal_handle, self._goal = self._goal, None
        if goal_handle is None:
            return
        condition = goal_handle.request.condition
        result = run_trial_result(outcome.status, outcome.reason, condition, outcome.recording)
        if outcome.status == TrialStatus.COMPLETED:  # rclpy: one severity per call site
            self.get_logger().info(f"goal {condition!r} {outcome.summary()}")
        else:
            self.get_logger().warning(f"goal {condition!r} {outcome.summary()}")
        self._unreported += 1
        goal_handle.execute(lambda handle: self._report(handle, outcome.status, result))
        self._on_description(None)

    def _report(self, goal_handle: ServerGoalHandle, status: TrialStatus, result: RunTrial.Result
                ) -> RunTrial.Result:
        """The deferred execute callback: terminal state, then the result for the server."""
        self._unreported -= 1
        if status == TrialStatus.COMPLETED:
            goal_handle.succeed()
        elif status == TrialStatus.CANCELLED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result

    # --------------------------------------------------------------- helpers
    _steady_s = staticmethod(time.monotonic)   # CLOCK_MONOTONIC, as the tick timer's STEADY_TIME

    def _clock_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def busy(self) -> bool:
        """A trial is active or its result has not been handed to the action server yet."""
        return self._lifecycle.active or self._unreported > 0

    def halt(self, reason: str) -> None:
        """Stop commanding for good (SIGINT/SIGTERM): zeros, the running trial ends CANCELLED."""
        self._lifecycle.halt(reason)
        self.get_logger().warning(f"halted ({reason}): commanding zeros")


def _stop(node: ControllerNode, reason: str, executor) -> None:
    """Zero the arm, end the running trial CANCELLED and hand its result to the client."""
    node.halt(f"controller node shutting down ({reason})")
    spin_while(executor, lambda: node.busy, 0.5)   # the result handed to the action server
    spin_while(executor, lambda: True, 0.1)        # ... and sent


def main(args: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a network policy runs on one thread
    import torch  # noqa: F401 - now, not in the first policy goal's callback (a 1-2 s stall)
    return run_node(ControllerNode, "controller_node", args, _stop)


if __name__ == "__main__":
    sys.exit(main())
