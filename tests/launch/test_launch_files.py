"""Static checks of the launch files and the ros2_control config (launch_ros and ros2_control are
not installable here): they parse, every executable / package / file they name exists, and the
parameters they pass are parameters the nodes declare."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from gps_agent_ros.node_params import controller_parameters, sim_parameters
from gps_core.config import load_experiment

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / 'src' / 'gps_agent_ros'
LAUNCH = sorted((REPO / 'launch').glob('*.launch.py'))
UR_JOINTS = ['shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint', 'wrist_2_joint',
             'wrist_3_joint']
EXTERNAL_PACKAGES = {'ur_robot_driver'}          # provided by a ROS 2 install with the UR driver


def console_scripts() -> set[str]:
    text = (PKG / 'setup.py').read_text()
    return set(re.findall(r"'([\w-]+) = gps_agent_ros\.\w+:main'", text))


def declared_parameters(node_module: str) -> set[str]:
    """Names passed literally to declare_parameter(...) in a node's source (nodes that cannot be
    instantiated here, e.g. ur_reset_node needs control_msgs)."""
    tree = ast.parse((PKG / 'gps_agent_ros' / f'{node_module}.py').read_text())
    names = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, 'attr', '') == 'declare_parameter':
            if call.args and isinstance(call.args[0], ast.Constant):
                names.add(call.args[0].value)
    return names


def node_calls(path: Path) -> list[ast.Call]:
    return [c for c in ast.walk(ast.parse(path.read_text()))
            if isinstance(c, ast.Call) and getattr(c.func, 'id', '') == 'Node']


def kwarg(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_there_are_launch_files():
    assert {p.name for p in LAUNCH} >= {'sim.launch.py', 'ur.launch.py'}


@pytest.mark.parametrize('path', LAUNCH, ids=lambda p: p.name)
def test_launch_file_nodes_exist(path):
    scripts = console_scripts()
    calls = node_calls(path)
    assert calls, f'{path.name} starts no node'
    for call in calls:
        pkg, exe = kwarg(call, 'package'), kwarg(call, 'executable')
        assert isinstance(pkg, ast.Constant) and pkg.value == 'gps_agent_ros'
        assert isinstance(exe, ast.Constant) and exe.value in scripts, f'{exe.value} is not a console script'
        assert (PKG / 'gps_agent_ros' / f'{exe.value}.py').is_file()


@pytest.mark.parametrize('path', LAUNCH, ids=lambda p: p.name)
def test_launch_file_packages_and_files_exist(path):
    text = path.read_text()
    for pkg in re.findall(r"get_package_share_directory\('(\w+)'\)", text):
        assert pkg == 'gps_agent_ros' or pkg in EXTERNAL_PACKAGES, pkg
    for folder, name in re.findall(r"os\.path\.join\(share, '(\w+)', '([\w.]+)'\)", text):
        assert (REPO / folder / name).is_file(), f'{path.name} names {folder}/{name}, which does not exist'


@pytest.mark.parametrize('path', LAUNCH, ids=lambda p: p.name)
def test_literal_parameters_are_declared(path):
    """Dict-literal parameters given to a node in a launch file are declared by that node."""
    for call in node_calls(path):
        exe = kwarg(call, 'executable').value
        params = kwarg(call, 'parameters')
        for element in getattr(params, 'elts', []):
            if isinstance(element, ast.Dict):
                keys = {k.value for k in element.keys}
                assert keys <= declared_parameters(exe), f'{exe}: undeclared {keys - declared_parameters(exe)}'


def instantiated_parameters(node_cls: type, overrides: dict) -> set[str]:
    """The parameters a node really declares: construct it (with the given values) and list them."""
    import rclpy
    from rclpy.parameter import Parameter

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = node_cls(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        names = set(node._parameters)
        node.destroy_node()
        return names
    finally:
        rclpy.shutdown(context=context)


def test_generated_parameters_are_declared():
    from gps_agent_ros.controller_node import ControllerNode
    from gps_agent_ros.sim_node import SimNode

    cfg = load_experiment(REPO / 'config' / 'ur5e_reach.yaml')
    sim = sim_parameters(cfg)
    assert set(sim) <= instantiated_parameters(SimNode, sim)
    ctrl = controller_parameters(cfg)
    assert set(ctrl) <= instantiated_parameters(ControllerNode, ctrl)
    assert controller_parameters(cfg, 'velocity')['controller_name'] == 'forward_velocity_controller'


def test_ur_launch_passes_the_driver_arguments():
    text = (REPO / 'launch' / 'ur.launch.py').read_text()
    for arg in ('ur_type', 'robot_ip', 'use_mock_hardware', 'controllers_file', 'initial_joint_controller'):
        assert f"'{arg}'" in text
    assert "'ur_control.launch.py'" in text


def test_ur_controllers_config():
    cfg = yaml.safe_load((REPO / 'config' / 'ur_controllers.yaml').read_text())
    manager = cfg['controller_manager']['ros__parameters']
    assert manager['update_rate'] == 500                       # UR e-Series runs ros2_control at 500 Hz
    controllers = {k: v for k, v in manager.items() if isinstance(v, dict)}
    assert all('type' in v for v in controllers.values())
    assert controllers['forward_effort_controller']['type'] == 'forward_command_controller/ForwardCommandController'
    assert controllers['joint_trajectory_controller']['type'] == 'joint_trajectory_controller/JointTrajectoryController'
    for name in ('forward_effort_controller', 'forward_velocity_controller', 'joint_trajectory_controller'):
        assert cfg[name]['ros__parameters']['joints'] == UR_JOINTS
    assert cfg['forward_effort_controller']['ros__parameters']['interface_name'] == 'effort'
    assert cfg['forward_velocity_controller']['ros__parameters']['interface_name'] == 'velocity'
    # every configured controller is one the manager knows
    assert {k for k in cfg if k != 'controller_manager'} <= set(controllers)


def test_launch_and_config_files_are_installed():
    text = (PKG / 'setup.py').read_text()
    for folder, pattern in (('launch', '*.launch.py'), ('urdf', '*.urdf'), ('config', '*.yaml')):
        assert f"top_level('{folder}', '{pattern}')" in text
