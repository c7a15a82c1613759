"""gps-train on broken experiments: each mistake is one line `gps-train: FILE: KEY: what is wrong
(expected ...)` on stderr and exit code 2, before --out is created or a node is started."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

from gps_agent_ros import bringup
from gps_agent_ros.train_cli import main as gps_train

REPO = Path(__file__).resolve().parents[2]
UR5E = REPO / 'config' / 'ur5e_reach.yaml'
XARM6 = REPO / 'config' / 'xarm6_reach.yaml'
MPCGPS = REPO / 'config' / 'ur5e_reach_mpcgps.yaml'
PEG = REPO / 'config' / 'ur5e_peg.yaml'
NAN, INF = math.nan, math.inf


def ur5e() -> dict:
    data = yaml.safe_load(UR5E.read_text())
    data['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')   # the YAML is written elsewhere
    return data


def xarm6() -> dict:
    return yaml.safe_load(XARM6.read_text())


def mpcgps() -> dict:
    data = yaml.safe_load(MPCGPS.read_text())
    data['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')
    return data


def peg() -> dict:
    data = yaml.safe_load(PEG.read_text())
    data['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')
    return data


def setter(dotted: str, value) -> Callable[[dict, Path], None]:
    """Set data['a']['b'][2]['c'] = value for 'a.b[2].c' (value(tmp_path) if callable)."""
    def mutate(data: dict, tmp: Path) -> None:
        parts = [int(p) if p.isdigit() else p for p in dotted.replace('[', '.').replace(']', '').split('.')]
        for p in parts[:-1]:
            data = data[p]
        data[parts[-1]] = value(tmp) if callable(value) else value
    return mutate


def file_with(name: str, text: str) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        (tmp / name).write_text(text)
        return str(tmp / name)
    return make


# case id -> (base experiment, mutation, KEY, the start of what is wrong)
CASES = {
    'urdf missing': (ur5e, setter('robot.urdf', lambda tmp: str(tmp / 'nowhere.urdf')), 'robot.urdf',
                     '{tmp}/nowhere.urdf does not exist (expected a URDF file'),
    'urdf package missing': (ur5e, setter('robot.urdf', 'package://no_such_pkg/urdf/arm.urdf'), 'robot.urdf',
                             "cannot resolve 'package://no_such_pkg/urdf/arm.urdf': "),
    'urdf not xml': (ur5e, setter('robot.urdf', file_with('arm.urdf', '<robot name="x"><link ')), 'robot.urdf',
                     '{tmp}/arm.urdf is not XML: unclosed token: line 1'),
    'urdf not a robot': (ur5e, setter('robot.urdf', file_with('arm.urdf', '<sdf version="1.6"/>')), 'robot.urdf',
                         '{tmp}/arm.urdf has root element <sdf> (expected a URDF: <robot>)'),
    'joint not in urdf': (ur5e, setter('robot.joints[2]', 'elbow'), 'robot.joints[2]',
                          "'elbow' is not a joint of ur5e.urdf (expected one of ['elbow_joint', "),
    'fixed joint': (ur5e, setter('robot.joints[5]', 'flange-tool0'), 'robot.joints[5]',
                    "'flange-tool0' is a fixed joint (expected a movable joint"),
    'ee_link not in urdf': (ur5e, setter('robot.ee_link', 'tool9'), 'robot.ee_link',
                            "'tool9' is not a link of ur5e.urdf (expected one of ["),
    'base_link moves': (ur5e, setter('robot.base_link', 'wrist_1_link'), 'robot.base_link',
                        "'wrist_1_link' moves with joint 'wrist_1_joint' (expected a link fixed to the URDF root)"),
    'target nan': (ur5e, setter('conditions[2].target_position[1]', NAN), 'conditions[2].target_position[1]',
                   'nan is not finite (expected a finite number)'),
    'target inf': (ur5e, setter('conditions[0].target_position[0]', INF), 'conditions[0].target_position[0]',
                   'inf is not finite (expected a finite number)'),
    'q0 nan': (ur5e, setter('conditions[1].initial_joint_positions[4]', NAN),
               'conditions[1].initial_joint_positions[4]', 'nan is not finite (expected a finite number)'),
    'kp nan': (ur5e, setter('algorithm.init.kp[0]', NAN), 'algorithm.init.kp[0]',
               'nan is not finite (expected a finite number)'),
    'init_var negative': (ur5e, setter('algorithm.init.init_var[3]', -1.0), 'algorithm.init.init_var[3]',
                          '-1.0 is not > 0 (expected a number > 0)'),
    'q0 outside limits': (ur5e, setter('conditions[3].initial_joint_positions[2]', 3.5),
                          'conditions[3].initial_joint_positions[2]',
                          '3.5 is outside the limits of elbow_joint (expected -3.14159 <= q <= 3.14159, from the URDF)'),
    'test q0 outside limits': (ur5e, setter('test_conditions', [{'initial_joint_positions': [0, 0, 0, 0, 0, 7.0],
                                                                 'target_position': [0.5, 0.1, 0.4]}]),
                               'test_conditions[0].initial_joint_positions[5]',
                               '7.0 is outside the limits of wrist_3_joint'),
    'dt inf': (ur5e, setter('dt', INF), 'dt', 'inf is not finite (expected a finite number)'),
    'substeps zero': (ur5e, setter('sim.substeps', 0), 'sim.substeps', '0 is below 1 (expected an integer >= 1)'),
    'unknown key': (ur5e, setter('sim.armatrue', 0.1), 'sim.armatrue',
                    "unknown key in SimConfig (expected one of ['armature', 'damping', "),
    'target out of reach': (ur5e, setter('conditions[1].target_position', [2.0, 0.0, 0.5]),
                            'conditions[1].target_position', '[2.0, 0.0, 0.5] is out of reach: the first '
                            'end-effector point gets no closer than 1.'),
    'unstable substeps': (xarm6, setter('sim.substeps', 20), 'sim.substeps',
                          '20 is unstable: joint6 reaches '),
    # MPC-GPS's teacher and the disturbances
    'mpc horizon zero': (mpcgps, setter('algorithm.mpc.horizon', 0), 'algorithm.mpc.horizon',
                         '0 is not an integer >= 1 (expected a number of steps >= 1)'),
    'mpc replan beyond horizon': (mpcgps, setter('algorithm.mpc.replan_every', 30), 'algorithm.mpc.replan_every',
                                  '30 exceeds horizon 20 (expected replan_every <= horizon'),
    'mpc horizon beyond T': (mpcgps, setter('algorithm.mpc.horizon', 150), 'algorithm.mpc.horizon',
                             '150 exceeds T = 100 (expected a window inside the trial)'),
    'mpc unknown key': (mpcgps, setter('algorithm.mpc.horizont', 10), 'algorithm.mpc.horizont',
                        "unknown key in MPCConfig (expected one of ['horizon', 'policy_weight', "),
    'disturbance kind': (mpcgps, setter('disturbance.kind', 'push'), 'disturbance.kind',
                         "'push' is not one of ['force', 'torque']"),
    'disturbance link': (mpcgps, setter('disturbance.link', 'forearm'), 'disturbance.link',
                         "'forearm' is not a link of ur5e.urdf (expected one of ["),
    'disturbance counts': (mpcgps, setter('disturbance.count_max', 0), 'disturbance.count_max',
                           '0 is below count_min 1 (expected count_min <= count_max)'),
    'disturbed samples without a teacher': (mpcgps, setter('algorithm.type', 'mdgps'), 'disturbance.disturbed_samples',
                                            "is 4 for algorithm.type 'mdgps' (expected 0: only mpcgps"),
    'every sample disturbed': (mpcgps, setter('disturbance.disturbed_samples', 8), 'disturbance.disturbed_samples',
                               '8 is not below samples_per_condition 8 (expected undisturbed samples left'),
    'disturbance after the trial': (mpcgps, setter('disturbance.t_max', 6.0), 'disturbance.t_max',
                                    '6.0 s is not inside the trial of T * dt = 5 s (expected t_max < 5)'),
    'disturbance unknown key': (mpcgps, setter('disturbance.magnitud', 20.0), 'disturbance.magnitud',
                                'unknown key in DisturbanceConfig (expected one of ['),
    # peg insertion
    'peg radius': (peg, setter('peg_task.peg.radius', -0.01), 'peg_task.peg.radius',
                   '-0.01 is not a finite number > 0'),
    'hole too shallow': (peg, setter('peg_task.block.depth', 0.03), 'peg_task.block.depth',
                         '0.03 m is not more than half the peg length (0.04 m)'),
    'peg parent link': (peg, setter('peg_task.peg.parent_link', 'flange0'), 'peg_task.peg.parent_link',
                        "'flange0' is not a link of ur5e.urdf"),
    'hole missing': (peg, setter('conditions[1].hole', None), 'conditions[1].target_position',
                     'is missing (expected a target position, a block position with a scene, or a hole'),
    'hole without a peg task': (ur5e, setter('conditions[0].hole', [0.5, 0.1, 0.25]), 'conditions[0].hole',
                                'needs a peg_task (expected a peg_task: section)'),
}


def write_case(tmp_path: Path, base: Callable[[], dict], mutate) -> Path:
    data = base()
    mutate(data, tmp_path)
    path = tmp_path / 'exp.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def no_nodes(monkeypatch):
    """Fail the test if gps-train starts any node."""
    def refuse(self):
        raise AssertionError('a node was started before the experiment was validated')
    monkeypatch.setattr(bringup.Bringup, 'start', refuse)


@pytest.mark.parametrize('agent', ['inprocess', 'ros'])
@pytest.mark.parametrize('case', list(CASES))
def test_mistake_is_one_line_and_exit_2(tmp_path, capfd, no_nodes, case, agent):
    base, mutate, key, problem = CASES[case]
    path = write_case(tmp_path, base, mutate)
    out = tmp_path / 'run'
    rc = gps_train([str(path), '--agent', agent, '--out', str(out), '--iterations', '1'])
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f'gps-train: {path}: {key}: {problem.format(tmp=tmp_path)}'), lines[0]
    assert not out.exists()


def test_unreachable_message_names_the_distance_left(tmp_path, capfd):
    base, mutate, key, _ = CASES['target out of reach']
    path = write_case(tmp_path, base, mutate)
    assert gps_train([str(path), '--out', str(tmp_path / 'run')]) == 2
    line = capfd.readouterr().err.strip()
    assert 'expected within algorithm.success_distance 0.05 m; --allow-unreachable trains anyway' in line
    distance = float(line.split('gets no closer than ')[1].split(' m')[0])
    assert 1.0 < distance < 1.3         # [2, 0, 0.5] is ~2 m out, the UR5e reaches ~0.85 m from its shoulder


def test_unstable_substeps_message_suggests_a_count(tmp_path, capfd):
    base, mutate, key, _ = CASES['unstable substeps']
    path = write_case(tmp_path, base, mutate)
    assert gps_train([str(path), '--out', str(tmp_path / 'run')]) == 2
    line = capfd.readouterr().err.strip().splitlines()[-1]
    assert line.endswith('(physics step 2.5 ms; expected a stable substep count: 320 is (physics step 0.156 ms))')


@pytest.mark.parametrize('out,problem', [
    (lambda tmp: tmp / 'a_file' / 'run', 'cannot create {tmp}/a_file/run: {tmp}/a_file is a file, not a folder'),
    (lambda tmp: tmp / 'a_file', '{tmp}/a_file is a file, not a folder'),
])
def test_unusable_out_is_one_line(tmp_path, capfd, no_nodes, out, problem):
    (tmp_path / 'a_file').write_text('not a folder')
    path = write_case(tmp_path, ur5e, lambda data, tmp: None)
    rc = gps_train([str(path), '--agent', 'ros', '--out', str(out(tmp_path))])
    lines = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1
    assert lines[0] == (f'gps-train: --out: {problem.format(tmp=tmp_path)} '
                        f'(expected a folder gps-train can create and write files in)')
    assert (tmp_path / 'a_file').read_text() == 'not a folder'


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write into any folder')
def test_read_only_parent_of_out_is_one_line(tmp_path, capfd):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    path = write_case(tmp_path, ur5e, lambda data, tmp: None)
    assert gps_train([str(path), '--out', str(locked / 'run')]) == 2
    line = capfd.readouterr().err.strip()
    assert line.startswith(f'gps-train: --out: cannot create {locked}/run: {locked} is not writable')
    assert not (locked / 'run').exists()


@pytest.mark.parametrize('options,problem', [
    (['--agent', 'ros', '--arms', '0'], '--arms must be >= 1, got 0'),
    (['--agent', 'ros', '--arms', '2', '--namespace', 'a'], 'give --arms or --namespace, not both'),
    (['--agent', 'ros', '--namespace', 'a', '--namespace', 'a/'], "--namespace values repeat: ['a', 'a']"),
    (['--agent', 'ros', '--compose', '--attach'], '--compose starts the arms and --attach uses arms already running'),
    (['--agent', 'inprocess', '--compose'], '--compose is an option of --agent ros'),
    (['--agent', 'ros', '--domain-id', '233'], '--domain-id must be in 0..232, got 233'),
])
def test_bad_arm_options_are_one_line_and_touch_nothing(tmp_path, capfd, no_nodes, options, problem):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'metrics.json').write_text('{}')   # an earlier run: --overwrite must not clear it for a typo
    rc = gps_train([str(REPO / 'config' / 'ur5e_reach.yaml'), '--out', str(out), '--overwrite', *options])
    lines = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f'gps-train: {problem}'), lines
    assert (out / 'metrics.json').read_text() == '{}'


def test_installed_command_prints_one_line_without_traceback(tmp_path):
    """The console script itself, as a user runs it, with the ROS agent."""
    path = write_case(tmp_path, ur5e, setter('conditions[2].target_position[0]', NAN))
    exe = Path(sys.executable).parent / 'gps-train'
    proc = subprocess.run([str(exe), str(path), '--agent', 'ros', '--out', str(tmp_path / 'run')],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f'gps-train: {path}: conditions[2].target_position[0]: '
                                        f'nan is not finite (expected a finite number)']
    assert not (tmp_path / 'run').exists()


def test_allow_unreachable_warns_and_trains(tmp_path, capfd):
    data = ur5e()
    data.update(T=10, samples_per_condition=2, conditions=[
        {'initial_joint_positions': data['conditions'][0]['initial_joint_positions'],
         'target_position': [2.0, 0.0, 0.5]}])
    path = tmp_path / 'exp.yaml'
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / 'run'
    assert gps_train([str(path), '--out', str(out), '--iterations', '1', '--allow-unreachable']) == 0
    err = capfd.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith('gps-train: warning:')]
    assert len(warning) == 1
    assert warning[0].startswith(f'gps-train: warning: {path}: conditions[0].target_position: '
                                 f'[2.0, 0.0, 0.5] is out of reach: the first end-effector point gets no closer than 1.')
    assert warning[0].endswith('training anyway (--allow-unreachable)')
    assert (out / 'metrics.json').is_file()
