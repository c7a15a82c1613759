"""Checkpoints as plain data: one .npz of arrays per iteration plus the experiment YAML.

No pickles: arrays are loaded with allow_pickle=False, so a checkpoint cannot execute code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from gps_core.policies.linear_gaussian import LinearGaussianPolicy

_FIELDS = ('K', 'k', 'pol_covar')


def save_checkpoint(directory: str | Path, iteration: int, policies: list[LinearGaussianPolicy],
                    scalars: dict[str, list[float]], config: dict) -> Path:
    """Write DIR/iteration_NNN.npz (+ DIR/experiment.yaml once). Returns the npz path.

    scalars: per-condition values to restore with the controllers (eta, step_mult, ...).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg_path = directory / 'experiment.yaml'
    if not cfg_path.exists():
        cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    arrays: dict[str, np.ndarray] = {'iteration': np.array(iteration)}
    for m, pol in enumerate(policies):
        for name in _FIELDS:
            arrays[f'cond{m}_{name}'] = getattr(pol, name)
    for name, values in scalars.items():
        arrays[f'scalar_{name}'] = np.asarray(values, dtype=float)
    path = directory / f'iteration_{iteration:03d}.npz'
    tmp = path.with_name(path.name + '.tmp.npz')
    np.savez(tmp, **arrays)
    tmp.replace(path)                              # atomic: a crash never leaves half a checkpoint
    return path


def load_checkpoint(path: str | Path) -> tuple[int, list[LinearGaussianPolicy], dict[str, np.ndarray]]:
    with np.load(Path(path), allow_pickle=False) as data:
        n = len({key.split('_')[0] for key in data.files if key.startswith('cond')})
        policies = [LinearGaussianPolicy.from_covar(*(data[f'cond{m}_{f}'] for f in _FIELDS)) for m in range(n)]
        scalars = {key[len('scalar_'):]: data[key] for key in data.files if key.startswith('scalar_')}
        return int(data['iteration']), policies, scalars
