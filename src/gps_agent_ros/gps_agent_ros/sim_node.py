"""sim_node: the PyBullet arm behind the topics a real UR under ros2_control exposes.

Same interface as joint_state_broadcaster + forward_command_controller, so the controller node
cannot tell sim from real:

  publishes   joint_states                         sensor_msgs/JointState (position, velocity,
                                                   effort = torque applied, after clipping)
              robot_description                    std_msgs/String, transient local, once
              /clock                               rosgraph_msgs/Clock (lockstep mode only)
  subscribes  forward_effort_controller/commands   std_msgs/Float64MultiArray [N m]
              forward_velocity_controller/commands std_msgs/Float64MultiArray [rad/s]
  service     reset                                gps_interfaces/srv/ResetArm (introspection on:
                                                   reset/_service_event announces every request;
                                                   it also places the scene's objects and takes the
                                                   trial's disturbance plan: pushes from the reset on)
  with a `scene`: a sensor_node in this process publishes camera/image_raw + camera/camera_info
  rendered from this world (gps_agent_ros.sensor_node)
  with a `peg_task`: the arm simulated with the peg at its flange (the URDF written at start) and the
  block with the hole, placed by each reset's 'hole' object (gps_agent_ros.peg_task)

Commands are held until replaced (the last one of either kind wins); non-finite or wrong-length
commands are dropped and logged, as ForwardCommandController does. Unlike it, a command not
refreshed within `command_timeout_s` is zeroed (steady clock).

Modes (`mode`):
  lockstep  each accepted command advances the sim by exactly `dt` with that command, then
            publishes /clock (sim time = steps * dt) and one joint_states stamped with it. Nothing
            else steps the sim, so the controller can never be late and training runs as fast as
            the loop turns. A reset takes one period of sim time (no physics step) and publishes
            /clock + joint_states stamped with it; the reset response carries that stamp, so the
            controller starts the trial from exactly that state. A rejected command publishes
            nothing. The watchdog runs on a wall-clock timer: it zeroes
            the held command but publishes nothing (one joint_states per step stays the rule).
            As nothing steps without a command here, it only guarantees that no stale command
            outlives a dead controller.
            Several lockstep arms in one domain: remap /clock per namespace.
  realtime  a steady-clock timer at `publish_rate_hz` steps 1/rate of physics with the held
            command and publishes joint_states stamped with the node clock. A reset publishes
            joint_states at once (its stamp in the response) and restarts the timer from there.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from builtin_interfaces.msg import Time as TimeMsg
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos import qos_profile_services_default
from rclpy.service_introspection import ServiceIntrospectionState
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from gps_agent_ros.conversions import as_double_array, disturbance_from_fields, objects_from_fields
from gps_agent_ros.diagnostics import SimHealth, publish_diagnostics, sim_diagnostics
from gps_agent_ros.node_runtime import run_node, take_missed
from gps_agent_ros.sim_params import declare_sim_parameters
from gps_agent_ros.sim_arm import CommandKind, CommandWatchdog, SimArm, SimArmConfig, realtime_substeps
from gps_interfaces.srv import ResetArm

_LOG_THROTTLE_S = 1.0
_NS = 1_000_000_000


class SimNode(Node):
    """Thin ROS wrapper of `SimArm`; see the module docstring for the interface."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('sim_node', **kwargs)
        prm = declare_sim_parameters(self)
        self._lockstep = prm['mode'] == 'lockstep'
        if self._lockstep and self.get_parameter('use_sim_time').value:
            # the node is the source of /clock; listening to it would be a loop
            self.get_logger().warning('lockstep mode publishes /clock itself: ignoring use_sim_time=true')
            self.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, False)])
        physics_step = prm['dt'] / prm['substeps']
        period = prm['dt'] if self._lockstep else 1.0 / prm['publish_rate_hz']
        substeps = prm['substeps'] if self._lockstep else realtime_substeps(period, physics_step)
        self._peg_arm, urdf_path = None, prm['urdf_path']
        if prm['peg_task'] is not None:    # the arm with the peg at its flange
            from gps_agent_ros.peg_task import PegArm
            self._peg_arm = PegArm(urdf_path, prm['peg_task'].peg)
            urdf_path = self._peg_arm.urdf_path
        self._sim = SimArm(SimArmConfig(
            urdf_path=urdf_path, joint_names=tuple(prm['joints']), period=period, substeps=substeps,
            gravity_compensation=prm['gravity_compensation'], armature=prm['armature'],
            damping=prm['damping'], velocity_bandwidth=prm['velocity_bandwidth']))
        self._sim.reset(prm['joints'], prm['initial_positions'] or [0.0] * len(prm['joints']))
        self._scene, self.sensor = None, None
        if prm['scene'] is not None:   # the scene in the arm's world, its camera as a sensor_node
            from gps_agent_ros.scene import Scene
            from gps_agent_ros.sensor_node import SensorNode
            self._scene = Scene(self._sim.client_id, prm['scene'])
            self._last_stamp = TimeMsg()
            self.sensor = SensorNode(self._sim.client_id, prm['scene'].camera, self._lockstep,
                                     lambda: self._last_stamp, namespace=self.get_namespace())
        elif prm['peg_task'] is not None:   # the block with the hole
            from gps_agent_ros.peg_task import PegScene
            self._scene = PegScene(self._sim.client_id, prm['peg_task'])
        self._watchdog = CommandWatchdog(prm['command_timeout_s'])
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._health = SimHealth(prm['mode'], None if self._lockstep else prm['publish_rate_hz'], self._steady_s())
        publish_diagnostics(self, lambda stamp: sim_diagnostics(self.get_namespace(),
                                                                self._health.report(self._steady_s()), stamp))
        self._state = JointState(name=list(prm['joints']))
        self._clock_msg = ClockMsg()

        self._state_pub = self.create_publisher(JointState, 'joint_states', 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self._description_pub = self.create_publisher(String, 'robot_description', latched)
        self._clock_pub = self.create_publisher(ClockMsg, '/clock', 10) if self._lockstep else None
        self._command_subs = [
            self.create_subscription(Float64MultiArray, 'forward_effort_controller/commands',
                                     lambda msg: self._on_command(CommandKind.EFFORT, msg), 10),
            self.create_subscription(Float64MultiArray, 'forward_velocity_controller/commands',
                                     lambda msg: self._on_command(CommandKind.VELOCITY, msg), 10)]
        reset = self.create_service(ResetArm, 'reset', self._on_reset)
        # every request announced on reset/_service_event: a controller sees resets not its own
        reset.configure_introspection(self.get_clock(), qos_profile_services_default, ServiceIntrospectionState.METADATA)
        if self._lockstep:
            check_period = min(0.05, self._watchdog.timeout_s / 5.0)
            self.create_timer(check_period, self._check_watchdog, clock=self._steady)
        else:
            self._tick_timer = self.create_timer(period, self._on_tick, clock=self._steady)

        self._description_pub.publish(String(data=Path(urdf_path).read_text()))   # the arm simulated
        self._publish_state()
        self.get_logger().info(
            f'{prm["mode"]}: {len(prm["joints"])} joints, period {period * 1e3:.3g} ms in {substeps} '
            f'physics steps, command timeout {self._watchdog.timeout_s} s')

    # ------------------------------------------------------------- callbacks
    def _on_command(self, kind: CommandKind, msg: Float64MultiArray) -> None:
        try:
            self._sim.set_command(kind, msg.data)
        except ValueError as err:
            self._health.command_dropped()
            self.get_logger().error(f'dropped command: {err}', throttle_duration_sec=_LOG_THROTTLE_S)
            return
        self._watchdog.feed(self._steady_s())
        if self._lockstep:
            self._sim.step()
            self._health.stepped()
            self._publish_state()

    def _on_tick(self) -> None:
        if not self.context.ok():  # a tick already queued when SIGINT shut the context down
            return
        self._check_watchdog()
        self._sim.step()
        self._health.stepped()
        self._publish_state()

    def _check_watchdog(self) -> None:
        take_missed(*self._command_subs)   # commands whose new-message event was lost (lockstep would stall)
        if self._watchdog.check(self._steady_s()):
            self._health.watchdog_tripped()
            self._sim.zero_command()
            self.get_logger().warning(f'no command for {self._watchdog.timeout_s} s: command zeroed')

    def _on_reset(self, request: ResetArm.Request, response: ResetArm.Response) -> ResetArm.Response:
        if self._lockstep:   # commands sent before the reset request act before it (however late their events)
            take_missed(*self._command_subs)
        try:
            objects = objects_from_fields(request.object_names, request.object_positions)
            if objects and self._scene is None:
                raise ValueError(f'objects {sorted(objects)} to place, but this simulation has no scene')
            disturbance = disturbance_from_fields(request)
            self._sim.reset(list(request.joint_names), np.asarray(request.joint_positions, dtype=float), disturbance)
            if self._scene is not None:
                self._scene.place(objects)
        except ValueError as err:
            response.success, response.message = False, f'reset refused: {err}'
            self.get_logger().error(response.message)
            return response
        self._watchdog.disarm()
        self._health.reset()
        response.stamp = self._publish_state()
        if not self._lockstep:
            # restart the tick grid at the reset state: a trial indexes its steps by stamp
            # differences from its first state, usually this one; an arbitrary phase between
            # the two would put every later stamp near a rounding boundary for some resets
            self._tick_timer.reset()
        response.success, response.message = True, 'reset'
        return response

    # --------------------------------------------------------------- helpers
    @staticmethod
    def _steady_s() -> float:
        """Seconds on the steady clock (CLOCK_MONOTONIC, as the watchdog timer's STEADY_TIME)."""
        return time.monotonic()

    def _publish_state(self) -> TimeMsg:
        """joint_states of the current sim state (returns its stamp); lockstep: /clock first, both at
        sim time.

        Hot path (once per step): both messages are built first and then published back to
        back, so that the controller receives the two together.
        """
        if self._lockstep:
            sec, nanosec = divmod(self._sim.sim_time_ns, _NS)
            stamp = TimeMsg(sec=sec, nanosec=nanosec)
        else:
            stamp = self.get_clock().now().to_msg()
        if self.sensor is not None:   # lockstep: the image of this state, before its joint_states
            self._last_stamp = stamp
            if self._lockstep:
                self.sensor.publish(stamp)
        q, qd = self._sim.joint_state()
        msg = self._state
        msg.header.stamp = stamp
        msg.position, msg.velocity, msg.effort = as_double_array(q), as_double_array(qd), as_double_array(self._sim.effort)
        if self._lockstep:
            self._clock_msg.clock = stamp
            self._clock_pub.publish(self._clock_msg)
        self._state_pub.publish(msg)
        return stamp

    def destroy_node(self) -> None:
        if getattr(self, 'sensor', None) is not None:
            self.sensor.destroy_node()
        sim = getattr(self, '_sim', None)  # absent if __init__ failed
        if sim is not None:
            sim.close()
        if getattr(self, '_peg_arm', None) is not None:
            self._peg_arm.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Spin until SIGINT/SIGTERM (rclpy's own handlers off: a callback never races the shutdown)."""
    return run_node(SimNode, 'sim_node', args, extra=lambda node: [node.sensor] if node.sensor else [])


if __name__ == '__main__':
    sys.exit(main())
