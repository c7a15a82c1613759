"""End-effector-point cost: the l2 + log penalty of Levine, Finn, Darrell & Abbeel, JMLR 2016.

With d = wp * (x[idx] - target) (all points concatenated) and dsq = ||d||^2 (the cost of Sec. 6):
    l = ramp_t * (1/2 l2 dsq + 1/2 l1 log(alpha + dsq))
The log term gives a sharp pull in the last few centimetres; its Hessian
I/(alpha+dsq) - 2 d d^T/(alpha+dsq)^2 is indefinite for dsq > alpha. That is kept exact on purpose:
the trajectory optimizer is responsible for handling non-convex cost expansions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gps_core.costs.base import CostDerivs
from gps_core.costs.ramp import check_ramp_kind, ramp_weights
from gps_core.costs.state import check_batch, check_slice, slice_residual


@dataclass(frozen=True)
class EEPointCost:
    """idx [k] state indices of the points; target, wp: scalars or [k]; l1, l2 >= 0; alpha > 0."""

    idx: np.ndarray
    target: np.ndarray
    wp: np.ndarray
    l1: float
    l2: float
    alpha: float
    ramp: str = 'constant'
    final_multiplier: float = 1.0

    def __post_init__(self) -> None:
        idx, target, wp = check_slice('EEPointCost', self.idx, self.target, self.wp)
        for name in ('l1', 'l2'):
            val = getattr(self, name)
            if not math.isfinite(val) or val < 0:
                raise ValueError(f'EEPointCost: {name} must be finite and >= 0, got {val!r}')
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ValueError(f'EEPointCost: alpha must be finite and > 0, got {self.alpha!r}')
        check_ramp_kind(self.ramp)
        ramp_weights(self.ramp, 1, self.final_multiplier)  # validates final_multiplier
        for name, val in (('idx', idx), ('target', target), ('wp', wp)):
            object.__setattr__(self, name, val)

    def eval(self, X: np.ndarray, U: np.ndarray) -> CostDerivs:
        """X [N, T, dX], U [N, T, dU] -> CostDerivs; lx, lxx nonzero only on idx, u-terms zero."""
        N, T, dX, dU = check_batch(X, U)
        d = slice_residual('EEPointCost', X, self.idx, self.target, self.wp)  # [N, T, k]
        r = ramp_weights(self.ramp, T, self.final_multiplier)[None, :]         # [1, T]
        dsq = np.einsum('nti,nti->nt', d, d)
        inv = 1.0 / (self.alpha + dsq)                                          # [N, T]
        # Derivatives with respect to d, then chained through x[idx] -> d (a diagonal scale by wp).
        gd = (self.l2 + self.l1 * inv)[..., None] * d                           # [N, T, k]
        Hd = ((self.l2 + self.l1 * inv)[..., None, None] * np.eye(d.shape[-1])
              - (2.0 * self.l1 * inv ** 2)[..., None, None] * np.einsum('nti,ntj->ntij', d, d))
        out = CostDerivs.zeros(N, T, dX, dU)
        out.l[:] = r * (0.5 * self.l2 * dsq + 0.5 * self.l1 * np.log(self.alpha + dsq))
        out.lx[..., self.idx] = r[..., None] * self.wp * gd
        out.lxx[..., self.idx[:, None], self.idx[None, :]] = (
            r[..., None, None] * self.wp[:, None] * Hd * self.wp[None, :])
        return out
