"""controller_node: runs GPS trials on an arm behind the RunTrial action.

Topics (relative: push the node into a namespace per arm, e.g. /arm0):
  sub  joint_states                  sensor_msgs/JointState (joint_state_broadcaster or sim_node)
  pub  <controller_name>/commands    std_msgs/Float64MultiArray (forward_command_controller)
  sub  robot_description             std_msgs/String, transient local (only if urdf_path is empty)
  client  <reset_service>            gps_interfaces/srv/ResetArm
  action  run_trial                  gps_interfaces/action/RunTrial

One goal = validate the controller -> reset the arm -> T control steps. The command for step t is
computed and published inside the joint_states callback (lowest latency). The goal is driven by
callbacks only (acceptance, the reset response, joint_states, the watchdog timer, one-shot
executor tasks), never by a pending coroutine: in this rclpy an awaiting coroutine is resumed on
every executor iteration, which kept a core busy for the whole trial. The result is handed to the
action server through a synchronous execute callback when the goal ends. The reset is requested
once every command sent has been answered by a joint_states (bounded by RESET_SETTLE_S): a
lockstep simulator steps once per command, and a zero command overtaken by the reset request
would move the arm off its reset state. A steady-clock watchdog timer aborts on stale joint
states (sim time would stop together with a stalled simulator). Every way out (completion,
abort, cancel, invalid goal, SIGINT/SIGTERM) publishes a zero command; only a validated
controller's filtered output is ever published otherwise.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.clock import Clock, ClockType
from rclpy.experimental import EventsExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from gps_agent_ros.conversions import (JointStateReader, TrialGoal, run_trial_result,
                                       time_to_seconds, to_float64_multi_array,
                                       trial_goal_from_msg)
from gps_agent_ros.controller_params import declare_controller_parameters
from gps_agent_ros.trial_runner import TrialRunner, TrialStatus
from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.safety import SafetyFilter, StaleStateMonitor
from gps_controllers.state_encoder import StateEncoder
from gps_interfaces.action import RunTrial
from gps_interfaces.srv import ResetArm

FEEDBACK_EVERY = 10          # steps between feedback messages
WATCHDOG_PERIOD_S = 0.02     # upper bound; shorter for small stale timeouts
RESET_MATCH_TOL = 1e-3       # rad: a state this close to q0 after the reset request is post-reset
RESET_SETTLE_S = 0.2         # s: at most this long the reset waits for commands to be answered
SPIN_TIMEOUT_S = 0.1         # executor.spin_once timeout: bounds the reaction time to signals

# phases of the active goal
_VALIDATE, _RESET, _TRIAL, _ENDED = "validate", "reset", "trial", "ended"


class ControllerNode(Node):
    """Serves RunTrial: linear-Gaussian controller trials on one arm (see module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("controller_node", **kwargs)
        p = self._declare_parameters()
        self._joints: list[str] = p["joints"]
        self._ee_link, self._base_link = p["ee_link"], p["base_link"] or None
        self._ee_points = np.asarray(p["ee_points"], dtype=float).reshape(-1, 3)
        self._interface, self._margin = p["command_interface"], p["velocity_margin"]
        self._reset_name, self._reset_timeout = p["reset_service"], p["reset_timeout_s"]
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._monitor = StaleStateMonitor(p["stale_timeout_s"])
        # robot model: built from urdf_path now, or from robot_description when it arrives
        self._encoder: StateEncoder | None = None
        self._safety: SafetyFilter | None = None
        self._reader = JointStateReader(self._joints)
        self._q, self._qd = np.zeros(len(self._joints)), np.zeros(len(self._joints))
        self._zeros = np.zeros(len(self._joints))
        # the active goal (one at a time); the runner reference is swapped between trials only
        self._busy = False
        self._runner: TrialRunner | None = None
        self._goal_handle: ServerGoalHandle | None = None
        self._phase: str | None = None               # _VALIDATE .. _ENDED while a goal is active
        self._trial: TrialGoal | None = None         # validated goal, until its trial starts
        self._reset_future: Future | None = None     # reset request in flight
        self._reset_sent = self._reset_deadline = self._settle_deadline = 0.0
        self._ended: TrialRunner | None = None       # finished trial, result not yet sent
        self._interrupt: str | None = None
        self._idle_state: tuple[JointState, float] | None = None
        # commands published but not yet followed by a joint_states (see _advance_reset)
        self._unanswered = 0
        self._wake_pending = False  # a _progress() task is queued on the executor
        self._pending_description: str | None = None
        self._halted = False  # after halt() only zeros are published
        self._cmd_msg = Float64MultiArray()
        self._feedback = RunTrial.Feedback()

        self._cmd_pub = self.create_publisher(
            Float64MultiArray, f"{p['controller_name']}/commands", 10)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        self._reset_client = self.create_client(ResetArm, self._reset_name)
        self._action = ActionServer(
            self, RunTrial, "run_trial", execute_callback=self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel)
        period = min(WATCHDOG_PERIOD_S, self._monitor.timeout_s / 4.0)
        self.create_timer(period, self._on_watchdog, clock=self._steady)
        if p["urdf_path"]:
            self._set_robot(_resolve_path(p["urdf_path"]))
        else:
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                 reliability=ReliabilityPolicy.RELIABLE)
            self.create_subscription(String, "robot_description", self._on_description, latched)
            self.get_logger().info("waiting for the URDF on robot_description")
        self.get_logger().info(
            f"commands -> {self._cmd_pub.topic_name} ({self._interface}), reset via "
            f"{self.resolve_service_name(self._reset_name)}, stale timeout "
            f"{self._monitor.timeout_s:g} s")

    # ------------------------------------------------------------------ setup
    def _declare_parameters(self) -> dict:
        return declare_controller_parameters(self)

    def _set_robot(self, urdf_path: str | Path) -> None:
        """Build the encoder and safety filter; raises ValueError on a bad URDF / joints."""
        encoder = StateEncoder(urdf_path, self._joints, self._ee_link, self._ee_points,
                               self._base_link)
        safety = SafetyFilter.from_urdf(urdf_path, self._joints, velocity_margin=self._margin,
                                        command_interface=self._interface)
        self._encoder, self._safety = encoder, safety
        self.get_logger().info(
            f"robot: {len(self._joints)} joints, {encoder.n_points} end-effector points on "
            f"{self._ee_link!r}, dX={encoder.dX}, command limits "
            f"{np.round(safety.command_limits, 3).tolist()}")

    def _on_description(self, msg: String) -> None:
        if self._busy:  # never swap the model under a goal: apply it when the goal ends
            self._pending_description = msg.data
            return
        self._apply_description(msg.data)

    def _apply_description(self, urdf: str) -> None:
        self._pending_description = None
        with tempfile.NamedTemporaryFile("w", suffix=".urdf", delete=False) as f:
            f.write(urdf)
        try:
            self._set_robot(f.name)
        except ValueError as exc:
            self.get_logger().error(f"cannot use robot_description: {exc}")
        finally:
            os.unlink(f.name)

    # ---------------------------------------------------------- state / timer
    def _on_joint_states(self, msg: JointState) -> None:
        if self._unanswered:
            self._unanswered -= 1
        runner = self._runner
        if runner is None:
            self._idle_state = (msg, self._steady_s())
            if self._phase == _RESET and not self._unanswered and self._reset_future is None:
                self._wake()  # a reset waiting for the arm to answer every command
            return
        self._monitor.update(self._steady_s())
        try:
            q, qd = self._reader.read(msg, self._q, self._qd)
        except ValueError as exc:
            runner.abort(TrialStatus.ABORTED_STALE_STATE, f"unusable joint_states: {exc}")
        else:
            u = runner.on_state(q, qd, time_to_seconds(msg.header.stamp), self._now_s())
            if u is not None:
                self._publish(u)
                runner.mark_published(self._now_s())
                if runner.steps % FEEDBACK_EVERY == 0:
                    self._feedback.step = runner.steps
                    self._goal_handle.publish_feedback(self._feedback)
        if runner.done:
            self._end_trial()

    def _on_watchdog(self) -> None:
        runner = self._runner
        if runner is not None:
            now = self._steady_s()
            if self._monitor.is_stale(now):
                runner.abort(TrialStatus.ABORTED_STALE_STATE,
                             f"no joint_states for {self._monitor.age(now):.3f} s (stale_timeout_s"
                             f"={self._monitor.timeout_s:g}) after {runner.steps} of "
                             f"{runner.horizon} steps")
            if runner.done:
                self._end_trial()
        elif self._phase is not None:
            self._wake()  # the reset phase re-checks its deadlines on every tick

    def _end_trial(self) -> None:
        """Stop commanding: zeros first, then detach the runner and wake the goal."""
        self._publish(self._zeros)
        self._ended, self._runner = self._runner, None
        self._phase = _ENDED
        self._monitor.reset()
        self._wake()

    # ---------------------------------------------------------------- action
    def _on_goal(self, goal: RunTrial.Goal) -> GoalResponse:
        if self._halted or self._busy:
            self.get_logger().warning(f"rejecting goal {goal.condition!r}: "
                                      f"{'shutting down' if self._halted else 'a trial is running'}")
            return GoalResponse.REJECT
        self._busy = True  # claimed here: a second goal may arrive before execute starts
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: ServerGoalHandle) -> CancelResponse:
        self.get_logger().info("cancel requested")
        self._interrupt = "cancelled by the client"
        runner = self._runner
        if runner is not None:
            runner.abort(TrialStatus.CANCELLED, self._interrupt)
            self._end_trial()
        self._wake()
        return CancelResponse.ACCEPT

    def _on_accepted(self, goal_handle: ServerGoalHandle) -> None:
        """Start the goal without an execute coroutine (see the module docstring): mark it
        EXECUTING, as ServerGoalHandle.execute() does, and let _progress() drive it."""
        goal: RunTrial.Goal = goal_handle.request
        self._goal_handle, self._interrupt, self._phase = goal_handle, None, _VALIDATE
        # ServerGoalHandle.execute() would also start the execute coroutine; only its state
        # change is wanted now (the result is handed over in _complete)
        goal_handle._update_state(_rclpy.GoalEvent.EXECUTE)
        self.get_logger().info(f"goal {goal.condition!r}: T={goal.horizon}, dt={goal.dt:g}")
        self._wake()

    def _progress(self) -> None:
        """Move the active goal on as far as it can go now: validate -> reset -> start the
        trial; complete it when it ended. Runs on wake-ups (_wake) and watchdog ticks; the trial
        itself runs in the joint_states callback."""
        goal_handle = self._goal_handle
        if goal_handle is None or self._phase is None:
            return
        try:
            if self._phase == _VALIDATE:
                try:
                    self._trial = self._validate(goal_handle.request)
                except InvalidController as exc:
                    return self._complete(TrialStatus.INVALID_CONTROLLER, str(exc))
                now = self._steady_s()
                self._reset_deadline = now + self._reset_timeout
                self._settle_deadline = now + RESET_SETTLE_S
                self._phase = _RESET
            if self._phase == _RESET:
                self._advance_reset()
            elif self._phase == _ENDED:
                runner, self._ended = self._ended, None
                self._complete(runner.status, runner.reason, runner)
        except Exception as exc:  # never leave the arm commanded, never report success
            self.get_logger().error(f"goal {goal_handle.request.condition!r} failed: {exc!r}")
            self._complete(TrialStatus.INVALID_CONTROLLER, f"controller node error: {exc!r}")

    def _advance_reset(self) -> None:
        """Reset phase: request the reset once the service is up, start the trial when it
        succeeded; end the goal on an interrupt, a failure or the reset deadline."""
        name = self.resolve_service_name(self._reset_name)
        future = self._reset_future
        if self._interrupt is not None:
            if future is not None and not future.done():
                self._reset_client.remove_pending_request(future)
            return self._complete(TrialStatus.CANCELLED, self._interrupt)
        if future is None:
            if self._unanswered and self._steady_s() < self._settle_deadline:
                # A lockstep simulator steps once per command, the zeros that ended the last
                # goal included. Commands and the reset request travel on different DDS
                # entities, unordered: a zero still queued would step the arm after the reset.
                # A streaming arm answers within a sample period; a silent one within the bound.
                return  # woken by the answering joint_states (or the next watchdog tick)
            if not self._reset_client.service_is_ready():
                if self._steady_s() > self._reset_deadline:
                    self._complete(TrialStatus.RESET_FAILED, f"reset service {name} not available "
                                   f"within {self._reset_timeout:g} s")
                return  # the next watchdog tick looks again
            request = ResetArm.Request(joint_names=list(self._joints),
                                       joint_positions=self._trial.q0.tolist())
            self._reset_sent, self._unanswered = self._steady_s(), 0  # answered or given up
            future = self._reset_future = self._reset_client.call_async(request)
            future.add_done_callback(self._on_reset_response)
            return
        if not future.done():
            if self._steady_s() > self._reset_deadline:
                self._reset_client.remove_pending_request(future)
                self._complete(TrialStatus.RESET_FAILED, f"reset service {name} did not answer "
                               f"within {self._reset_timeout:g} s")
            return
        response = future.result()
        if not response.success:
            return self._complete(TrialStatus.RESET_FAILED, f"reset service {name} failed: "
                                  f"{response.message or '(no message)'}")
        trial, self._trial, self._reset_future = self._trial, None, None
        runner = TrialRunner(self._encoder, trial.controller, self._safety, trial.targets,
                             trial.horizon, trial.dt)
        self._phase = _TRIAL
        self._start_trial(runner, trial, self._reset_sent)

    def _on_reset_response(self, future: Future) -> None:
        if future is self._reset_future and self._phase == _RESET:
            self._progress()

    def _complete(self, status: TrialStatus, reason: str, runner: TrialRunner | None = None
                  ) -> None:
        """End the active goal: zeros, terminal state, then hand the result to the server."""
        goal_handle = self._goal_handle
        goal: RunTrial.Goal = goal_handle.request
        try:
            result = self._finish(goal_handle, status, reason, goal, runner)
        except Exception as exc:  # noqa: BLE001 - still answer the client, never with success
            self.get_logger().error(f"goal {goal.condition!r}: finishing failed: {exc!r}")
            self._publish(self._zeros)
            result = RunTrial.Result(status=int(TrialStatus.INVALID_CONTROLLER),
                                     reason=f"controller node error: {exc!r}",
                                     condition=goal.condition)
            if goal_handle.is_active:
                goal_handle.abort()
        finally:
            self._runner, self._goal_handle, self._phase, self._busy = None, None, None, False
            self._trial = self._reset_future = self._ended = None
        # the server's execute task returns this result at once (the state is already terminal)
        self._action.notify_execute(goal_handle, lambda _handle: result)
        if self._pending_description is not None:
            self._apply_description(self._pending_description)

    @staticmethod
    def _execute(goal_handle: ServerGoalHandle) -> RunTrial.Result:
        """Registered execute callback; goals are run by _on_accepted / _progress instead."""
        raise RuntimeError("RunTrial goals are executed through _on_accepted")

    def _validate(self, goal: RunTrial.Goal) -> TrialGoal:
        if self._encoder is None:
            raise InvalidController("no robot model yet: waiting for robot_description")
        enc = self._encoder
        return trial_goal_from_msg(goal, enc.joint_names, enc.dX, enc.n_points,
                                   enc.position_limits)

    def _start_trial(self, runner: TrialRunner, trial: TrialGoal, reset_sent: float) -> None:
        """Arm the watchdog and hand the runner to the joint_states callback.

        A lockstep simulator publishes the reset state once, possibly before the reset response
        arrives; a state received after the request that matches q0 is therefore used at once.
        """
        self._monitor.update(self._steady_s())
        self._runner = runner
        self.get_logger().info(f"running {trial.condition!r}: {trial.horizon} steps")
        idle, self._idle_state = self._idle_state, None
        if idle is not None and idle[1] >= reset_sent:
            try:
                q, _ = self._reader.read(idle[0])
            except ValueError:
                return
            if np.abs(q - trial.q0).max() <= RESET_MATCH_TOL:
                self._on_joint_states(idle[0])

    def _finish(self, goal_handle: ServerGoalHandle, status: TrialStatus, reason: str,
                goal: RunTrial.Goal, runner: TrialRunner | None = None) -> RunTrial.Result:
        self._publish(self._zeros)
        if runner is not None:
            result = run_trial_result(status, reason, goal.condition, runner.steps, runner.X,
                                      runner.U, runner.stamps, runner.latencies,
                                      runner.compute_times)
            self._log_timing(runner)
        else:
            result = RunTrial.Result(status=int(status), reason=reason, condition=goal.condition)
        if status == TrialStatus.COMPLETED:
            goal_handle.succeed()
            self.get_logger().info(f"goal {goal.condition!r} completed")
        else:
            if status == TrialStatus.CANCELLED and goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
            self.get_logger().warning(
                f"goal {goal.condition!r} ended {TrialStatus(status).name}: {reason}")
        return result

    def _log_timing(self, runner: TrialRunner) -> None:
        n = runner.steps
        if n == 0:
            return
        ct = runner.compute_times[:n] * 1e3
        lat = runner.latencies[:n] * 1e3
        lat = lat[np.isfinite(lat)]
        self.get_logger().info(
            f"{n} steps ({runner.skipped_steps} skipped): compute p50 {np.median(ct):.3f} ms, "
            f"max {ct.max():.3f} ms; latency p50 {np.median(lat) if lat.size else math.nan:.3f}"
            f" ms")

    # ---------------------------------------------------------------- helpers
    def _publish(self, u: np.ndarray) -> None:
        self._cmd_pub.publish(to_float64_multi_array(self._zeros if self._halted else u,
                                                     self._cmd_msg))
        self._unanswered += 1

    def _wake(self) -> None:
        """Run _progress() as a later executor event, not inside the current callback (a cancel
        must be processed by the action server before the goal can end CANCELED)."""
        if self._goal_handle is not None and not self._wake_pending and self.executor is not None:
            self._wake_pending = True
            self.executor.create_task(self._on_wake)

    def _on_wake(self) -> None:
        self._wake_pending = False
        self._progress()

    @staticmethod
    def _steady_s() -> float:
        """Seconds on the steady clock (CLOCK_MONOTONIC, as the watchdog timer's STEADY_TIME)."""
        return time.monotonic()

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def busy(self) -> bool:
        return self._busy

    def halt(self, reason: str) -> None:
        """Stop commanding for good (on SIGINT/SIGTERM, between executor callbacks): publish
        zeros and end the running trial; from now on only zeros are published."""
        self._halted = True
        self._interrupt = reason
        runner = self._runner
        if runner is not None:
            runner.abort(TrialStatus.CANCELLED, reason)
            self._end_trial()  # zeros, and wakes the goal to send its result
        else:
            self._publish(self._zeros)
            self._wake()  # a goal still resetting ends CANCELLED
        self.get_logger().warning(f"halted ({reason}): commanding zeros")


