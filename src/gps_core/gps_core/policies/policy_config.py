"""Settings of the neural-network policy, its supervised step and its linearization (no torch here:
the config loads without importing torch)."""
from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ('relu', 'tanh')


@dataclass(frozen=True)
class PolicyPriorConfig:
    """GMM over [x, mu_pi(o)] of the last max_samples trajectories of a condition, refitted every
    policy linearization. K = clip(points // min_samples_per_cluster, 1, max_clusters); strength:
    pseudo-observations the prior is worth; em_iterations: EM cap per fit (fits after the first
    start from the last one)."""

    max_clusters: int = 20
    min_samples_per_cluster: int = 40
    max_samples: int = 20
    strength: float = 1.0
    em_iterations: int = 100

    def __post_init__(self) -> None:
        for name in ('max_clusters', 'min_samples_per_cluster', 'max_samples', 'em_iterations'):
            if getattr(self, name) < 1:
                raise ValueError(f'policy.prior.{name} must be >= 1, got {getattr(self, name)}')
        if not self.strength > 0:
            raise ValueError(f'policy.prior.strength must be > 0, got {self.strength}')

    def num_clusters(self, num_points: int) -> int:
        return int(min(max(num_points // self.min_samples_per_cluster, 1), self.max_clusters))


@dataclass(frozen=True)
class PolicyConfig:
    """pi_theta(u|o) = N(mu_theta(o), Sigma_pi): an MLP (hidden = () is a linear policy).

    iterations: Adam steps per policy update (per GPS iteration; per inner iteration for BADMM),
    each on a minibatch of batch_size (time step, sample) pairs drawn from all conditions.
    regularization: added to the state block of each step's joint covariance before the
    linearization's conditioning (as the dynamics fit does).
    """

    kind: str = 'mlp'                   # the network kind (visuomotor: spatial_softmax)
    hidden: tuple[int, ...] = (64, 64)
    activation: str = 'relu'
    iterations: int = 500
    batch_size: int = 64
    learning_rate: float = 1.0e-3
    weight_decay: float = 0.0
    regularization: float = 1.0e-6
    prior: PolicyPriorConfig = PolicyPriorConfig()

    def __post_init__(self) -> None:
        if self.kind != 'mlp':
            raise ValueError(f"policy.kind of this policy is 'mlp', got {self.kind!r}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f'policy.hidden sizes must be >= 1, got {list(self.hidden)}')
        if self.activation not in ACTIVATIONS:
            raise ValueError(f'policy.activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}')
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError(f'policy.iterations and policy.batch_size must be >= 1, '
                             f'got {self.iterations} and {self.batch_size}')
        if not self.learning_rate > 0:
            raise ValueError(f'policy.learning_rate must be > 0, got {self.learning_rate}')
        if self.weight_decay < 0 or self.regularization < 0:
            raise ValueError('policy.weight_decay and policy.regularization must be >= 0')
