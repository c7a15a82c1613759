"""Quadratic tracking of a slice of the state: l = ramp_t * 1/2 ||wp * (x[idx] - target)||^2."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gps_core.costs.base import CostDerivs
from gps_core.costs.ramp import check_ramp_kind, ramp_weights


def check_batch(X: np.ndarray, U: np.ndarray) -> tuple[int, int, int, int]:
    """Check X [N, T, dX], U [N, T, dU] agree; return (N, T, dX, dU)."""
    if X.ndim != 3 or U.ndim != 3 or X.shape[:2] != U.shape[:2]:
        raise ValueError(f'expected X [N, T, dX] and U [N, T, dU], got X {X.shape} and U {U.shape}')
    return X.shape[0], X.shape[1], X.shape[2], U.shape[2]


def check_slice(owner: str, idx, target, wp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate idx (unique non-negative ints [k]), target and wp (scalars or [k]); return arrays [k]."""
    idx_arr = np.asarray(idx)
    if idx_arr.ndim != 1 or idx_arr.size == 0 or not np.issubdtype(idx_arr.dtype, np.integer):
        raise ValueError(f'{owner}: idx must be a non-empty 1-D sequence of integers, got {idx!r}')
    if np.any(idx_arr < 0) or np.unique(idx_arr).size != idx_arr.size:
        raise ValueError(f'{owner}: idx must be unique and non-negative, got {idx_arr.tolist()}')
    k = idx_arr.size
    out = [idx_arr.astype(np.intp)]
    for name, val in (('target', target), ('wp', wp)):
        arr = np.array(val, dtype=float)
        if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != k):
            raise ValueError(f'{owner}: {name} must be a scalar or have length len(idx)={k}, got shape {arr.shape}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'{owner}: {name} must be finite, got {arr}')
        arr = np.broadcast_to(arr, (k,)).copy()
        arr.setflags(write=False)
        out.append(arr)
    return out[0], out[1], out[2]


def slice_residual(owner: str, X: np.ndarray, idx: np.ndarray, target: np.ndarray,
                   wp: np.ndarray) -> np.ndarray:
    """d = wp * (X[..., idx] - target) [N, T, k], after checking idx fits in dX."""
    if idx.max() >= X.shape[2]:
        raise ValueError(f'{owner}: idx {idx.tolist()} out of range for state dimension dX={X.shape[2]}')
    return wp * (X[..., idx] - target)


@dataclass(frozen=True)
class StateCost:
    """idx [k] state indices; target, wp: scalars or [k]; ramp: a kind from ramp.RAMP_KINDS."""

    idx: np.ndarray
    target: np.ndarray
    wp: np.ndarray
    ramp: str = 'constant'
    final_multiplier: float = 1.0

    def __post_init__(self) -> None:
        idx, target, wp = check_slice('StateCost', self.idx, self.target, self.wp)
        check_ramp_kind(self.ramp)
        ramp_weights(self.ramp, 1, self.final_multiplier)  # validates final_multiplier
        for name, val in (('idx', idx), ('target', target), ('wp', wp)):
            object.__setattr__(self, name, val)

    def eval(self, X: np.ndarray, U: np.ndarray) -> CostDerivs:
        """X [N, T, dX], U [N, T, dU] -> CostDerivs; lx, lxx nonzero only on idx."""
        N, T, dX, dU = check_batch(X, U)
        d = slice_residual('StateCost', X, self.idx, self.target, self.wp)   # [N, T, k]
        r = ramp_weights(self.ramp, T, self.final_multiplier)[None, :]        # [1, T]
        out = CostDerivs.zeros(N, T, dX, dU)
        out.l[:] = 0.5 * r * np.einsum('nti,nti->nt', d, d)
        out.lx[..., self.idx] = r[..., None] * self.wp * d
        out.lxx[..., self.idx[:, None], self.idx[None, :]] = r[..., None, None] * np.diag(self.wp ** 2)
        return out
