"""Quadratic action (torque) penalty l = 1/2 sum_i wu_i u_i^2 (Levine et al. JMLR 2016, Sec. 6)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gps_core.costs.base import CostDerivs
from gps_core.costs.state import check_batch


@dataclass(frozen=True)
class ActionCost:
    """wu: a scalar or [dU] vector of non-negative weights, one per action dimension."""

    wu: float | np.ndarray

    def __post_init__(self) -> None:
        wu = np.array(self.wu, dtype=float)
        if wu.ndim > 1 or wu.size == 0:
            raise ValueError(f'ActionCost: wu must be a scalar or a [dU] vector, got shape {wu.shape}')
        if not np.all(np.isfinite(wu)) or np.any(wu < 0):
            raise ValueError(f'ActionCost: wu must be finite and >= 0, got {wu}')
        wu.setflags(write=False)
        object.__setattr__(self, 'wu', wu)

    def eval(self, X: np.ndarray, U: np.ndarray) -> CostDerivs:
        """X [N, T, dX], U [N, T, dU] -> CostDerivs; only l, lu, luu are nonzero."""
        N, T, dX, dU = check_batch(X, U)
        if self.wu.ndim == 1 and self.wu.shape[0] != dU:
            raise ValueError(f'ActionCost: wu has length {self.wu.shape[0]} but U has dU={dU}')
        wu = np.broadcast_to(self.wu, (dU,))
        d = CostDerivs.zeros(N, T, dX, dU)
        d.l[:] = 0.5 * np.einsum('i,nti->nt', wu, U * U)
        d.lu[:] = wu * U
        d.luu[:] = np.diag(wu)
        return d
