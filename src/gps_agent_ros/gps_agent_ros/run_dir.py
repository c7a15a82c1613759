"""What an output folder may hold: one run, never two mixed.

A run folder (`--out`) is empty or new (a fresh run), or holds a run to continue (`--resume`:
the same experiment, apart from the iteration count; the latest complete training state under
checkpoints/), or is cleared first (`--overwrite`). Anything else is refused before anything is
written, with one line saying what to do.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from gps_core.checkpoint import latest_training_state
from gps_core.config import ConfigError, ExperimentConfig, to_dict

EXPERIMENT_FILE = Path('checkpoints') / 'experiment.yaml'


def prepare_run_folder(out: Path, cfg: ExperimentConfig, resume: bool, overwrite: bool) -> Path | None:
    """Check (and with overwrite, clear) the run folder; returns the training state to resume
    from, or None for a fresh run. Raises ConfigError at key --out / --resume."""
    if resume and overwrite:
        raise ConfigError('give --resume or --overwrite, not both', '--resume')
    out = Path(out)
    used = out.is_dir() and any(out.iterdir())
    if resume:
        return _resumable(out, cfg)
    if used and not overwrite:
        raise ConfigError(f'{out} already holds files (expected an empty or new folder; --resume continues '
                          f'the run in it, --overwrite replaces it)', '--out')
    if used:
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    return None


def _resumable(out: Path, cfg: ExperimentConfig) -> Path:
    saved_file = out / EXPERIMENT_FILE
    if not saved_file.is_file():
        raise ConfigError(f'{out} holds no run to resume (no {EXPERIMENT_FILE})', '--resume')
    saved = yaml.safe_load(saved_file.read_text())
    now = to_dict(cfg)
    differing = sorted(k for k in set(saved) | set(now) if k != 'iterations' and saved.get(k) != now.get(k))
    if differing:
        raise ConfigError(f'the run in {out} was started with other settings for {differing} (expected the '
                          f'same experiment; only the iteration count may change)', '--resume')
    state = latest_training_state(out / 'checkpoints')
    if state is None:
        raise ConfigError(f'{out} holds no complete iteration to resume from (expected checkpoints/state_NNN; '
                          f'--overwrite starts again)', '--resume')
    return state
