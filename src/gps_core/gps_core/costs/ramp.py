"""Per-step weights that shape a cost over the horizon (the old GPS RAMP_* options)."""
from __future__ import annotations

import math

import numpy as np

RAMP_KINDS = ('constant', 'linear', 'quadratic', 'final_only')


def ramp_weights(kind: str, T: int, final_multiplier: float = 1.0) -> np.ndarray:
    """Weights [T] for each time step; the last one is multiplied by final_multiplier.

    'constant': 1; 'linear': (t+1)/T; 'quadratic': ((t+1)/T)^2; 'final_only': 1 at t = T-1, else 0.
    A large final_multiplier stresses reaching the target at the end (Levine et al. JMLR 2016, Sec. 6).
    """
    check_ramp_kind(kind)
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f'ramp_weights: T must be a positive integer, got {T!r}')
    if not math.isfinite(final_multiplier) or final_multiplier < 0:
        raise ValueError(f'ramp_weights: final_multiplier must be finite and >= 0, got {final_multiplier!r}')
    frac = np.arange(1, T + 1, dtype=float) / T
    if kind == 'constant':
        w = np.ones(T)
    elif kind == 'linear':
        w = frac
    elif kind == 'quadratic':
        w = frac ** 2
    else:
        w = np.zeros(T)
        w[-1] = 1.0
    w[-1] *= final_multiplier
    return w


def check_ramp_kind(kind: str) -> None:
    """Raise ValueError naming `kind` and the valid kinds unless it is one of RAMP_KINDS."""
    if kind not in RAMP_KINDS:
        raise ValueError(f'unknown ramp kind {kind!r}; valid kinds: {", ".join(RAMP_KINDS)}')
