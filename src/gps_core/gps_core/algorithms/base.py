"""What a trainer needs from a GPS algorithm, and the statistics one iteration reports.

The trainer samples with `policies` (or with `network` when `samples_from_network`, or with a
teacher's controller when a TeacherAlgorithm says `samples_from_teacher`), hands the batches to
`iteration`, and checkpoints `state_dict()`; `load_state_dict` on a freshly built
algorithm of the same configuration continues the run bit-identically (see
gps_core.checkpoint.save_training_state for the files).

A training state is nested plain data: dicts with string keys, lists, Python scalars and strings,
numpy arrays, and torch tensors only for network weights and optimizer state. It starts with a
'header' that says which algorithm and shapes it belongs to; `check_state_header` refuses a state
whose header differs from the loading algorithm's, naming every mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.samples import SampleBatch

if TYPE_CHECKING:
    from gps_core.policies.nn_policy import PolicyNetwork
    from gps_core.traj_opt.mpc import MPCProblem

# Version of the state_dict layout; bump when a field changes meaning.
STATE_FORMAT = 1


@dataclass
class IterationStats:
    kl: list[float] = field(default_factory=list)
    kl_step: list[float] = field(default_factory=list)
    eta: list[float] = field(default_factory=list)
    step_mult: list[float] = field(default_factory=list)
    eta_iterations: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {'dynamics': 0.0, 'traj_opt': 0.0})
    extra: dict[str, list[float]] = field(default_factory=dict)    # algorithm-specific, per condition


@runtime_checkable
class GPSAlgorithm(Protocol):
    """One GPS algorithm: per-condition controllers, optionally a global network policy."""

    @property
    def policies(self) -> list[LinearGaussianPolicy]:
        """One controller per condition: what off-policy samples are drawn with."""
        ...

    @property
    def samples_from_network(self) -> bool:
        """Whether the next samples should come from `network` (with its noise) instead."""
        ...

    @property
    def network(self) -> PolicyNetwork | None:
        """The global policy, or None for trajectory-centric RL."""
        ...

    def iteration(self, samples: list[SampleBatch]) -> IterationStats:
        """One GPS iteration on one batch per condition."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything the next iterations depend on, as plain data (copies, not views)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of an algorithm built from the same configuration."""
        ...


@runtime_checkable
class TeacherAlgorithm(GPSAlgorithm, Protocol):
    """A GPS algorithm whose samples are run, from some iteration on, by a teacher controller it
    describes as data (MPC-GPS's receding-horizon MPC), and that is told which trials were disturbed
    (pushed by the simulator: neither x nor u shows the push, so they are kept out of model fits)."""

    @property
    def samples_from_teacher(self) -> bool:
        """Whether the next samples must be run by `teacher_problem(m)` with `teacher_noise(m, eps)`."""
        ...

    def teacher_problem(self, m: int) -> MPCProblem:
        """Condition m's teacher (gps_controllers.mpc_controller.MPCSpec carries it)."""
        ...

    def teacher_noise(self, m: int, eps: np.ndarray) -> np.ndarray:
        """[T, dU] exploration noise for a trial of condition m's teacher from standard-normal eps [T, dU]."""
        ...

    def iteration(self, samples: list[SampleBatch], disturbed: list[np.ndarray] | None = None) -> IterationStats:
        """One iteration; disturbed: per condition a [N] bool mask of the pushed trials (None: none)."""
        ...


def check_state_header(state: Any, expected: dict[str, Any]) -> None:
    """Raise ValueError naming every entry of state['header'] that differs from expected."""
    if not isinstance(state, dict) or not isinstance(state.get('header'), dict):
        raise ValueError('not a GPS training state: it has no header')
    found = state['header']
    wrong = [f'{key}={found.get(key)!r} (this run: {value!r})' for key, value in expected.items()
             if found.get(key) != value]
    if wrong:
        raise ValueError('the training state does not fit this run: it has ' + ', '.join(wrong))
