"""gps_agent_ros: GPS agents and ROS 2 nodes.

ROS-free modules (importable without rclpy): pybullet_arm (a torque-controlled URDF arm in
PyBullet) and the in-process agent. The rclpy nodes (controller, trainer, sensor, sim) are thin
wrappers around plain objects; message <-> array conversion lives in one module.
"""
