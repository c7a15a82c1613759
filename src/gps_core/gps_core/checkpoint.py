"""Checkpoints as plain data, never pickles.

Two kinds, both per iteration:
  iteration_NNN.npz (+ experiment.yaml): the controllers and per-condition scalars
      (save_checkpoint / load_checkpoint), what a person inspects or deploys;
  state_NNN/: the full training state a run resumes from (save_training_state /
      load_training_state), i.e. a GPSAlgorithm.state_dict() plus whatever the caller adds:
        manifest.json  written last: format, iteration, and each file's size and SHA-256
        state.json     the nested structure with its scalars and strings; arrays and tensors
                       appear as {"$array": key} / {"$tensor": key}
        arrays.npz     every numpy array (loaded with allow_pickle=False)
        tensors.pt     torch tensors (network weights, optimizer state) as one dict of tensors,
                       loaded with weights_only=True; only when the state holds tensors
      All files are written into a hidden temporary directory that is renamed into place as a
      whole, so a kill leaves either the complete state or none; loading checks every file
      against the manifest and names what is missing or corrupted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------- full training state
TRAINING_STATE_FORMAT = 1
_MANIFEST, _STRUCTURE, _ARRAYS, _TENSORS = 'manifest.json', 'state.json', 'arrays.npz', 'tensors.pt'
_STATE_DIR = re.compile(r'state_(\d+)')


def save_training_state(directory: str | Path, iteration: int, state: dict[str, Any],
                        extra: dict[str, Any] | None = None) -> Path:
    """Write DIR/state_NNN/ atomically (replacing an existing one) and return its path.

    state: an algorithm's state_dict(); extra: what the caller itself must resume (its own
    counters, metrics, generators), the same kinds of plain data. Plain data: dicts, lists,
    tuples, str, int, float, bool, None, numpy arrays (not of objects) and torch tensors; anything
    else raises TypeError naming where it sits, before any file is written. Arrays keep their
    memory layout (axis order) through the round trip.
    """
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise ValueError(f'iteration must be an integer >= 0; got {iteration!r}')
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f'state_{iteration:03d}'
    arrays: dict[str, np.ndarray] = {}
    tensors: dict[str, Any] = {}
    structure = json.dumps({'format': TRAINING_STATE_FORMAT, 'iteration': iteration,
                            'state': _encode(state, 'state', arrays, tensors),
                            'extra': _encode({} if extra is None else extra, 'extra', arrays, tensors)}, indent=1)
    for stale in directory.glob('.state_*.tmp'):         # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{final.name}.', suffix='.tmp', dir=directory))
    try:
        _write_file(tmp / _STRUCTURE, lambda f: f.write(structure.encode()))
        _write_file(tmp / _ARRAYS, lambda f: np.savez(f, **arrays))
        if tensors:
            import torch
            _write_file(tmp / _TENSORS, lambda f: torch.save(tensors, f))
        manifest = {'format': TRAINING_STATE_FORMAT, 'iteration': iteration,
                    'files': {p.name: _describe(p) for p in sorted(tmp.iterdir())}}
        _write_file(tmp / _MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
        _fsync_directory(tmp)
        _move_into_place(tmp, final)
        _fsync_directory(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_training_state(path: str | Path) -> dict[str, Any]:
    """{'iteration': int, 'state': dict, 'extra': dict} from a directory save_training_state wrote.

    Raises ValueError naming the missing or corrupted file (or array) of an incomplete state.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f'{path}: no training state there (expected a state_NNN directory)')
    manifest = _read_json(path, _MANIFEST, 'the state is incomplete (its save did not finish)')
    if manifest.get('format') != TRAINING_STATE_FORMAT:
        raise ValueError(f'{path}: training state format {manifest.get("format")!r}, '
                         f'this version reads {TRAINING_STATE_FORMAT}')
    files = manifest.get('files')
    if not isinstance(files, dict) or not {_STRUCTURE, _ARRAYS} <= set(files):
        raise ValueError(f'{path}/{_MANIFEST} does not list {_STRUCTURE} and {_ARRAYS}: corrupted')
    for name, expected in files.items():
        _check_file(path, name, expected)
    doc = _read_json(path, _STRUCTURE, 'corrupted')
    if doc.get('iteration') != manifest.get('iteration'):
        raise ValueError(f'{path}: {_STRUCTURE} is for iteration {doc.get("iteration")!r}, '
                         f'the manifest for {manifest.get("iteration")!r}')
    with np.load(path / _ARRAYS, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    tensors: dict[str, Any] = {}
    if _TENSORS in files:
        import torch
        tensors = torch.load(path / _TENSORS, weights_only=True, map_location='cpu')
    where = str(path)
    return {'iteration': int(doc['iteration']), 'state': _decode(doc['state'], arrays, tensors, where),
            'extra': _decode(doc['extra'], arrays, tensors, where)}


def latest_training_state(directory: str | Path) -> Path | None:
    """The highest-numbered state_NNN/ in directory that has a manifest, or None."""
    directory = Path(directory)
    found = [(int(m.group(1)), p) for p in directory.glob('state_*')
             if (m := _STATE_DIR.fullmatch(p.name)) and (p / _MANIFEST).is_file()] if directory.is_dir() else []
    return max(found)[1] if found else None


def _encode(obj: Any, where: str, arrays: dict[str, np.ndarray], tensors: dict[str, Any]) -> Any:
    """JSON-able structure; arrays and tensors go to `arrays` / `tensors` under their path."""
    if obj is None or isinstance(obj, (bool, str, int, float)):
        return obj
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith('$') for k in obj):
            return {k: _encode(v, f'{where}/{k}', arrays, tensors) for k, v in obj.items()}
        return {'$items': [[_encode(k, f'{where}/{i}/key', arrays, tensors),
                            _encode(v, f'{where}/{i}', arrays, tensors)] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, list):
        return [_encode(v, f'{where}/{i}', arrays, tensors) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {'$tuple': [_encode(v, f'{where}/{i}', arrays, tensors) for i, v in enumerate(obj)]}
    if where in arrays or where in tensors:
        raise ValueError(f'{where}: two entries of the state have this path (a key holding "/"?)')
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f'{where}: an array of Python objects is not plain data')
        return _store_array(obj, where, arrays)
    torch = sys.modules.get('torch')
    if torch is not None and isinstance(obj, torch.Tensor):
        tensors[where] = obj.detach().cpu().clone()
        return {'$tensor': where}
    raise TypeError(f'{where}: {type(obj).__name__} is not plain data (dicts, lists, tuples, str, int, '
                    f'float, bool, None, numpy arrays, torch tensors)')


def _store_array(a: np.ndarray, where: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Store a C-ordered; a strided view (e.g. a transpose) as its axes permuted into C order,
    so that loading rebuilds the same strides and later BLAS / einsum calls take the same path."""
    if a.ndim < 2 or a.flags.c_contiguous:
        arrays[where] = a
        return {'$array': where}
    axes = [int(i) for i in np.argsort([-s for s in a.strides], kind='stable')]
    permuted = a.transpose(axes)
    if not permuted.flags.c_contiguous:           # not a permutation of a dense block: layout not kept
        arrays[where] = np.ascontiguousarray(a)
        return {'$array': where}
    arrays[where] = permuted
    return {'$array': where, 'axes': axes}


def _decode(obj: Any, arrays: dict[str, np.ndarray], tensors: dict[str, Any], where: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if '$array' in obj:
        key = obj['$array']
        if key not in arrays:
            raise ValueError(f'{where}/{_ARRAYS} lacks the array {key!r}: corrupted')
        a = arrays[key]
        return a.transpose(np.argsort(obj['axes'])) if 'axes' in obj else a
    if '$tensor' in obj:
        key = obj['$tensor']
        if key not in tensors:
            raise ValueError(f'{where}/{_TENSORS} lacks the tensor {key!r}: corrupted')
        return tensors[key]
    if '$tuple' in obj:
        return tuple(_decode(v, arrays, tensors, where) for v in obj['$tuple'])
    if '$items' in obj:
        return {_decode(k, arrays, tensors, where): _decode(v, arrays, tensors, where) for k, v in obj['$items']}
    return {k: _decode(v, arrays, tensors, where) for k, v in obj.items()}


def _write_file(path: Path, write) -> None:
    with open(path, 'wb') as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, final: Path) -> None:
    """rename(2) is atomic but cannot replace a non-empty directory: an existing state is moved
    aside first (a kill in between leaves no state_NNN, never a mixed one)."""
    if final.exists():
        old = final.with_name(f'.{final.name}.{uuid.uuid4().hex}.old.tmp')
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)


def _describe(path: Path) -> dict[str, Any]:
    return {'bytes': path.stat().st_size, 'sha256': _sha256(path)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _check_file(directory: Path, name: str, expected: Any) -> None:
    path = directory / name
    if not path.is_file():
        raise ValueError(f'{directory}: the training state is incomplete: {name} is missing')
    if (not isinstance(expected, dict) or path.stat().st_size != expected.get('bytes')
            or _sha256(path) != expected.get('sha256')):
        raise ValueError(f'{directory}: {name} is corrupted (its size or SHA-256 differs from {_MANIFEST})')


def _read_json(directory: Path, name: str, problem: str) -> dict:
    path = directory / name
    if not path.is_file():
        raise ValueError(f'{directory}: {name} is missing: {problem}')
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f'{directory}: {name} is unreadable ({err}): {problem}') from None
    if not isinstance(doc, dict):
        raise ValueError(f'{directory}: {name} is not a JSON object: {problem}')
    return doc
