"""Quadratic cost model around the samples, in absolute [x; u] coordinates.

c_t(xu) ~= cc_t + cv_t . xu + 1/2 xu^T Cm_t xu, averaged over the N samples
(the Taylor expansion of each sample is re-centred at the origin, then averaged;
Levine & Abbeel NIPS'14, Sec. 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gps_core.costs.base import CostDerivs


@dataclass(frozen=True)
class CostExpansion:
    """cc [T], cv [T, dX+dU], Cm [T, dX+dU, dX+dU]; cs [N, T] the sampled costs it came from."""

    cc: np.ndarray
    cv: np.ndarray
    Cm: np.ndarray
    cs: np.ndarray

    @property
    def T(self) -> int:
        return self.cc.shape[0]

    def with_linear_terms(self, dcv: np.ndarray, dCm: np.ndarray | None = None) -> CostExpansion:
        """The same model plus extra linear (and quadratic) terms, e.g. BADMM's Lagrange terms."""
        Cm = self.Cm if dCm is None else self.Cm + dCm
        return CostExpansion(self.cc, self.cv + dcv, Cm, self.cs)


def expand_cost(d: CostDerivs, X: np.ndarray, U: np.ndarray) -> CostExpansion:
    """Average the per-sample expansions of l around (x_n,t, u_n,t), re-centred at zero.

    X [N, T, dX], U [N, T, dU]; d holds the derivatives at those points.
    """
    XU = np.concatenate([X, U], axis=2)                                 # [N, T, dXU]
    lxu = np.concatenate([d.lx, d.lu], axis=2)
    Cm = np.concatenate([np.concatenate([d.lxx, np.swapaxes(d.lux, 2, 3)], axis=3),
                         np.concatenate([d.lux, d.luu], axis=3)], axis=2)  # [N, T, dXU, dXU]
    CmXU = np.einsum('ntij,ntj->nti', Cm, XU)
    cc = d.l - np.einsum('nti,nti->nt', XU, lxu) + 0.5 * np.einsum('nti,nti->nt', XU, CmXU)
    cv = lxu - CmXU
    return CostExpansion(cc.mean(0), cv.mean(0), Cm.mean(0), d.l)
