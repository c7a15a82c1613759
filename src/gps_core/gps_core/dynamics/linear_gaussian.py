"""Time-varying linear-Gaussian dynamics p(x_{t+1} | x_t, u_t) = N(F_t [x_t; u_t] + f_t, Sigma_t)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearGaussianDynamics:
    """Fm [T, dX, dX+dU], fv [T, dX], dyn_covar [T, dX, dX] (entry T-1 is unused: no x_T).

    x0mu [dX], x0sigma [dX, dX]: the initial-state distribution estimated from the samples.
    """

    Fm: np.ndarray
    fv: np.ndarray
    dyn_covar: np.ndarray
    x0mu: np.ndarray
    x0sigma: np.ndarray

    @property
    def T(self) -> int:
        return self.Fm.shape[0]

    @property
    def dX(self) -> int:
        return self.Fm.shape[1]

    @property
    def dU(self) -> int:
        return self.Fm.shape[2] - self.Fm.shape[1]
