"""What the trainer needs from an agent: run one trial of a linear-Gaussian controller, or of a
policy function (the neural network alone)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from gps_agent_ros.experiment import Condition

# (t, x_t [dX]) -> u_t [dU]. The network's observation is the state x (see gps_core.algorithms.policy_base).
PolicyFn = Callable[[int, np.ndarray], np.ndarray]


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

    def run_policy_trial(self, condition: Condition, policy_fn: PolicyFn) -> Trial:
        """Run u_t = policy_fn(t, x_t) for the experiment's T steps from the condition's initial pose."""
        ...

    def close(self) -> None: ...
