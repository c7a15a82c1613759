"""Time-varying linear controller u_t = K_t x_t + k_t, the sample-time form of the
linear-Gaussian controller p(u_t | x_t) = N(K_t x_t + k_t, Sigma_t) (Levine & Abbeel, NIPS'14,
sec. 3): the exploration noise is drawn and temporally smoothed by the trainer and folded into
k before the controller is sent, so the robot side is deterministic array math.

Shapes: K [T, dU, dX], k [T, dU]. `from_flat` is the boundary where gains arrive from a message:
it validates everything before a controller object can exist, so nothing invalid can ever be
commanded. No rclpy here (this runs inside the controller node's loop).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class InvalidController(ValueError):
    """The controller (or the goal carrying it) cannot be run; the message says why."""


class LinearGaussianController:
    """u_t = K_t x_t + k_t with K [T, dU, dX], k [T, dU] (noise already folded into k).

    The arrays are private copies, made read-only: the parameters of a running trial never
    change; a new trial gets a new controller object (swapped by reference between trials).
    """

    def __init__(self, K: np.ndarray, k: np.ndarray) -> None:
        K = np.array(K, dtype=np.float64, order="C", copy=True)
        k = np.array(k, dtype=np.float64, order="C", copy=True)
        if K.ndim != 3:
            raise InvalidController(f"K must have shape [T, dU, dX], got {K.shape}")
        T, du, dx = K.shape
        if T < 1 or du < 1 or dx < 1:
            raise InvalidController(f"K must have T, dU, dX >= 1, got shape {K.shape}")
        if k.shape != (T, du):
            raise InvalidController(f"k must have shape {(T, du)} to match K {K.shape}, "
                                    f"got {k.shape}")
        _check_finite(K, "gains K")
        _check_finite(k, "offsets k")
        K.setflags(write=False)
        k.setflags(write=False)
        self._K, self._k = K, k
        self._T, self._du, self._dx = T, du, dx

    @classmethod
    def from_flat(cls, gains: Sequence[float] | np.ndarray, offsets: Sequence[float] | np.ndarray,
                  T: int, du: int, dx: int, expected_dx: int, expected_du: int
                  ) -> "LinearGaussianController":
        """Build from row-major flat arrays (gains = K.ravel(), offsets = k.ravel()).

        Checks, in order, that T >= 1, that the sizes the gains were computed for (du, dx) are
        those of this robot (expected_du, expected_dx), that the flat arrays have T*du*dx and
        T*du entries, and that every entry is finite. Raises InvalidController naming what was
        expected and what arrived.
        """
        T, du, dx = int(T), int(du), int(dx)
        if T < 1:
            raise InvalidController(f"horizon T must be >= 1, got {T}")
        if dx != expected_dx:
            raise InvalidController(f"state size dx={dx} does not match the robot's "
                                    f"dx={expected_dx}")
        if du != expected_du:
            raise InvalidController(f"action size du={du} does not match the robot's "
                                    f"du={expected_du}")
        K = np.asarray(gains, dtype=np.float64).ravel()
        k = np.asarray(offsets, dtype=np.float64).ravel()
        if K.size != T * du * dx:
            raise InvalidController(f"gains must have T*du*dx = {T}*{du}*{dx} = {T * du * dx} "
                                    f"entries (K [T, du, dx] row-major), got {K.size}")
        if k.size != T * du:
            raise InvalidController(f"offsets must have T*du = {T}*{du} = {T * du} entries "
                                    f"(k [T, du] row-major), got {k.size}")
        return cls(K.reshape(T, du, dx), k.reshape(T, du))

    # ------------------------------------------------------------- properties
    @property
    def T(self) -> int:
        return self._T

    @property
    def dU(self) -> int:
        return self._du

    @property
    def dX(self) -> int:
        return self._dx

    @property
    def K(self) -> np.ndarray:
        """[T, dU, dX], read-only."""
        return self._K

    @property
    def k(self) -> np.ndarray:
        """[T, dU], read-only."""
        return self._k

    @property
    def image_shape(self) -> None:
        return None  # sees the state only

    # ---------------------------------------------------------------- hot path
    def command(self, t: int, x: np.ndarray, out: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """u_t = K_t x + k_t written into `out` ([dU], float64, contiguous) and returned.

        x: [dX]. No array allocation: this runs once per control step.
        """
        if not 0 <= t < self._T:
            raise IndexError(f"step t={t} outside the horizon [0, {self._T})")
        np.matmul(self._K[t], x, out=out)
        out += self._k[t]
        return out


def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), arr.shape)
        value = float(arr[first])
        raise InvalidController(
            f"{what} has {int(bad.sum())} non-finite entries (first at index "
            f"{tuple(int(i) for i in first)}: {'nan' if math.isnan(value) else value})")
