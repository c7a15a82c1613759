"""Time-varying linear-Gaussian controller u_t = K_t x_t + k_t + chol(Sigma_t)^T eps_t."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearGaussianPolicy:
    """K [T, dU, dX], k [T, dU], pol_covar [T, dU, dU] (chol and inverse derived once).

    chol_pol_covar[t] is upper triangular with chol^T chol = pol_covar[t], so
    u = K x + k + chol^T eps has covariance pol_covar for eps ~ N(0, I).
    """

    K: np.ndarray
    k: np.ndarray
    pol_covar: np.ndarray
    chol_pol_covar: np.ndarray
    inv_pol_covar: np.ndarray

    @staticmethod
    def from_covar(K: np.ndarray, k: np.ndarray, pol_covar: np.ndarray) -> LinearGaussianPolicy:
        K, k, pol_covar = (np.asarray(a, dtype=float) for a in (K, k, pol_covar))
        T, dU, dX = K.shape
        if k.shape != (T, dU) or pol_covar.shape != (T, dU, dU):
            raise ValueError(f'expected k [{T}, {dU}] and pol_covar [{T}, {dU}, {dU}]; '
                             f'got k{k.shape}, pol_covar{pol_covar.shape}')
        pol_covar = 0.5 * (pol_covar + np.swapaxes(pol_covar, 1, 2))
        L = np.linalg.cholesky(pol_covar)                       # lower, L L^T = Sigma
        eye = np.broadcast_to(np.eye(dU), L.shape)
        Linv = np.linalg.solve(L, eye)
        inv = np.swapaxes(Linv, 1, 2) @ Linv
        return LinearGaussianPolicy(K, k, pol_covar, np.swapaxes(L, 1, 2), 0.5 * (inv + np.swapaxes(inv, 1, 2)))

    @property
    def T(self) -> int:
        return self.K.shape[0]

    @property
    def dU(self) -> int:
        return self.K.shape[1]

    @property
    def dX(self) -> int:
        return self.K.shape[2]

    def act(self, t: int, x: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        u = self.K[t] @ x + self.k[t]
        if noise is not None:
            u = u + self.chol_pol_covar[t].T @ noise
        return u

    def fold_noise(self, noise: np.ndarray) -> np.ndarray:
        """k_t + chol_t^T eps_t for a whole trial: what a robot runs as u = K x + k'. noise [T, dU]."""
        if noise.shape != (self.T, self.dU):
            raise ValueError(f'noise must be [{self.T}, {self.dU}]; got {noise.shape}')
        return self.k + np.einsum('tji,tj->ti', self.chol_pol_covar, noise)
