"""The neural-network experiment settings: shipped MDGPS / BADMM files load, test targets are
never trained on, and mistakes in the new keys are errors that name the key and the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from gps_core.config import ConfigError, load_experiment, to_dict

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {name: REPO / 'config' / f'ur5e_reach_{name}.yaml' for name in ('mdgps', 'badmm')}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_shipped_policy_experiments(name):
    cfg = load_experiment(CONFIGS[name])
    assert cfg.algorithm.type == name
    assert cfg.conditions == load_experiment(REPO / 'config' / 'ur5e_reach.yaml').conditions
    train = np.array([c.target_position for c in cfg.conditions])
    test = np.array([c.target_position for c in cfg.test_conditions])
    assert len(test) >= 8
    # inside the training targets' box, and at least 3 cm from every training target
    assert np.all(test >= train.min(axis=0)) and np.all(test <= train.max(axis=0))
    assert np.min(np.linalg.norm(test[:, None] - train[None], axis=2)) > 0.03
    assert cfg.policy.activation in ('relu', 'tanh') and cfg.policy.iterations >= 1


def test_traj_opt_experiment_keeps_defaults():
    cfg = load_experiment(REPO / 'config' / 'ur5e_reach.yaml')
    assert cfg.algorithm.type == 'traj_opt' and cfg.policy.hidden == (64, 64)
    assert cfg.algorithm.mdgps.sample_on_policy is False and cfg.algorithm.badmm.inner_iterations == 4


def edit(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(CONFIGS['badmm'].read_text())
    mutate(data)
    path = tmp_path / 'exp.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize('mutate,match', [
    (lambda d: d['policy'].update(hiden=[8]), r'hiden.*PolicyConfig'),
    (lambda d: d['policy']['prior'].update(max_cluster=3), r'max_cluster.*PolicyPriorConfig'),
    (lambda d: d['algorithm']['badmm'].update(inner_iteration=2), r'inner_iteration.*BADMMConfig'),
    (lambda d: d['algorithm'].update(mdgps={'on_policy': True}), r'on_policy.*MDGPSConfig'),
    (lambda d: d['algorithm'].update(type='mdgsp'), r"algorithm.type: 'mdgsp' is not a valid choice"),
    (lambda d: d['policy'].update(activation='sigmoid'), r"activation must be one of"),
    (lambda d: d['policy'].update(hidden=[64, 0]), r'hidden sizes must be >= 1'),
    (lambda d: d['policy'].update(iterations=0), r'iterations and policy.batch_size must be >= 1'),
    (lambda d: d['policy'].update(learning_rate=-1e-3), r'learning_rate must be > 0'),
    (lambda d: d['policy'].update(hidden=64), r'policy.hidden: got 64 \(expected a list\)'),
    (lambda d: d['algorithm']['badmm'].update(inner_iterations=0), r'inner_iterations: 0 is below 1'),
    (lambda d: d['algorithm']['badmm'].update(init_pol_wt=0.0), r'init_pol_wt'),
    (lambda d: d['algorithm'].update(mdgps={'sample_on_policy': 'yes'}), r"sample_on_policy: got 'yes' \(expected true or false\)"),
])
def test_bad_policy_keys_are_named(tmp_path, mutate, match):
    path = edit(tmp_path, mutate)
    with pytest.raises(ConfigError, match=match) as err:
        load_experiment(path)
    assert str(path) in str(err.value)


def test_policy_config_round_trip(tmp_path):
    cfg = load_experiment(CONFIGS['mdgps'])
    path = tmp_path / 'again.yaml'
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_experiment(path) == cfg
