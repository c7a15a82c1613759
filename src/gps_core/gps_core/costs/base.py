"""Cost interface: batched value and analytic derivatives over all samples and time steps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class CostDerivs:
    """Cost l(x_t, u_t) and its derivatives for every sample and step.

    l [N, T], lx [N, T, dX], lu [N, T, dU], lxx [N, T, dX, dX], luu [N, T, dU, dU], lux [N, T, dU, dX]
    """

    l: np.ndarray
    lx: np.ndarray
    lu: np.ndarray
    lxx: np.ndarray
    luu: np.ndarray
    lux: np.ndarray

    def __add__(self, other: CostDerivs) -> CostDerivs:
        return CostDerivs(self.l + other.l, self.lx + other.lx, self.lu + other.lu,
                          self.lxx + other.lxx, self.luu + other.luu, self.lux + other.lux)

    def scale(self, w: float) -> CostDerivs:
        return CostDerivs(w * self.l, w * self.lx, w * self.lu, w * self.lxx, w * self.luu, w * self.lux)

    @staticmethod
    def zeros(N: int, T: int, dX: int, dU: int) -> CostDerivs:
        return CostDerivs(np.zeros((N, T)), np.zeros((N, T, dX)), np.zeros((N, T, dU)),
                          np.zeros((N, T, dX, dX)), np.zeros((N, T, dU, dU)), np.zeros((N, T, dU, dX)))


class Cost(Protocol):
    """Anything that maps X [N, T, dX], U [N, T, dU] to CostDerivs."""

    def eval(self, X: np.ndarray, U: np.ndarray) -> CostDerivs: ...
