"""The launch files, run through a recording stand-in of the launch API (launch_ros is not
installable here; tests/fakes/launch_api.py), checked against their real peers: the installed
console scripts, the nodes' declared parameters (the nodes are constructed), the ur_robot_driver
releases recorded in tests/fixtures/ur_driver (what each declares and spawns), and for rviz:
robot_state_publisher's documented parameters, the URDF and config/gps.rviz.
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter

from fakes.launch_api import LaunchError, LaunchRecord, ament_prefix, evaluate
from fakes.ur_driver import releases
from gps_agent_ros import markers
from gps_agent_ros.ur_controllers import ControllerInfo, choose_reset_controller, trial_controller_problem
from gps_agent_ros.ur_reset import ResetSettings
from gps_core.config import load_experiment

REPO = Path(__file__).resolve().parents[2]
SIM, UR = REPO / 'launch' / 'sim.launch.py', REPO / 'launch' / 'ur.launch.py'
RELEASES = releases()
UR_VARIANTS = {'effort': {}, 'velocity-mock': {'command_interface': 'velocity', 'use_mock_hardware': 'true'}}


@pytest.fixture(scope='module')
def prefix(tmp_path_factory):
    """An ament prefix holding gps_agent_ros's share as setup.py installs it (symlinks to the
    repository's folders) and an ur_robot_driver package, for get_package_share_directory."""
    root = ament_prefix(tmp_path_factory.mktemp('ament_prefix'), REPO)
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
def exec_depends() -> set[str]:
    root = ET.parse(REPO / 'src' / 'gps_agent_ros' / 'package.xml').getroot()
    return {e.text.strip() for tag in ('depend', 'exec_depend') for e in root.iter(tag)}


def test_launch_files_start_installed_executables(prefix):
    scripts = {ep.name: ep for ep in importlib.metadata.distribution('gps_agent_ros').entry_points
               if ep.group == 'console_scripts'}
    for name, record in {**launches(prefix), 'sim-rviz': run(SIM, launch_rviz='true'),
                         'sim-composed': run(SIM, compose='true')}.items():
        assert record.nodes, f'{name} starts no node'
        for node in record.nodes:
            if node.package != 'gps_agent_ros':   # another package's node: rosdep must install it
                assert node.package in exec_depends(), f'{name}: {node.package} is not an exec_depend'
                continue
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
    # trainer_node is constructed without a context (TrainerNode() takes no arguments); other
    # packages' nodes are checked against their documentation below
    assert {n.executable for n in record.nodes if n.package == 'gps_agent_ros'} - set(classes) <= {'trainer_node'}
    assert checked
    for node in checked:
        assert undeclared(classes[node.executable], node.parameters) == set(), node.executable


@pytest.mark.parametrize('mode', ['lockstep', 'realtime'])
def test_sim_launch_compose_runs_both_nodes_in_one_process_with_their_own_parameters(prefix, mode):
    """compose:=true: one composed_arm process whose --params-file gives each node, by its full
    name, exactly what the two-process launch gives it; each node declares all of it."""
    separate, composed = run(SIM, mode=mode), run(SIM, mode=mode, compose='true')
    ns = separate.arguments['namespace']
    arm = composed.node('composed_arm')
    assert arm.namespace == ns and arm.name is None and arm.parameters == {}   # names: the nodes' own
    assert len(arm.parameter_files) == 1
    sections = yaml.safe_load(Path(arm.parameter_files[0]).read_text())
    assert set(sections) == {f'/{ns}/sim_node', f'/{ns}/controller_node'}
    classes = node_classes()
    for name in ('sim_node', 'controller_node'):
        params = sections[f'/{ns}/{name}']['ros__parameters']
        assert params == separate.node(name).parameters
        assert undeclared(classes[name], params) == set(), name
    assert not {'sim_node', 'controller_node'} & {n.executable for n in composed.nodes}


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


# ----------------------------------------------------------------------------- rviz
# robot_state_publisher's parameters (its README, humble..rolling) and every node's use_sim_time
RSP_PARAMETERS = {'robot_description', 'publish_frequency', 'ignore_timestamp', 'frame_prefix', 'use_sim_time'}


def urdf_links(text: str) -> set[str]:
    return {link.get('name') for link in ET.fromstring(text).iter('link')}


@pytest.mark.parametrize('mode', ['lockstep', 'realtime'])
def test_sim_launch_publishes_the_robot_state_for_rviz(prefix, mode):
    record = run(SIM, mode=mode)
    cfg = load_experiment(record.arguments['experiment'])
    rsp, sim = record.node('robot_state_publisher'), record.node('sim_node')
    assert rsp.package == 'robot_state_publisher' and set(rsp.parameters) <= RSP_PARAMETERS
    # the arm's namespace: it turns the sim's joint_states into TF, beside its robot_description
    assert rsp.namespace == sim.namespace == record.arguments['namespace']
    description = rsp.parameters['robot_description']
    assert description == Path(cfg.resolve(cfg.robot.urdf)).read_text()
    assert {cfg.robot.base_link, cfg.robot.ee_link} <= urdf_links(description)
    # the lockstep sim publishes /clock and stamps joint_states with it
    assert rsp.parameters['use_sim_time'] is (mode == 'lockstep')
    assert record.node('controller_node').parameters['use_sim_time'] is (mode == 'lockstep')
    assert 'frame_prefix' not in rsp.parameters    # frames as the markers name them (base_link)


def rviz_displays(path: Path) -> tuple[dict[str, dict], dict]:
    doc = yaml.safe_load(path.read_text())
    return {d['Class']: d for d in doc['Visualization Manager']['Displays']}, doc


def test_the_rviz_config_shows_the_robot_the_targets_and_the_paths(prefix):
    record = run(SIM)
    cfg = load_experiment(record.arguments['experiment'])
    displays, doc = rviz_displays(REPO / 'config' / 'gps.rviz')
    assert doc['Visualization Manager']['Global Options']['Fixed Frame'] == markers.FRAME == cfg.robot.base_link
    robot = displays['rviz_default_plugins/RobotModel']
    assert robot['Enabled'] and robot['Description Source'] == 'Topic'
    # robot_state_publisher publishes robot_description transient local in its namespace
    assert robot['Description Topic']['Value'] == f"/{record.arguments['namespace']}/robot_description"
    assert robot['Description Topic']['Durability Policy'] == 'Transient Local'
    paths = displays['rviz_default_plugins/MarkerArray']
    assert paths['Enabled'] and paths['Topic']['Value'] == '/' + markers.TOPIC
    # a transient-local subscriber matches only a transient-local publisher: the trainer's QoS
    assert markers.QOS.durability.name == 'TRANSIENT_LOCAL' and paths['Topic']['Durability Policy'] == 'Transient Local'
    assert paths['Topic']['Reliability Policy'] == 'Reliable' == markers.QOS.reliability.name.title()


def test_launch_rviz_starts_rviz2_with_the_installed_config(prefix):
    assert not [n for n in run(SIM).nodes if n.package == 'rviz2']
    rviz = run(SIM, launch_rviz='true').node('rviz2')
    assert rviz.package == 'rviz2' and rviz.arguments[0] == '-d'
    config = Path(rviz.arguments[1])
    assert config == prefix / 'share' / 'gps_agent_ros' / 'config' / 'gps.rviz' and config.is_file()
    assert rviz.parameters['use_sim_time'] is True


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
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'), ('config', '*.rviz'),
                            ('urdf', '*.urdf')):
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
