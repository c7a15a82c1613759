"""Simulated arm + GPS controller (+ trainer): the node graph on a ROS 2 install.

    ros2 launch gps_agent_ros sim.launch.py [experiment:=/path/to/exp.yaml] [namespace:=arm0]
        [mode:=lockstep|realtime] [train:=true] [out:=runs/ur5e_reach_ros]

Without launch_ros (PyPI-only machines) `gps-bringup` / `gps-train --agent ros` start the same
nodes with the same parameters (gps_agent_ros.node_params).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    from gps_agent_ros.node_params import controller_parameters, sim_parameters
    from gps_core.config import load_experiment

    experiment = LaunchConfiguration('experiment').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context)
    mode = LaunchConfiguration('mode').perform(context)
    cfg = load_experiment(experiment)
    nodes = [
        Node(package='gps_agent_ros', executable='sim_node', name='sim_node', namespace=namespace,
             parameters=[sim_parameters(cfg, mode)], output='screen'),
        Node(package='gps_agent_ros', executable='controller_node', name='controller_node',
             namespace=namespace, parameters=[controller_parameters(cfg, use_sim_time=mode == 'lockstep')],
             output='screen'),
    ]
    if LaunchConfiguration('train').perform(context).lower() == 'true':
        nodes.append(Node(package='gps_agent_ros', executable='trainer_node', name='trainer_node',
                          parameters=[{'experiment': experiment,
                                       'out': LaunchConfiguration('out').perform(context),
                                       'namespaces': [namespace]}], output='screen'))
    return nodes


def generate_launch_description():
    share = get_package_share_directory('gps_agent_ros')
    return LaunchDescription([
        DeclareLaunchArgument('experiment', default_value=os.path.join(share, 'config', 'ur5e_reach.yaml'),
                              description='experiment YAML'),
        DeclareLaunchArgument('namespace', default_value='arm0', description='arm namespace'),
        DeclareLaunchArgument('mode', default_value='lockstep', description='lockstep | realtime'),
        DeclareLaunchArgument('train', default_value='true', description='also start trainer_node'),
        DeclareLaunchArgument('out', default_value='runs/ur5e_reach_ros', description='trainer output folder'),
        OpaqueFunction(function=_nodes),
    ])
