"""What the trial runner needs of a controller: one action per step, written into a buffer."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Controller(Protocol):
    """A controller of horizon T for states of size dX and actions of size dU; a visuomotor
    policy also sees each step's camera image (image_shape (H, W); None: no image)."""

    @property
    def T(self) -> int: ...

    @property
    def dX(self) -> int: ...

    @property
    def dU(self) -> int: ...

    @property
    def image_shape(self) -> tuple[int, int] | None: ...

    def command(self, t: int, x: np.ndarray, out: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """u_t for state x [dX] (and image [H, W, 3] uint8), written into out [dU] (float64) and
        returned; no allocation."""
        ...