def _resolve_path(path: str) -> str:
    """A file path, or package://<package>/<relative path> through the ament index."""
    prefix = "package://"
    if not path.startswith(prefix):
        return path
    from ament_index_python.packages import get_package_share_directory
    package, _, relative = path[len(prefix):].partition("/")
    return os.path.join(get_package_share_directory(package), relative)


def main(args: list[str] | None = None) -> int:
    """Spin the node on an EventsExecutor; SIGINT/SIGTERM -> zero command, then exit.

    rclpy's own signal handlers are off: they shut the context down first, after which the
    final zero command could no longer be published. The executor is driven by spin_once with a
    timeout: EventsExecutor.spin() busy-waits (a core at 100 %) in this rclpy release, and the
    short return to Python lets the signal handler run.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = ControllerNode()
    except ValueError as exc:
        rclpy.logging.get_logger("controller_node").fatal(str(exc))
        rclpy.try_shutdown()
        return 1
    executor = EventsExecutor()
    executor.add_node(node)
    received: list[str] = []

    def on_signal(signum: int, _frame) -> None:
        received.append(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        while not received and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
        reason = received[0] if received else "context shut down"
    except Exception as exc:  # noqa: BLE001 - report, then zero the arm below
        node.get_logger().fatal(f"executor stopped: {exc!r}")
        reason = f"error: {exc!r}"
    node.halt(f"controller node shutting down ({reason})")
    deadline = time.monotonic() + 0.5  # let the running goal's result go out
    while node.busy and time.monotonic() < deadline and rclpy.ok():
        executor.spin_once(timeout_sec=0.01)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
