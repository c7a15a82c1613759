"""What the trial runner needs of a controller: one action per step, written into a buffer."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Controller(Protocol):
    """A controller of horizon T for states of size dX and actions of size dU."""

    @property
    def T(self) -> int: ...

    @property
    def dX(self) -> int: ...

    @property
    def dU(self) -> int: ...

    def command(self, t: int, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """u_t for state x [dX], written into out [dU] (float64) and returned; no allocation."""
        ...
