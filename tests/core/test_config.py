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


@pytest.mark.parametrize('key,value,msg', [('T', 'long', 'expected an integer'), ('T', 1, 'T must be >= 2'),
                                           ('dt', -0.1, 'dt must be > 0'), ('iterations', 2.5, 'integer')])
def test_bad_values_are_named(tmp_path, key, value, msg):
    data = base()
    data[key] = value
    with pytest.raises(ConfigError, match=msg):
        load_experiment(write(tmp_path, data))


def test_wrong_joint_count_in_condition(tmp_path):
    data = base()
    data['conditions'][1]['initial_joint_positions'] = [0.0, 0.0]
    with pytest.raises(ConfigError, match=r'conditions\[1\].initial_joint_positions has 2 values for 6 joints'):
        load_experiment(write(tmp_path, data))


def test_missing_required_key(tmp_path):
    data = base()
    del data['robot']
    with pytest.raises(ConfigError, match="missing required key.*robot"):
        load_experiment(write(tmp_path, data))


def test_overrides_and_round_trip(tmp_path):
    cfg = load_experiment(UR5E, iterations=3, seed=7)
    assert cfg.iterations == 3 and cfg.seed == 7
    # the resolved config written back to YAML loads to an equal config
    again = load_experiment(write(tmp_path, to_dict(cfg)))
    assert isinstance(again, ExperimentConfig)
    assert again == cfg            # 'source' (the file) is not part of equality
