"""A real (or mock) UR arm under ros2_control + the GPS controller node (+ trainer).

    ros2 launch gps_agent_ros ur.launch.py ur_type:=ur5e robot_ip:=192.168.1.10 \
        [use_mock_hardware:=false] [command_interface:=effort|velocity] [train:=false]

Includes ur_robot_driver's ur_control.launch.py with our controllers file
(config/ur_controllers.yaml: 500 Hz, forward_effort/velocity controllers, JTC for resets).
ur_reset_node serves the `reset` service: it activates joint_trajectory_controller (via
controller_manager/switch_controller), moves to the trial's start pose, then switches back to
the forward controller the trials command. controller_node builds its state encoder from
/robot_description, as published by the driver.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    from gps_agent_ros.node_params import controller_parameters
    from gps_core.config import load_experiment

    experiment = LaunchConfiguration('experiment').perform(context)
    interface = LaunchConfiguration('command_interface').perform(context)
    if interface not in ('effort', 'velocity'):
        raise RuntimeError(f"command_interface must be 'effort' or 'velocity', got {interface!r}")
    cfg = load_experiment(experiment)
    forward = f'forward_{interface}_controller'
    nodes = [
        Node(package='gps_agent_ros', executable='controller_node', name='controller_node',
             parameters=[controller_parameters(cfg, interface, urdf_from_topic=True)], output='screen'),
        Node(package='gps_agent_ros', executable='ur_reset_node', name='ur_reset_node',
             parameters=[{'joints': list(cfg.robot.joints), 'trial_controller': forward,
                          'reset_controller': 'joint_trajectory_controller', 'move_duration_s': 5.0}],
             output='screen'),
    ]
    if LaunchConfiguration('train').perform(context).lower() == 'true':
        nodes.append(Node(package='gps_agent_ros', executable='trainer_node', name='trainer_node',
                          parameters=[{'experiment': experiment,
                                       'out': LaunchConfiguration('out').perform(context),
                                       'namespaces': ['']}], output='screen'))
    return nodes


def generate_launch_description():
    share = get_package_share_directory('gps_agent_ros')
    ur_launch = os.path.join(get_package_share_directory('ur_robot_driver'), 'launch', 'ur_control.launch.py')
    driver = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(ur_launch),
        launch_arguments={
            'ur_type': LaunchConfiguration('ur_type'),
            'robot_ip': LaunchConfiguration('robot_ip'),
            'use_mock_hardware': LaunchConfiguration('use_mock_hardware'),
            'controllers_file': os.path.join(share, 'config', 'ur_controllers.yaml'),
            'initial_joint_controller': 'joint_trajectory_controller',
            'launch_rviz': LaunchConfiguration('launch_rviz'),
        }.items())
    return LaunchDescription([
        DeclareLaunchArgument('ur_type', default_value='ur5e', description='UR model (ur5e, ur10e, ...)'),
        DeclareLaunchArgument('robot_ip', description='IP address of the robot controller'),
        DeclareLaunchArgument('use_mock_hardware', default_value='false',
                              description='ros2_control mock hardware instead of the robot'),
        DeclareLaunchArgument('command_interface', default_value='effort',
                              description='effort (PolyScope >= 5.23 torque control) | velocity'),
        DeclareLaunchArgument('experiment', default_value=os.path.join(share, 'config', 'ur5e_reach.yaml'),
                              description='experiment YAML'),
        DeclareLaunchArgument('train', default_value='false', description='also start trainer_node'),
        DeclareLaunchArgument('out', default_value='runs/ur5e_reach_ur', description='trainer output folder'),
        DeclareLaunchArgument('launch_rviz', default_value='true', description='start rviz'),
        driver,
        OpaqueFunction(function=_nodes),
    ])
