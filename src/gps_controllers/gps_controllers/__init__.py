"""gps_controllers: the on-robot GPS runtime, ROS-free in its classes.

  state_encoder.StateEncoder   q [nj], qd [nj], targets [P, 3] -> x [dX = 2 nj + 6 P]
                               (end-effector points and velocities via pinocchio from the URDF)
  urdf_limits.read_joint_limits  effort / velocity / position limits from a URDF

Nothing here imports rclpy; the nodes in gps_agent_ros wrap these classes.
"""
from __future__ import annotations

from .state_encoder import StateEncoder

__all__ = ["StateEncoder"]
