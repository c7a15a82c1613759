"""Experiment YAML -> frozen dataclasses; unknown keys are errors that name the key and the file."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from gps_core.config import ConfigError, ExperimentConfig, load_experiment, to_dict

REPO = Path(__file__).resolve().parents[2]
UR5E = REPO / 'config' / 'ur5e_reach.yaml'


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / 'exp.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def base() -> dict:
    return yaml.safe_load(UR5E.read_text())


def test_shipped_experiment_loads():
    cfg = load_experiment(UR5E)
    assert cfg.T == 100 and cfg.dt == 0.05 and cfg.samples_per_condition == 5
    assert len(cfg.conditions) == 4
    assert cfg.robot.joints[0] == 'shoulder_pan_joint'
    assert cfg.resolve(cfg.robot.urdf).is_file()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.T = 5  # type: ignore[misc]


@pytest.mark.parametrize('section,key', [(None, 'iteratons'), ('algorithm', 'base_kl_stpe'),
                                         ('dynamics', 'priro'), ('robot', 'ee_lnk')])
def test_unknown_key_names_key_and_file(tmp_path, section, key):
    data = base()
    (data if section is None else data[section])[key] = 1
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert key in str(err.value) and str(path) in str(err.value)


def test_nested_unknown_key_in_condition(tmp_path):
    data = base()
    data['conditions'][2]['target_positon'] = [0, 0, 0]
    with pytest.raises(ConfigError, match=r"conditions\[2\].*target_positon"):
        load_experiment(write(tmp_path, data))


@pytest.mark.parametrize('key,value,msg', [('T', 'long', "T: got 'long' (expected an integer)"),
                                           ('T', 1, 'T: 1 is below 2 (expected an integer >= 2)'),
                                           ('dt', -0.1, 'dt: -0.1 is not > 0 (expected a number > 0)'),
                                           ('iterations', 2.5, 'iterations: got 2.5 (expected an integer)')])
def test_bad_values_are_named(tmp_path, key, value, msg):
    data = base()
    data[key] = value
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(err.value) == f'{path}: {msg}'


def test_wrong_joint_count_in_condition(tmp_path):
    data = base()
    data['conditions'][1]['initial_joint_positions'] = [0.0, 0.0]
    with pytest.raises(ConfigError, match=r'conditions\[1\].initial_joint_positions: has 2 values for 6 joints'):
        load_experiment(write(tmp_path, data))


def test_missing_required_key(tmp_path):
    data = base()
    del data['robot']
    with pytest.raises(ConfigError, match=r"exp.yaml: robot: missing required key"):
        load_experiment(write(tmp_path, data))


def set_key(data: dict, dotted: str, value) -> None:
    """data['a']['b'][2]['c'] = value for dotted = 'a.b[2].c'."""
    parts = [int(p) if p.isdigit() else p for p in dotted.replace('[', '.').replace(']', '').split('.')]
    for p in parts[:-1]:
        data = data[p]
    data[parts[-1]] = value


# each: where in the YAML, the value written there, the key the error must name, what it must say
BAD_VALUES = [
    ('dt', float('inf'), 'dt', 'inf is not finite (expected a finite number)'),
    ('T', float('nan'), 'T', 'got nan (expected an integer)'),
    ('conditions[2].target_position[1]', float('nan'), 'conditions[2].target_position[1]', 'nan is not finite'),
    ('conditions[0].initial_joint_positions[3]', float('nan'), 'conditions[0].initial_joint_positions[3]',
     'nan is not finite'),
    ('target_rpy[0]', float('-inf'), 'target_rpy[0]', '-inf is not finite'),
    ('algorithm.init.kp', float('nan'), 'algorithm.init.kp', 'nan is not finite'),
    ('algorithm.init.kp', [20.0, float('nan'), 20.0, 5.0, 5.0, 5.0], 'algorithm.init.kp[1]', 'nan is not finite'),
    ('algorithm.init.init_var[2]', -1.0, 'algorithm.init.init_var[2]', '-1.0 is not > 0 (expected a number > 0)'),
    ('algorithm.init.init_var', 0.0, 'algorithm.init.init_var', '0.0 is not > 0'),
    ('algorithm.init.kd', [1.0, 2.0], 'algorithm.init.kd', 'has 2 values (expected one number, or 6: one per robot.joints)'),
    ('sim.substeps', 0, 'sim.substeps', '0 is below 1 (expected an integer >= 1)'),
    ('sim.damping', [5.0, 5.0, 5.0, -1.0, 1.0, 1.0], 'sim.damping[3]', '-1.0 is not >= 0'),
    ('sim.armature', [0.1, 0.1], 'sim.armature', 'has 2 values (expected one number, or 6'),
    ('seed', -1, 'seed', '-1 is below 0 (expected an integer >= 0)'),
    ('samples_per_condition', 0, 'samples_per_condition', '0 is below 1'),
    ('algorithm.success_distance', 0.0, 'algorithm.success_distance', '0.0 is not > 0'),
    ('algorithm.min_step_mult', 5.0, 'algorithm.max_step_mult', '3.0 is below min_step_mult 5.0'),
    ('algorithm.type', 'mdgsp', 'algorithm.type', "'mdgsp' is not a valid choice (expected one of ['traj_opt'"),
    ('cost.ee_point.ramp', 'lineer', 'cost.ee_point.ramp', "'lineer' is not a valid choice"),
    ('cost.ee_point.alpha', 0.0, 'cost.ee_point.alpha', '0.0 is not > 0'),
    ('cost.ee_point.wp', [1.0, 1.0], 'cost.ee_point.wp', 'has 2 values (expected one number, or 9'),
    ('cost.action.wu', [1e-3] * 7, 'cost.action.wu', 'has 7 values (expected one number, or 6'),
    ('cost', {'action': None, 'ee_point': None}, 'cost', 'enables no cost term'),
    ('cost.state', {'indices': [0, 99], 'target': [0.0, 0.0]}, 'cost.state.indices[1]',
     '99 is outside the state (expected 0 <= index < dX = 30)'),
    ('robot.joints[3]', 'shoulder_pan_joint', 'robot.joints[3]', "'shoulder_pan_joint' is listed twice"),
    ('robot.ee_points', [], 'robot.ee_points', 'is empty'),
    ('robot.ee_points[1]', [0.0, 1.0], 'robot.ee_points[1]', 'has 2 values (expected 3)'),
    ('traj_opt.min_eta', 0.0, 'traj_opt.min_eta', '0.0 is not > 0'),
    ('traj_opt.max_eta', float('inf'), 'traj_opt.max_eta', 'inf is not finite'),
    ('dynamics.prior.strength', float('nan'), 'dynamics.prior.strength', 'nan is not finite'),
    ('algorithm.badmm', {'inner_iterations': 0}, 'algorithm.badmm.inner_iterations', '0 is below 1'),
    ('experiment', 'runs/x', 'experiment', "'runs/x' is not a name"),
    ('conditions', [], 'conditions', 'is empty'),
]


@pytest.mark.parametrize('where,value,key,problem', BAD_VALUES, ids=[f'{b[0]}={b[1]}' for b in BAD_VALUES])
def test_bad_value_names_file_key_and_expectation(tmp_path, where, value, key, problem):
    data = base()
    set_key(data, where, value)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.file == str(path) and err.value.key == key
    assert str(err.value).startswith(f'{path}: {key}: {problem}')
    assert '\n' not in str(err.value)


def test_unknown_key_is_a_dotted_path(tmp_path):
    data = base()
    data['algorithm']['init']['init_vra'] = 1.0
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f'{path}: algorithm.init.init_vra: unknown key in InitControllerConfig '
                                     f"(expected one of ['init_var', 'kd', 'kp', 'smooth_noise_sigma'])")


@pytest.mark.parametrize('text,problem', [('T: [1\n', 'not valid YAML: line 2, column 1'),
                                          ('- 1\n- 2\n', 'the file holds a list')])
def test_unreadable_file_names_the_file(tmp_path, text, problem):
    path = tmp_path / 'exp.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f'{path}: {problem}') and '\n' not in str(err.value)
    with pytest.raises(ConfigError, match=r'missing.yaml: cannot read: No such file'):
        load_experiment(tmp_path / 'missing.yaml')


def test_pybullet_data_urdf_resolves_to_the_installed_package(tmp_path):
    import pybullet_data
    data = base()
    data['robot']['urdf'] = 'pybullet_data://franka_panda/panda.urdf'
    cfg = load_experiment(write(tmp_path, data))
    assert cfg.resolve(cfg.robot.urdf) == Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
    assert cfg.resolve(cfg.robot.urdf).is_file()


def test_overrides_and_round_trip(tmp_path):
    cfg = load_experiment(UR5E, iterations=3, seed=7)
    assert cfg.iterations == 3 and cfg.seed == 7
    # the resolved config written back to YAML loads to an equal config
    again = load_experiment(write(tmp_path, to_dict(cfg)))
    assert isinstance(again, ExperimentConfig)
    assert again == cfg            # 'source' (the file) is not part of equality
