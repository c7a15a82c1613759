"""controller_node: runs GPS trials on an arm behind the RunTrial action (gps_interfaces).

Relative names (a namespace per arm): sub joint_states, <camera_topic> (optional, sensor_msgs/
Image), <robot_program_topic> (optional, std_msgs/Bool), robot_description (if no urdf_path);
pub <controller_name>/commands (Float64MultiArray); client <reset_service> (ResetArm), sub its
_service_event; action run_trial. A goal carries its controller as data; the trial (validate,
reset, T steps) is gps_controllers.trial_lifecycle, which this node only feeds and answers.
Commands are computed in the joint_states callback. Goals follow ros2/examples' deferred pattern:
kept from handle_accepted_callback, executed once the trial ended, when the execute callback
only reports (a coroutine awaiting the trial would spin a core).
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
from sensor_msgs.msg import Image, JointState
from service_msgs.msg import ServiceEventInfo
from std_msgs.msg import Bool, Float64MultiArray, String

from gps_agent_ros.controller_params import (declare_controller_parameters, lifecycle_timeouts, resolve_path,
                                             robot_model)
from gps_agent_ros.conversions import (JointStateReader, image_from_msg, reset_request, run_trial_result,
                                       time_to_seconds, to_float64_multi_array, trial_spec_from_goal)
from gps_agent_ros.diagnostics import ControllerHealth, LoopTiming, controller_diagnostics, publish_diagnostics
from gps_agent_ros.node_runtime import run_node, spin_while, take_missed
from gps_agent_ros.ur_controllers import RobotProgramMonitor
from gps_controllers.trial_lifecycle import TrialLifecycle, TrialOutcome
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
        timeouts, clock_s = lifecycle_timeouts(p), lambda: self.get_clock().now().nanoseconds * 1e-9
        names = dict(reset_service=self.resolve_service_name(p["reset_service"]),
                     state_topic=self.resolve_topic_name("joint_states"))
        self._lifecycle = TrialLifecycle(self, len(p["joints"]), timeouts, clock_s, track_resets=True, **names)
        self._goal: ServerGoalHandle | None = None    # the goal of the active trial
        self._unreported = 0                           # goals ended whose result is not yet handed over
        self._reset_future: Future | None = None
        self._pending_description: str | None = None
        self._cmd_msg, self._feedback = Float64MultiArray(), RunTrial.Feedback()

        self._cmd_pub = self.create_publisher(Float64MultiArray, f"{p['controller_name']}/commands", 10)
        self._streams = [self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)]
        self._reset_client = self.create_client(ResetArm, p["reset_service"])
        # every request the reset service gets (service introspection): a reset not ours is interference
        self.create_subscription(ResetArm.Event, f"{p['reset_service']}/_service_event", self._on_reset_event, 10)
        # every goal is executed with its own reporting callback (see finished), never this one
        self._action = ActionServer(self, RunTrial, "run_trial", execute_callback=lambda _h: RunTrial.Result(),
                                    goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
                                    cancel_callback=self._on_cancel)
        self.create_timer(min(TICK_PERIOD_S, timeouts.stale_s / 4.0), self._on_tick,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._health = ControllerHealth()   # for /diagnostics (rqt_robot_monitor)
        publish_diagnostics(self, lambda stamp: controller_diagnostics(self.get_namespace(), self._health, stamp))
        self._program = RobotProgramMonitor(required=bool(p["robot_program_topic"]), topic=p["robot_program_topic"])
        if p["camera_topic"]:
            self._streams.append(self.create_subscription(Image, p["camera_topic"], self._on_image, 2))
        if p["robot_program_topic"]:  # latched, published when it changes (ur_robot_driver)
            self.create_subscription(Bool, p["robot_program_topic"], self._on_program, _LATCHED)
        if p["urdf_path"]:
            self._set_robot(resolve_path(p["urdf_path"]))
        else:
            self.create_subscription(String, "robot_description", self._on_description, _LATCHED)
            self.get_logger().info("waiting for the URDF on robot_description")
        self.get_logger().info(f"commands -> {self._cmd_pub.topic_name}")

    # ------------------------------------------------------------- robot model
    def _set_robot(self, urdf_path: str | Path | None = None, urdf_text: str | None = None) -> None:
        """The encoder and safety filter of a URDF; raises ValueError on a bad URDF / joints."""
        encoder, safety = robot_model(self._params, urdf_path, urdf_text)
        self._lifecycle.set_robot(encoder, safety)
        self.get_logger().info(f"robot: dX={encoder.dX}, command limits {np.round(safety.command_limits, 3).tolist()}")

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

    def _on_image(self, msg: Image) -> None:
        try:
            image = image_from_msg(msg)
        except ValueError as exc:
            self._lifecycle.abort(TrialStatus.ABORTED_STALE_STATE, f"unusable camera image: {exc}")
            return
        self._lifecycle.on_image(image, time_to_seconds(msg.header.stamp), self._steady_s())

    def _on_tick(self) -> None:
        take_missed(*self._streams)  # states and images whose new-message event was lost
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

    def request_reset(self, joint_names, q0: np.ndarray, objects, disturbance) -> None:
        self._reset_future = self._reset_client.call_async(reset_request(joint_names, q0, objects, disturbance))
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
        self._health.trial_ended(outcome.status, outcome.reason, outcome.recording and LoopTiming.of_runner(
            outcome.recording, goal_handle.request.dt))
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

    @property
    def busy(self) -> bool:
        """A trial is active or its result has not been handed to the action server yet."""
        return self._lifecycle.active or self._unreported > 0


def stop_controller(node: ControllerNode, reason: str, executor) -> None:
    """Stop commanding for good: zero the arm, end the running trial CANCELLED, hand its result over."""
    node.get_logger().warning(f"halted ({reason}): commanding zeros")
    node._lifecycle.halt(f"controller node shutting down ({reason})")
    spin_while(executor, lambda: node.busy, 0.5)   # the result handed to the action server
    spin_while(executor, lambda: True, 0.1)        # ... and sent


def main(args: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a network policy runs on one thread
    import torch  # noqa: F401 - now, not in the first policy goal's callback (a 1-2 s stall)
    return run_node(ControllerNode, "controller_node", args, stop_controller)


if __name__ == "__main__":
    sys.exit(main())
