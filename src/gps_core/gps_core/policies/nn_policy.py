"""The global policy pi_theta(u|o) = N(mu_theta(o), Sigma_pi) as a PyTorch MLP.

Shapes: obs [..., dO] -> mean action [..., dU]; Sigma_pi [dU, dU] is state-independent.

The observation normalization (mean and scale per dimension, fitted once on the first training
data) and Sigma_pi are buffers of the module: they travel with its state_dict and with the
TorchScript export, so the robot runs exactly what was trained. Everything is float64 so the
linearization and the tests compare at numpy precision.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

_ACTIVATIONS = {'relu': nn.ReLU, 'tanh': nn.Tanh}
DTYPE = torch.float64


class PolicyNetwork(nn.Module):
    """mu_theta(o) = MLP((o - obs_mean) / obs_scale); hidden = () gives a linear policy."""

    KIND = 'mlp'   # its architecture's 'kind' (gps_core.policies.spec)

    def __init__(self, dO: int, dU: int, hidden: Sequence[int] = (64, 64), activation: str = 'relu',
                 generator: torch.Generator | None = None):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f'activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}')
        self.dO, self.dU = int(dO), int(dU)
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        layers: list[nn.Module] = []
        d = self.dO
        for h in self.hidden:
            layers += [nn.Linear(d, h, dtype=DTYPE), _ACTIVATIONS[activation]()]
            d = h
        layers.append(nn.Linear(d, self.dU, dtype=DTYPE))
        self.net = nn.Sequential(*layers)
        self.register_buffer('obs_mean', torch.zeros(self.dO, dtype=DTYPE))
        self.register_buffer('obs_scale', torch.ones(self.dO, dtype=DTYPE))
        self.register_buffer('covar', torch.eye(self.dU, dtype=DTYPE))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """PyTorch's default Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from `generator`
        so that a seeded experiment gives the same network."""
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / float(np.sqrt(layer.in_features))
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net((obs - self.obs_mean) / self.obs_scale)

    def architecture(self) -> dict:
        """What `from_architecture` needs to rebuild the module before loading a state_dict."""
        return {'kind': self.KIND, 'dO': self.dO, 'dU': self.dU, 'hidden': list(self.hidden),
                'activation': self.activation}

    @staticmethod
    def from_architecture(arch: dict) -> PolicyNetwork:
        """Raises ValueError naming an unexpected key or a bad size (arch comes from a message)."""
        unknown = sorted(set(arch) - {'kind', 'dO', 'dU', 'hidden', 'activation'})
        if unknown:
            raise ValueError(f'unexpected keys {unknown} in an mlp architecture')
        if arch.get('kind', PolicyNetwork.KIND) != PolicyNetwork.KIND:
            raise ValueError(f"kind must be {PolicyNetwork.KIND!r}, got {arch['kind']!r}")
        sizes = [arch['dO'], arch['dU'], *arch['hidden']]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000 for v in sizes):
            raise ValueError(f'sizes must be integers in [1, 1e6], got dO={arch["dO"]!r}, dU={arch["dU"]!r}, '
                             f'hidden={arch["hidden"]!r}')
        return PolicyNetwork(int(arch['dO']), int(arch['dU']), tuple(arch['hidden']), str(arch['activation']))

    def fit_normalization(self, obs: np.ndarray) -> None:
        """Per-dimension mean and standard deviation of obs [M, dO]; constant dimensions keep scale 1."""
        obs = np.asarray(obs, dtype=float).reshape(-1, self.dO)
        std = obs.std(axis=0)
        with torch.no_grad():
            self.obs_mean.copy_(torch.from_numpy(obs.mean(axis=0)))
            self.obs_scale.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0)))

    def set_covar(self, covar: np.ndarray) -> None:
        covar = np.asarray(covar, dtype=float)
        if covar.shape != (self.dU, self.dU) or not np.all(np.isfinite(covar)):
            raise ValueError(f'policy covariance must be a finite [{self.dU}, {self.dU}] matrix; got {covar.shape}')
        np.linalg.cholesky(covar)                                   # raises if not positive definite
        with torch.no_grad():
            self.covar.copy_(torch.from_numpy(0.5 * (covar + covar.T)))

    def mean_np(self, obs: np.ndarray) -> np.ndarray:
        """mu_theta(o) for obs [..., dO] as numpy [..., dU] (no gradient)."""
        obs = np.asarray(obs, dtype=float)
        if obs.shape[-1] != self.dO:
            raise ValueError(f'observations must end in dO={self.dO}; got shape {obs.shape}')
        with torch.no_grad():
            return self(torch.from_numpy(obs.reshape(-1, self.dO))).numpy().reshape(*obs.shape[:-1], self.dU)

    def covar_np(self) -> np.ndarray:
        return self.covar.detach().numpy().copy()
