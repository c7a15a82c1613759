"""A real (or mock) UR arm under ur_robot_driver + the GPS controller and reset nodes (+ trainer).

    ros2 launch gps_agent_ros ur.launch.py ur_type:=ur5e robot_ip:=192.168.1.10 \
        [use_mock_hardware:=false] [command_interface:=effort|velocity] [train:=false]

Includes ur_robot_driver's ur_control.launch.py with nothing but what every supported release
declares (ur_type, robot_ip, use_mock_hardware, launch_rviz, tf_prefix): the driver keeps its own
controllers file, whose controllers its spawners load (a forked file falls behind: the spawner
stops at the first controller it does not configure), its per-model update rate (500 Hz
e-Series, 125 Hz CB3) and its default initial controller. Any other driver argument can be
given on this command line (e.g. headless_mode:=true, kinematics_params_file:=...).

ur_reset_node serves `reset`: it reads list_controllers, activates the reset controller
(scaled_joint_trajectory_controller), moves to the trial's start pose, verifies it from
joint_states and gives the arm back to the forward controller the trials command (switching
only what the controllers' states need), refusing while the robot program does not run.
controller_node builds its state encoder from /robot_description, as the driver publishes it.
With tf_prefix set, the experiment must name the prefixed joints and links.
"""
from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

DRIVER_ARGUMENTS = ('ur_type', 'robot_ip', 'use_mock_hardware', 'launch_rviz', 'tf_prefix')


def _nodes(context):
    from gps_agent_ros.node_params import controller_parameters
    from gps_agent_ros.ur_controllers import PROGRAM_RUNNING_TOPIC
    from gps_agent_ros.ur_reset import ResetSettings, reset_node_parameters
    from gps_core.config import load_experiment

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    experiment, interface, prefix = arg('experiment'), arg('command_interface'), arg('tf_prefix')
    mock = arg('use_mock_hardware').lower() == 'true'
    cfg = load_experiment(experiment)
    joints = list(cfg.robot.joints)
    if prefix and not all(j.startswith(prefix) for j in joints):
        raise RuntimeError(f'tf_prefix:={prefix} but the experiment {experiment} names the joints {joints}: '
                           f'name the prefixed joints (and links) the driver publishes')
    reset = reset_node_parameters(joints, interface, use_mock_hardware=mock)
    control = controller_parameters(cfg, interface, urdf_from_topic=True)
    # controller_node must wait longer for a reset than the reset can take
    control['reset_timeout_s'] = ResetSettings(**reset).worst_case_s + 5.0
    # trials only while the robot program runs (mock hardware of older releases never reports it)
    control['robot_program_topic'] = '' if mock else PROGRAM_RUNNING_TOPIC
    nodes = [
        Node(package='gps_agent_ros', executable='controller_node', name='controller_node',
             parameters=[control], output='screen'),
        Node(package='gps_agent_ros', executable='ur_reset_node', name='ur_reset_node',
             parameters=[reset], output='screen'),
    ]
    if arg('train').lower() == 'true':
        nodes.append(Node(package='gps_agent_ros', executable='trainer_node', name='trainer_node',
                          parameters=[{'experiment': experiment, 'out': arg('out'), 'namespaces': ['']}],
                          output='screen'))
    return nodes


def generate_launch_description():
    share = get_package_share_directory('gps_agent_ros')
    driver = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(
            get_package_share_directory('ur_robot_driver'), 'launch', 'ur_control.launch.py')),
        launch_arguments={name: LaunchConfiguration(name) for name in DRIVER_ARGUMENTS}.items())
    return LaunchDescription([
        DeclareLaunchArgument('ur_type', default_value='ur5e', description='UR model (ur5e, ur10e, ...)'),
        DeclareLaunchArgument('robot_ip', description='IP address of the robot controller'),
        DeclareLaunchArgument('use_mock_hardware', default_value='false',
                              description='ros2_control mock hardware instead of the robot'),
        DeclareLaunchArgument('command_interface', default_value='effort', choices=['effort', 'velocity'],
                              description='effort (torque control: driver with the effort interface, '
                                          'PolyScope >= 5.23) | velocity'),
        DeclareLaunchArgument('tf_prefix', default_value='', description="the driver's joint/link name prefix"),
        DeclareLaunchArgument('experiment', default_value=os.path.join(share, 'config', 'ur5e_reach.yaml'),
                              description='experiment YAML'),
        DeclareLaunchArgument('train', default_value='false', description='also start trainer_node'),
        DeclareLaunchArgument('out', default_value='runs/ur5e_reach_ur', description='trainer output folder'),
        DeclareLaunchArgument('launch_rviz', default_value='true', description='start rviz'),
        driver,
        OpaqueFunction(function=_nodes),
    ])
