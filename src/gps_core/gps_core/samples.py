"""Samples as arrays.

Shapes (documented once, used everywhere):
  X   [N, T, dX]  states
  U   [N, T, dU]  actions
  obs [N, T, dO]  policy observations (optional; the policy may see less than x)
  images [N, T, H, W, 3] uint8  the camera's image at each state (optional; a visuomotor policy's
                  observation is (image, obs); images are never part of x)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleBatch:
    """N trajectories of one condition, stacked."""

    X: np.ndarray
    U: np.ndarray
    obs: np.ndarray | None = None
    images: np.ndarray | None = None

    def __post_init__(self) -> None:
        X, U = np.asarray(self.X, dtype=float), np.asarray(self.U, dtype=float)
        if X.ndim != 3 or U.ndim != 3:
            raise ValueError(f'SampleBatch expects X [N, T, dX] and U [N, T, dU]; got X{X.shape}, U{U.shape}')
        if X.shape[:2] != U.shape[:2]:
            raise ValueError(f'X and U disagree on [N, T]: X{X.shape}, U{U.shape}')
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(U))):
            raise ValueError('SampleBatch holds non-finite states or actions')
        object.__setattr__(self, 'X', X)
        object.__setattr__(self, 'U', U)
        if self.obs is not None:
            obs = np.asarray(self.obs, dtype=float)
            if obs.ndim != 3 or obs.shape[:2] != X.shape[:2]:
                raise ValueError(f'obs must be [N, T, dO] with N, T = {X.shape[:2]}; got {obs.shape}')
            object.__setattr__(self, 'obs', obs)
        if self.images is not None:
            images = np.asarray(self.images)
            if images.dtype != np.uint8 or images.ndim != 5 or images.shape[:2] != X.shape[:2] or images.shape[4] != 3:
                raise ValueError(f'images must be uint8 [N, T, H, W, 3] with N, T = {X.shape[:2]}; got '
                                 f'{images.dtype} {images.shape}')

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def T(self) -> int:
        return self.X.shape[1]

    @property
    def dX(self) -> int:
        return self.X.shape[2]

    @property
    def dU(self) -> int:
        return self.U.shape[2]

    def concat(self, other: SampleBatch) -> SampleBatch:
        obs = images = None
        if self.obs is not None and other.obs is not None:
            obs = np.concatenate([self.obs, other.obs])
        if self.images is not None and other.images is not None:
            images = np.concatenate([self.images, other.images])
        return SampleBatch(np.concatenate([self.X, other.X]), np.concatenate([self.U, other.U]), obs, images)
