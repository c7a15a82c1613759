"""ur_reset_node: the `reset` service (gps_interfaces/ResetArm) on a real UR under ros2_control.

A reset activates joint_trajectory_controller (controller_manager/switch_controller, STRICT),
sends one FollowJointTrajectory goal to the start pose, waits for it, and switches back to the
trial's forward controller (forward_effort_controller or forward_velocity_controller), so
trials and resets never fight over the command interfaces.

Needs control_msgs and controller_manager_msgs (part of any ros2_control install; not on PyPI,
so this node runs only on a ROS 2 install). Launched by launch/ur.launch.py.
"""
from __future__ import annotations

import rclpy
from builtin_interfaces.msg import Duration
from control_msgs.action import FollowJointTrajectory
from controller_manager_msgs.srv import SwitchController
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectoryPoint

from gps_interfaces.srv import ResetArm


class URResetNode(Node):
    def __init__(self) -> None:
        super().__init__('ur_reset_node')
        self.joints = list(self.declare_parameter('joints', ['']).value)
        self.trial_controller = self.declare_parameter('trial_controller', 'forward_effort_controller').value
        self.reset_controller = self.declare_parameter('reset_controller', 'joint_trajectory_controller').value
        self.move_duration_s = float(self.declare_parameter('move_duration_s', 5.0).value)
        group = ReentrantCallbackGroup()
        self.switch = self.create_client(SwitchController, '/controller_manager/switch_controller',
                                         callback_group=group)
        self.trajectory = ActionClient(self, FollowJointTrajectory,
                                       f'/{self.reset_controller}/follow_joint_trajectory', callback_group=group)
        self.create_service(ResetArm, 'reset', self.on_reset, callback_group=group)

    async def _switch(self, activate: str, deactivate: str) -> bool:
        req = SwitchController.Request(activate_controllers=[activate], deactivate_controllers=[deactivate],
                                       strictness=SwitchController.Request.STRICT)
        return bool((await self.switch.call_async(req)).ok)

    async def on_reset(self, request: ResetArm.Request, response: ResetArm.Response) -> ResetArm.Response:
        if sorted(request.joint_names) != sorted(self.joints) or len(request.joint_positions) != len(self.joints):
            response.success, response.message = False, f'reset expects joints {self.joints}'
            return response
        target = dict(zip(request.joint_names, request.joint_positions))
        if not await self._switch(self.reset_controller, self.trial_controller):
            response.success, response.message = False, f'could not activate {self.reset_controller}'
            return response
        goal = FollowJointTrajectory.Goal()
        goal.trajectory.joint_names = self.joints
        secs = int(self.move_duration_s)
        goal.trajectory.points = [JointTrajectoryPoint(
            positions=[float(target[j]) for j in self.joints], velocities=[0.0] * len(self.joints),
            time_from_start=Duration(sec=secs, nanosec=int((self.move_duration_s - secs) * 1e9)))]
        handle = await self.trajectory.send_goal_async(goal)
        result = await handle.get_result_async() if handle.accepted else None
        moved = result is not None and result.result.error_code == FollowJointTrajectory.Result.SUCCESSFUL
        switched_back = await self._switch(self.trial_controller, self.reset_controller)
        response.success = moved and switched_back
        response.message = 'ok' if response.success else (
            'trajectory to the start pose failed' if not moved else f'could not re-activate {self.trial_controller}')
        return response


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = URResetNode()
    try:
        rclpy.spin(node, executor=MultiThreadedExecutor())
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
