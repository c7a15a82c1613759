"""Plain-data forms of the models and random generators an algorithm carries between iterations.

Every array is stored as the object holds it, derived factors included (a controller's Cholesky
factor and inverse, not recomputed on load), and copied with its memory layout (order='K'): the
next iteration then runs the same floating-point operations on the same bits as it would have
without the interruption.

A numpy Generator's bit_generator.state holds ints up to 128 bits (PCG64), kept as decimal strings
here so that any JSON reader gets them exactly. (The torch.Generator for minibatches belongs to
PolicyOpt, which keeps its state as a uint8 numpy array.)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.cost_expansion import CostExpansion

_POLICY = ('K', 'k', 'pol_covar', 'chol_pol_covar', 'inv_pol_covar')
_DYNAMICS = ('Fm', 'fv', 'dyn_covar', 'x0mu', 'x0sigma')
_COST = ('cc', 'cv', 'Cm', 'cs')


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {name: getattr(obj, name).copy(order='K') for name in names}


def _arrays(state: dict, names: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    missing = [name for name in names if not isinstance(state.get(name), np.ndarray)]
    if missing:
        raise ValueError(f'training state: {what} lacks the arrays {missing}')
    return {name: state[name].copy(order='K') for name in names}


def policy_state(policy: LinearGaussianPolicy | None) -> dict | None:
    return None if policy is None else _fields(policy, _POLICY)


def policy_from_state(state: dict | None) -> LinearGaussianPolicy | None:
    if state is None:
        return None
    a = _arrays(state, _POLICY, 'a controller')
    T, dU, dX = a['K'].shape
    if a['k'].shape != (T, dU) or any(a[n].shape != (T, dU, dU) for n in _POLICY[2:]):
        raise ValueError(f'training state: controller arrays disagree with K [{T}, {dU}, {dX}]')
    return LinearGaussianPolicy(**a)


def dynamics_state(dyn: LinearGaussianDynamics | None) -> dict | None:
    return None if dyn is None else _fields(dyn, _DYNAMICS)


def dynamics_from_state(state: dict | None) -> LinearGaussianDynamics | None:
    return None if state is None else LinearGaussianDynamics(**_arrays(state, _DYNAMICS, 'a dynamics model'))


def cost_state(cost: CostExpansion | None) -> dict | None:
    return None if cost is None else _fields(cost, _COST)


def cost_from_state(state: dict | None) -> CostExpansion | None:
    return None if state is None else CostExpansion(**_arrays(state, _COST, 'a cost expansion'))


def numpy_rng_state(rng: np.random.Generator) -> dict:
    """rng.bit_generator.state with every int as a decimal string (arrays, e.g. MT19937's key, stay)."""
    return _ints_to_strings(rng.bit_generator.state)


def restore_numpy_rng(rng: np.random.Generator, state: dict) -> None:
    """Set rng (in place: every holder of this Generator continues from the state)."""
    kind = type(rng.bit_generator).__name__
    if not isinstance(state, dict) or state.get('bit_generator') != kind:
        found = state.get('bit_generator') if isinstance(state, dict) else state
        raise ValueError(f'training state: the numpy generator is {found!r}, this run uses {kind!r}')
    rng.bit_generator.state = _strings_to_ints(state)


def _ints_to_strings(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _ints_to_strings(value) for key, value in tree.items()}
    if isinstance(tree, (int, np.integer)) and not isinstance(tree, bool):
        return str(int(tree))
    return tree.copy() if isinstance(tree, np.ndarray) else tree


def _strings_to_ints(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: value if key == 'bit_generator' else _strings_to_ints(value) for key, value in tree.items()}
    return int(tree) if isinstance(tree, str) else tree
