"""Temporally smoothed exploration noise (Levine et al. JMLR'16, Sec. 6: smoothed noise gives
exploration that a torque-controlled arm actually feels, instead of white noise it filters out)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def smoothed_noise(rng: np.random.Generator, T: int, dU: int, smooth_sigma: float,
                   renormalize: bool = True) -> np.ndarray:
    """eps [T, dU]: standard normal noise filtered along time with a Gaussian of smooth_sigma steps.

    With renormalize, each dimension is rescaled to unit empirical variance so the controller's
    covariance keeps its meaning after folding the noise into k.
    """
    eps = rng.standard_normal((T, dU))
    if smooth_sigma > 0:
        eps = gaussian_filter1d(eps, sigma=smooth_sigma, axis=0, mode='nearest')
        if renormalize:
            std = eps.std(axis=0)
            eps = eps / np.where(std > 1e-12, std, 1.0)
    return eps
