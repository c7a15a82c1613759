"""sensor_node: the simulated camera, publishing what a camera driver (usb_cam,
realsense2_camera) does:

  pub  camera/image_raw     sensor_msgs/Image, rgb8
  pub  camera/camera_info   sensor_msgs/CameraInfo (K, P from the intrinsics; no distortion)

It renders the simulated scene (gps_agent_ros.scene: table, blocks, the arm) with PyBullet's
TinyRenderer, and runs in sim_node's process, on the very world sim_node steps: the image shows
exactly the state of the joint_states it is stamped with, the objects the reset placed are the
ones in view, and in lockstep each step's image is published before that step's joint_states
(no second world to keep in sync, no extra hop). In realtime it renders on its own timer at
`rate_hz`, stamped with the newest joint_states (the world does not change between ticks).
controller_node cannot tell it from a driver: it only sees the two topics.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from gps_agent_ros.conversions import image_msg
from gps_core.scene_config import CameraConfig


class SensorNode(Node):
    def __init__(self, client_id: int, camera: CameraConfig, lockstep: bool,
                 latest_stamp: Callable[[], TimeMsg], **kwargs) -> None:
        super().__init__('sensor_node', **kwargs)
        from gps_agent_ros.scene import Camera   # pybullet: only where a world is simulated
        d = ParameterDescriptor
        self._frame = self.declare_parameter('frame_id', 'camera_optical_frame', d(
            description='frame_id of the images (optical frame: z forward, x right, y down)', read_only=True)).value
        rate = float(self.declare_parameter('rate_hz', 20.0, d(
            description='realtime: images per second (lockstep: one per simulation step)', read_only=True)).value)
        if not rate > 0:
            raise ValueError(f'parameter rate_hz must be > 0, got {rate}')
        self._camera, self._latest_stamp = Camera(client_id, camera), latest_stamp
        self._image_pub = self.create_publisher(Image, 'camera/image_raw', 2)
        self._info_pub = self.create_publisher(CameraInfo, 'camera/camera_info', 2)
        info = self._camera.camera_info()
        self._info = CameraInfo(height=camera.height, width=camera.width, distortion_model='plumb_bob',
                                d=[0.0] * 5, k=np.ravel(info['k']).tolist(), r=np.ravel(info['r']).tolist(),
                                p=np.ravel(info['p']).tolist())
        self._info.header.frame_id = self._frame
        self._msg = Image()
        if not lockstep:
            self.create_timer(1.0 / rate, lambda: self.publish(self._latest_stamp()),
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'{camera.width}x{camera.height} rgb8 -> {self._image_pub.topic_name}'
                               f'{" every simulation step" if lockstep else f" at {rate:g} Hz"}')

    def publish(self, stamp: TimeMsg) -> None:
        """Render the world as it is now and publish the image and camera info with `stamp`."""
        self._info.header.stamp = stamp
        self._image_pub.publish(image_msg(self._camera.render(), stamp, self._frame, self._msg))
        self._info_pub.publish(self._info)
