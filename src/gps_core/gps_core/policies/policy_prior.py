"""Linearizing the global policy around a condition's samples, under a GMM prior.

Shapes: X [N, T, dX], obs [N, T, dO]; pol_mu [N, T, dU] = mu_theta(obs); result: a time-varying
LinearGaussianPolicy N(K_t x + k_t, S_t) with K [T, dU, dX].

Levine et al. JMLR'16, App. A.3 / Montgomery & Levine NIPS'16, Sec. 4: the trajectory step needs
pi_theta as a linear-Gaussian controller in x. Per time step, fit the joint Gaussian of
[x_t, mu_theta(o_t)] over the N samples, under a normal-inverse-Wishart prior from a GMM fitted to
[x, mu_theta(o)] of the condition's recent trajectories (all steps), then condition the action on
the state: K_t = S_ux S_xx^-1, k_t = mu_u - K_t mu_x, S_t = S_uu|x + Sigma_pi. The prior lets a
handful of samples determine a dX-dimensional regression.

numpy only: the network is passed in as a function obs [M, dO] -> mean actions [M, dU], or for a
visuomotor policy (obs, images [M, H, W, 3] uint8) -> [M, dU]; its window keeps the images
(uint8: never in x).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from gps_core.dynamics.gmm import GMM
from gps_core.dynamics.lin_reg import condition, niw_map_covariance
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.policy_config import PolicyPriorConfig

MeanFn = Callable[[np.ndarray, 'np.ndarray | None'], np.ndarray]


class PolicyPriorGMM:
    """Window of a condition's recent (X, obs) and the GMM over [x, mu_theta(o)] refitted on it.

    The window keeps observations, not actions: the network changes every policy step, so its
    actions are recomputed whenever the prior is refitted.
    """

    def __init__(self, config: PolicyPriorConfig = PolicyPriorConfig(), regularization: float = 1e-6):
        self.config = config
        self.regularization = float(regularization)
        self.gmm = GMM()
        self._X: np.ndarray | None = None
        self._obs: np.ndarray | None = None
        self._images: np.ndarray | None = None

    def add_samples(self, X: np.ndarray, obs: np.ndarray, images: np.ndarray | None = None) -> None:
        """Append X [N, T, dX], obs [N, T, dO] (and images [N, T, H, W, 3] uint8); keep the newest
        config.max_samples trajectories."""
        if images is not None:
            images = np.asarray(images, dtype=np.uint8)
            if images.shape[:2] != np.shape(X)[:2]:
                raise ValueError(f'images {images.shape} do not match X {np.shape(X)}')
            if self._images is not None:
                images = np.concatenate([self._images, images])
            self._images = images[-self.config.max_samples:].copy()
        X, obs = np.asarray(X, dtype=float), np.asarray(obs, dtype=float)
        if X.ndim != 3 or obs.ndim != 3 or X.shape[:2] != obs.shape[:2]:
            raise ValueError(f'expected X [N, T, dX] and obs [N, T, dO]; got {X.shape}, {obs.shape}')
        if self._X is not None and (X.shape[1:] != self._X.shape[1:] or obs.shape[1:] != self._obs.shape[1:]):
            raise ValueError(f'new samples {X.shape}, {obs.shape} do not match the window '
                             f'{self._X.shape}, {self._obs.shape}')
        if self._X is not None:
            X, obs = np.concatenate([self._X, X]), np.concatenate([self._obs, obs])
        keep = self.config.max_samples
        self._X, self._obs = X[-keep:].copy(), obs[-keep:].copy()

    def fit(self, mean_fn: MeanFn, rng: np.random.Generator) -> None:
        """Refit the GMM to [x, mu_theta(o)] over the window (warm-started from the last fit)."""
        if self._X is None:
            raise RuntimeError('PolicyPriorGMM has no samples; call add_samples first')
        N, T, dX = self._X.shape
        U = _mean(mean_fn, self._obs.reshape(N * T, -1), _flat(self._images))
        data = np.concatenate([self._X.reshape(N * T, dX), U], axis=1)
        self.gmm.fit(data, self.config.num_clusters(N * T), rng, max_iterations=self.config.em_iterations)

    def linearize(self, X: np.ndarray, pol_mu: np.ndarray, pol_covar: np.ndarray) -> LinearGaussianPolicy:
        """Time-varying linear-Gaussian fit of the policy at the states X [N, T, dX], whose network
        mean actions are pol_mu [N, T, dU]; pol_covar [dU, dU] is Sigma_pi."""
        X, pol_mu = np.asarray(X, dtype=float), np.asarray(pol_mu, dtype=float)
        if X.ndim != 3 or pol_mu.shape[:2] != X.shape[:2] or pol_mu.ndim != 3:
            raise ValueError(f'expected X [N, T, dX] and pol_mu [N, T, dU]; got {X.shape}, {pol_mu.shape}')
        N, T, dX = X.shape
        dU = pol_mu.shape[2]
        pts = np.concatenate([X, pol_mu], axis=2).transpose(1, 0, 2)      # [T, N, dX + dU]
        mean = pts.mean(axis=1)
        diff = pts - mean[:, None]
        emp = np.matmul(diff.transpose(0, 2, 1), diff) / N
        mu0, Phi, m, n0 = self.gmm.inference(pts)
        s = self.config.strength                                          # as DynamicsPriorGMM.eval
        m, n0 = m * s, n0 * s
        sigma = niw_map_covariance(mean, emp, N, mu0, Phi * m[:, None, None], m, n0)
        sigma[:, np.arange(dX), np.arange(dX)] += self.regularization
        K, k, cov = condition(mean, sigma, dX)
        return LinearGaussianPolicy.from_covar(K, k, cov + np.asarray(pol_covar, dtype=float)[None])

    def update_and_linearize(self, mean_fn: MeanFn, X: np.ndarray, obs: np.ndarray, pol_covar: np.ndarray,
                             rng: np.random.Generator, images: np.ndarray | None = None) -> LinearGaussianPolicy:
        """Refit on the window and linearize around X, obs, images (the condition's current samples)."""
        self.fit(mean_fn, rng)
        N, T = X.shape[:2]
        pol_mu = _mean(mean_fn, np.asarray(obs, dtype=float).reshape(N * T, -1), _flat(images)).reshape(N, T, -1)
        return self.linearize(X, pol_mu, pol_covar)

    # ------------------------------------------------------------ checkpoints (plain data)
    def state_dict(self) -> dict:
        """The window of states and observations (None before the first samples) and its GMM."""
        return {'X': _copy(self._X), 'obs': _copy(self._obs), 'images': _copy(self._images),
                'gmm': self.gmm.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        X, obs = _copy(state['X']), _copy(state['obs'])
        if (X is None) != (obs is None) or (
                X is not None and (X.ndim != 3 or obs.ndim != 3 or X.shape[:2] != obs.shape[:2])):
            raise ValueError('training state: the policy prior window must be X [N, T, dX] and obs [N, T, dO] '
                             f'or empty; got {None if X is None else X.shape}, {None if obs is None else obs.shape}')
        self.gmm.load_state_dict(state['gmm'])
        self._X, self._obs, self._images = X, obs, _copy(state.get('images'))


def _mean(mean_fn: MeanFn, obs: np.ndarray, images: np.ndarray | None) -> np.ndarray:
    """mean_fn(obs) for a policy on obs alone, mean_fn(obs, images) for a visuomotor one."""
    return mean_fn(obs) if images is None else mean_fn(obs, images)


def _flat(images: np.ndarray | None) -> np.ndarray | None:
    """[N, T, H, W, 3] -> [N * T, H, W, 3] (or None)."""
    return None if images is None else images.reshape((-1,) + images.shape[2:])


def _copy(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.array(a, order='K')
