"""Simulated arm + GPS controller (+ trainer), and what rviz needs to show them.

    ros2 launch gps_agent_ros sim.launch.py [experiment:=/path/to/exp.yaml] [namespace:=arm0]
        [mode:=lockstep|realtime] [compose:=false] [train:=true] [out:=runs/ur5e_reach_ros]
        [launch_rviz:=false]

In the arm's namespace: sim_node, controller_node (compose:=true: both in one composed_arm process,
their parameters in one file keyed by each node's name; less CPU per lockstep trial) and
robot_state_publisher (robot_description
from the experiment's URDF; it turns the sim's joint_states into TF, so rviz's RobotModel shows
the arm). trainer_node publishes gps/markers (targets, sampled paths). launch_rviz:=true also
starts rviz2 with config/gps.rviz (Fixed Frame base_link, the robot of /arm0, /gps/markers; see
docs/watching.md for another namespace). robot_state_publisher broadcasts on /tf and /tf_static
without a frame prefix: one arm per domain in rviz.

Without launch_ros (PyPI-only machines) `gps-bringup` / `gps-train --agent ros` start the GPS
nodes with the same parameters (gps_agent_ros.node_params).
"""
import os
import tempfile
from pathlib import Path

import yaml

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    from gps_agent_ros.node_params import controller_parameters, params_file, sim_parameters
    from gps_core.config import load_experiment

    experiment = LaunchConfiguration('experiment').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context)
    mode = LaunchConfiguration('mode').perform(context)
    cfg = load_experiment(experiment)
    sim_time = mode == 'lockstep'    # the lockstep sim publishes /clock: stamps are sim time
    arm = {'sim_node': sim_parameters(cfg, mode), 'controller_node': controller_parameters(cfg, use_sim_time=sim_time)}
    if LaunchConfiguration('compose').perform(context).lower() == 'true':
        # two nodes in one process: one parameters file, a section per node (a dict would reach both)
        path = Path(tempfile.mkdtemp(prefix='gps_sim_launch_')) / 'composed_arm.yaml'
        path.write_text(yaml.safe_dump(params_file(arm, namespace)))
        nodes = [Node(package='gps_agent_ros', executable='composed_arm', namespace=namespace,
                      parameters=[str(path)], output='screen')]
    else:
        nodes = [Node(package='gps_agent_ros', executable=name, name=name, namespace=namespace,
                      parameters=[params], output='screen') for name, params in arm.items()]
    nodes += [
        Node(package='robot_state_publisher', executable='robot_state_publisher', name='robot_state_publisher',
             namespace=namespace, output='screen',
             parameters=[{'robot_description': Path(cfg.resolve(cfg.robot.urdf)).read_text(),
                          'use_sim_time': sim_time}]),
    ]
    if LaunchConfiguration('train').perform(context).lower() == 'true':
        nodes.append(Node(package='gps_agent_ros', executable='trainer_node', name='trainer_node',
                          parameters=[{'experiment': experiment,
                                       'out': LaunchConfiguration('out').perform(context),
                                       'namespaces': [namespace]}], output='screen'))
    if LaunchConfiguration('launch_rviz').perform(context).lower() == 'true':
        rviz_config = os.path.join(get_package_share_directory('gps_agent_ros'), 'config', 'gps.rviz')
        nodes.append(Node(package='rviz2', executable='rviz2', name='rviz2', arguments=['-d', rviz_config],
                          parameters=[{'use_sim_time': sim_time}], output='log'))
    return nodes


def generate_launch_description():
    share = get_package_share_directory('gps_agent_ros')
    return LaunchDescription([
        DeclareLaunchArgument('experiment', default_value=os.path.join(share, 'config', 'ur5e_reach.yaml'),
                              description='experiment YAML'),
        DeclareLaunchArgument('namespace', default_value='arm0', description='arm namespace'),
        DeclareLaunchArgument('mode', default_value='lockstep', description='lockstep | realtime'),
        DeclareLaunchArgument('compose', default_value='false',
                              description="true: sim_node and controller_node in one process (simulation only)"),
        DeclareLaunchArgument('train', default_value='true', description='also start trainer_node'),
        DeclareLaunchArgument('out', default_value='runs/ur5e_reach_ros', description='trainer output folder'),
        DeclareLaunchArgument('launch_rviz', default_value='false',
                              description='also start rviz2 with config/gps.rviz'),
        OpaqueFunction(function=_nodes),
    ])
