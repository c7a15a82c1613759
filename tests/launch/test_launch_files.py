"""The launch files, run through a recording stand-in of the launch API (launch_ros is not
installable here; tests/fakes/launch_api.py), checked against their real peers: the installed
console scripts, the nodes' declared parameters (the nodes are constructed), and the
ur_robot_driver releases recorded in tests/fixtures/ur_driver (what each declares and spawns).
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter

from fakes.launch_api import LaunchError, LaunchRecord, evaluate
from fakes.ur_driver import releases
from gps_agent_ros.ur_reset import (ControllerInfo, ResetSettings, choose_reset_controller,
                                    trial_controller_problem)
from gps_core.config import load_experiment

REPO = Path(__file__).resolve().parents[2]
SIM, UR = REPO / 'launch' / 'sim.launch.py', REPO / 'launch' / 'ur.launch.py'
RELEASES = releases()
UR_VARIANTS = {'effort': {}, 'velocity-mock': {'command_interface': 'velocity', 'use_mock_hardware': 'true'}}


@pytest.fixture(scope='module')
def prefix(tmp_path_factory):
    """An ament prefix holding gps_agent_ros's share as setup.py installs it (symlinks to the
    repository's folders) and an ur_robot_driver package, for get_package_share_directory."""
    root = tmp_path_factory.mktemp('ament_prefix')
    index = root / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    for package in ('gps_agent_ros', 'ur_robot_driver'):
        (index / package).touch()
        (root / 'share' / package).mkdir()
    for folder in ('launch', 'config', 'urdf'):
        (root / 'share' / 'gps_agent_ros' / folder).symlink_to(REPO / folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('AMENT_PREFIX_PATH', os.pathsep.join([str(root), os.environ.get('AMENT_PREFIX_PATH', '')]))
        yield root


def run(path: Path, **arguments: str) -> LaunchRecord:
    return evaluate(path, arguments)


def run_ur(variant: str) -> LaunchRecord:
    return run(UR, robot_ip='192.168.1.10', **UR_VARIANTS[variant])


def launches(prefix) -> dict[str, LaunchRecord]:
    return {'sim': run(SIM), **{f'ur-{v}': run_ur(v) for v in UR_VARIANTS}}


# ----------------------------------------------------------------------------- nodes
def test_launch_files_start_installed_executables(prefix):
    scripts = {ep.name: ep for ep in importlib.metadata.distribution('gps_agent_ros').entry_points
               if ep.group == 'console_scripts'}
    for name, record in launches(prefix).items():
        assert record.nodes, f'{name} starts no node'
        for node in record.nodes:
            assert node.package == 'gps_agent_ros', f'{name}: {node.executable} from {node.package}'
            assert node.executable in scripts, f'{name}: {node.executable} is not an installed console script'
            assert callable(scripts[node.executable].load())


def node_classes():
    from gps_agent_ros.controller_node import ControllerNode
    from gps_agent_ros.sim_node import SimNode
    from gps_agent_ros.ur_reset_node import URResetNode
    return {'controller_node': ControllerNode, 'sim_node': SimNode, 'ur_reset_node': URResetNode}


def undeclared(node_cls, params: dict) -> set[str]:
    """Construct the node with these parameters; the ones it does not declare."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = node_cls(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        missing = {k for k in params if not node.has_parameter(k)}
        node.destroy_node()
        return missing
    finally:
        context.try_shutdown()


@pytest.mark.parametrize('launch', ['sim', *(f'ur-{v}' for v in UR_VARIANTS)])
def test_every_parameter_a_launch_file_passes_is_declared_by_its_node(prefix, launch):
    classes = node_classes()
    record = launches(prefix)[launch]
    checked = [n for n in record.nodes if n.executable in classes]
    # trainer_node is constructed without a context (TrainerNode() takes no arguments)
    assert {n.executable for n in record.nodes} - set(classes) <= {'trainer_node'}
    assert checked
    for node in checked:
        assert undeclared(classes[node.executable], node.parameters) == set(), node.executable


def test_ur_launch_configures_the_reset_node_for_the_trials_and_the_robot(prefix):
    cfg = load_experiment(REPO / 'config' / 'ur5e_reach.yaml')
    real, mock = run_ur('effort').node('ur_reset_node'), run_ur('velocity-mock').node('ur_reset_node')
    assert real.parameters['trial_controller'] == 'forward_effort_controller'
    assert mock.parameters['trial_controller'] == 'forward_velocity_controller'
    assert real.parameters['require_robot_program'] is True and mock.parameters['require_robot_program'] is False
    assert real.parameters['joints'] == list(cfg.robot.joints)
    # controller_node gives a reset more time than the reset node can take to answer
    settings = ResetSettings(**real.parameters)
    assert run_ur('effort').node('controller_node').parameters['reset_timeout_s'] > settings.worst_case_s


def test_ur_launch_refuses_a_tf_prefix_the_experiment_does_not_use(prefix):
    with pytest.raises(RuntimeError, match="tf_prefix:=left_ but the experiment .* names the joints"):
        run(UR, robot_ip='192.168.1.10', tf_prefix='left_')
    with pytest.raises(LaunchError, match="'command_interface' = 'position' is not one of"):
        run(UR, robot_ip='192.168.1.10', command_interface='position')


# ----------------------------------------------------------------------------- ur_robot_driver
def driver_include(record: LaunchRecord):
    (include,) = [i for i in record.includes if Path(i.path).name == 'ur_control.launch.py']
    return include


@pytest.mark.parametrize('variant', UR_VARIANTS)
@pytest.mark.parametrize('release', RELEASES, ids=lambda r: r.name)
def test_ur_launch_passes_only_arguments_the_driver_release_declares(prefix, release, variant):
    include = driver_include(run_ur(variant))
    assert Path(include.path) == prefix / 'share' / 'ur_robot_driver' / 'launch' / 'ur_control.launch.py'
    for name, value in include.arguments.items():
        assert name in release.launch_arguments, f'{release.release} declares no argument {name!r}'
        choices = release.launch_arguments[name].get('choices')
        assert choices is None or value in choices, f'{name}={value!r} is not one of {release.release}: {choices}'
    required = {n for n, a in release.launch_arguments.items() if 'default' not in a}
    assert required <= set(include.arguments), f'{release.release} requires {required - set(include.arguments)}'


def effective_controllers(include, release) -> tuple[dict[str, str], dict]:
    """The controllers (name -> type) and controller_manager parameters the driver gets: the
    release's own file unless ur.launch.py passes another one."""
    passed = include.arguments.get('controllers_file')
    if passed is None:
        return dict(release.controllers), {}
    doc = yaml.safe_load(Path(passed).read_text())
    manager = doc['controller_manager']['ros__parameters']
    return {k: v['type'] for k, v in manager.items() if isinstance(v, dict) and 'type' in v}, manager


@pytest.mark.parametrize('release', RELEASES, ids=lambda r: r.name)
def test_every_controller_the_driver_release_spawns_is_configured(prefix, release):
    include = driver_include(run_ur('effort'))
    controllers, manager = effective_controllers(include, release)
    unconfigured = [c for c in release.spawned if c not in controllers]
    assert unconfigured == [], f'{release.release} spawns {unconfigured}, which the controllers file lacks'
    # the driver's per-model update rate (500 Hz e-Series, 125 Hz CB3) is left alone
    assert 'update_rate' not in manager and 'update_rate_config_file' not in include.arguments


@pytest.mark.parametrize('variant', UR_VARIANTS)
@pytest.mark.parametrize('release', RELEASES, ids=lambda r: r.name)
def test_the_reset_and_trial_controllers_exist_or_are_refused_with_the_reason(prefix, release, variant):
    record = run_ur(variant)
    states = release.initial_states(driver_include(record).arguments)
    loaded = {n: ControllerInfo(n, s, release.controllers[n]) for n, s in states.items()}
    reset = record.node('ur_reset_node').parameters
    settings = ResetSettings(**reset)
    controller = choose_reset_controller(loaded, settings.reset_controllers)
    prefix_ = driver_include(record).arguments['tf_prefix']
    upstream_joints = [j.replace('$(var tf_prefix)', prefix_) for j in
                       release.controller_parameters[controller]['joints']]
    assert upstream_joints == list(settings.joints), 'the reset node and the driver name different joints'
    problem = trial_controller_problem(loaded, settings.trial_controller)
    if settings.trial_controller in release.spawned:
        assert problem is None
    else:
        assert settings.trial_controller == 'forward_effort_controller'
        assert 'not loaded' in problem and 'command_interface:=velocity' in problem


# ----------------------------------------------------------------------------- installation
def test_launch_config_and_urdf_files_are_installed_into_the_share_folder(monkeypatch):
    """setup.py's data_files, as setuptools gets them (the real setup.py run, setup() recorded)."""
    import setuptools
    seen = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kw: seen.update(kw))
    package = REPO / 'src' / 'gps_agent_ros'
    monkeypatch.chdir(package)
    exec(compile((package / 'setup.py').read_text(), str(package / 'setup.py'), 'exec'), {'__file__': str(package / 'setup.py')})
    installed = {(dest, (package / src).resolve()) for dest, files in seen['data_files'] for src in files}
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'), ('urdf', '*.urdf')):
        files = sorted((REPO / folder).glob(pattern))
        assert files
        for f in files:
            assert (f'share/gps_agent_ros/{folder}', f.resolve()) in installed, f'{f.relative_to(REPO)} is not installed'


def colcon(*args: str) -> list[str]:
    colcon_bin = Path(sys.executable).with_name('colcon')
    out = subprocess.run([str(colcon_bin), '--log-base', os.devnull, 'list', '--names-only', *args], cwd=REPO,
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return out.split()


def test_colcon_builds_each_package_after_what_it_depends_on():
    order = colcon('--base-paths', 'src', '--packages-up-to', 'gps_agent_ros', '--topological-order')
    assert set(order) == {'gps_core', 'gps_controllers', 'gps_interfaces', 'gps_agent_ros'}
    assert order.index('gps_interfaces') < order.index('gps_agent_ros')
    assert order.index('gps_core') < order.index('gps_controllers') < order.index('gps_agent_ros')


def test_a_workspace_build_never_sees_the_test_interface_stand_ins():
    """Cloned into a ROS 2 workspace, `colcon build` crawls the whole repository: it must not
    build the test-only control_msgs / controller_manager_msgs over the real ones."""
    found = colcon('--base-paths', '.')
    assert {'gps_core', 'gps_controllers', 'gps_interfaces', 'gps_agent_ros'} <= set(found)
    assert not {'control_msgs', 'controller_manager_msgs'} & set(found)
