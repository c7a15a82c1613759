"""gps_agent_ros: agents (in-process PyBullet, ROS 2 graph), nodes and the gps-train CLI.

The workspace-level launch/, urdf/ and config/ folders are installed into
share/gps_agent_ros/ so `ros2 launch gps_agent_ros ...` and package:// URIs find them.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'gps_agent_ros'
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.relpath(os.path.join(HERE, '..', '..'), HERE)


def top_level(folder, pattern):
    """Files of a workspace-level folder, relative to this package (setup.py runs from here)."""
    return sorted(os.path.relpath(p, HERE) if os.path.isabs(p) else p
                  for p in glob(os.path.join(TOP, folder, pattern)))


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', top_level('launch', '*.launch.py')),
        ('share/' + package_name + '/urdf', top_level('urdf', '*.urdf')),
        ('share/' + package_name + '/config', top_level('config', '*.yaml') + top_level('config', '*.rviz')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='gps_ros2 developers',
    maintainer_email='gps_ros2@users.noreply.github.com',
    description='GPS agents (in-process PyBullet, ROS 2 node graph), nodes and the gps-train command',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'gps-train = gps_agent_ros.train_cli:main',
            'gps-bringup = gps_agent_ros.bringup:main',
            'gps-evaluate = gps_agent_ros.evaluate_cli:main',
            'composed_arm = gps_agent_ros.composed_arm:main',
            'controller_node = gps_agent_ros.controller_node:main',
            'sim_node = gps_agent_ros.sim_node:main',
            'trainer_node = gps_agent_ros.trainer_node:main',
            'ur_reset_node = gps_agent_ros.ur_reset_node:main',
        ],
    },
)
