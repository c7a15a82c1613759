"""What the trainer needs from an agent: run one trial of a linear-Gaussian controller."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gps_agent_ros.experiment import Condition


@dataclass(frozen=True)
class Trial:
    """One recorded trajectory: X [T, dX] states, U [T, dU] the actions actually applied."""

    X: np.ndarray
    U: np.ndarray


class Agent(Protocol):
    def run_trial(self, condition: Condition, K: np.ndarray, k: np.ndarray) -> Trial:
        """Run u_t = K_t x_t + k_t (noise already folded into k) from the condition's initial pose.

        K [T, dU, dX], k [T, dU].
        """
        ...

    def close(self) -> None: ...
