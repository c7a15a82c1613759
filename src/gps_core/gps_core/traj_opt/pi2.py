"""PI2 update of a linear-Gaussian controller's feedforward term and covariance: the model-free
C-step of Path Integral Guided Policy Search (Chebotar, Kalakrishnan, Yahya, Li, Schaal, Levine,
ICRA 2017: the local-policy update by PI2 of Theodorou, Buchli & Schaal JMLR'10, with the per-step
temperature from the dual of a relative-entropy bound as in REPS, Peters, Muelling & Altun AAAI'10).

Shapes: X [N, T, dX], U [N, T, dU] the samples, costs [N, T] their per-step costs; the old
controller (the distribution the samples came from) is N(K_t x + k_t, Sigma_t).

Per time step t, independently:
  1. cost-to-go of each sample, S_i,t = sum_{tau >= t} c_i,tau;
  2. weights P_i,t = softmax_i(-S_i,t / eta_t): the sample-based solution of
       max_w -sum_i w_i S_i,t   s.t.   KL(w || uniform) <= kl_threshold,
     whose temperature eta_t minimizes the dual
       g(eta) = eta * kl_threshold + eta * log( (1/N) sum_i exp(-S_i,t / eta) ),   eta >= min_temperature;
     g is convex with g'(eta) = kl_threshold - KL(P_eta || uniform), and that KL falls monotonically
     in eta, so the minimizer is the root of g' (the bound is then met with equality) or, when even
     min_temperature keeps the KL under the bound, min_temperature;
  3. the feedback gain K_t is kept; the feedforward samples are f_i,t = u_i,t - K_t x_i,t and
       k_t <- sum_i P_i,t f_i,t,   Sigma_ML = sum_i P_i,t (f_i,t - k_t)(f_i,t - k_t)^T;
  4. with covariance_damping d > 0 the covariance keeps the old shape and only rescales,
       Sigma_t <- (tr(Sigma_old^-1 Sigma_ML) / dU)^(1/d) Sigma_old
     (d > 1 slows the shrinking of the exploration noise); with d = 0, Sigma_t <- Sigma_ML.
     If Sigma_t is not positive definite (weights on too few samples), eta_t is raised until it is.
The bound must be below log N (KL(P || uniform) <= log N): then the weights' entropy stays above
log N - kl_threshold, and no single sample can take all the weight.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from gps_core.policies.linear_gaussian import LinearGaussianPolicy

# Root of g'(log eta) to this absolute tolerance in log eta: |KL - bound| ~ 1e-12 * |dKL/dlog eta|.
_LOG_ETA_TOL = 1e-12
_MAX_REPAIRS = 200                 # doublings of eta_t while Sigma_t is not positive definite


@dataclass(frozen=True)
class PI2Config:
    kl_threshold: float = 1.0          # bound on KL(P_t || uniform) per time step [nats]
    covariance_damping: float = 2.0    # d: Sigma <- m^(1/d) Sigma_old; 0 = the weighted ML covariance
    min_temperature: float = 1e-3      # floor on eta_t, in units of the cost

    def __post_init__(self) -> None:
        if not (self.kl_threshold > 0 and math.isfinite(self.kl_threshold)):
            raise ValueError(f'pi2.kl_threshold must be positive and finite, got {self.kl_threshold}')
        if not (self.covariance_damping >= 0 and math.isfinite(self.covariance_damping)):
            raise ValueError(f'pi2.covariance_damping must be >= 0 and finite, got {self.covariance_damping}')
        if not (self.min_temperature > 0 and math.isfinite(self.min_temperature)):
            raise ValueError(f'pi2.min_temperature must be positive and finite, got {self.min_temperature}')


@dataclass(frozen=True)
class PI2Update:
    policy: LinearGaussianPolicy       # K of the old controller, the new k [T, dU] and Sigma [T, dU, dU]
    temperature: np.ndarray            # eta_t [T]
    weights: np.ndarray                # P [N, T], each column sums to 1
    kl: np.ndarray                     # KL(P_t || uniform) [T]


def cost_to_go(costs: np.ndarray) -> np.ndarray:
    """S [N, T], S_i,t = sum_{tau >= t} costs_i,tau."""
    return np.cumsum(costs[:, ::-1], axis=1)[:, ::-1]


def softmax_weights(S: np.ndarray, eta: float) -> np.ndarray:
    """P_i = exp(-S_i / eta) / sum_j exp(-S_j / eta) for S [N] (shifted by min S: no overflow)."""
    e = np.exp(-(S - S.min()) / eta)
    return e / e.sum()


def weights_kl(P: np.ndarray) -> float:
    """KL(P || uniform) = sum_i P_i log(N P_i), with 0 log 0 = 0."""
    nz = P > 0
    return float(np.sum(P[nz] * np.log(P.size * P[nz])))


def temperature(S: np.ndarray, kl_threshold: float, min_temperature: float) -> float:
    """The minimizer over eta >= min_temperature of the dual g(eta) of the module docstring, for
    one step's costs-to-go S [N]."""
    def excess(log_eta: float) -> float:            # KL - bound = -g'(eta): decreasing in eta
        return weights_kl(softmax_weights(S, math.exp(log_eta))) - kl_threshold

    lo = math.log(min_temperature)
    if excess(lo) <= 0:                              # bound inactive (or all costs equal)
        return min_temperature
    spread = float(S.max() - S.min())                # KL -> 0 as eta grows past the cost spread
    hi = max(lo, math.log(spread)) + 1.0
    while excess(hi) > 0:
        hi += 2.0
    return math.exp(brentq(excess, lo, hi, xtol=_LOG_ETA_TOL))


def pi2_update(old: LinearGaussianPolicy, X: np.ndarray, U: np.ndarray, costs: np.ndarray,
               config: PI2Config = PI2Config()) -> PI2Update:
    """New feedforward terms and covariances from the samples (module docstring); K is kept."""
    X, U, costs = _validate(old, X, U, costs)
    N, T = costs.shape
    if not config.kl_threshold < math.log(N):
        # KL(P || uniform) <= log N always: the bound could never bind, and at min_temperature the
        # weights would collapse onto the cheapest sample (and the covariance with them).
        raise ValueError(f'pi2.kl_threshold = {config.kl_threshold} must be below log N = {math.log(N):.3g} '
                         f'for N = {N} samples')
    if config.covariance_damping == 0 and N <= old.dU:
        raise ValueError(f'pi2 with covariance_damping = 0 needs more than dU = {old.dU} samples, got {N}')
    S = cost_to_go(costs)
    F = U - np.einsum('tux,ntx->ntu', old.K, X)                           # feedforward samples [N, T, dU]
    k, covar = np.empty((T, old.dU)), np.empty((T, old.dU, old.dU))
    etas, P, kls = np.empty(T), np.empty((N, T)), np.empty(T)
    for t in range(T):
        eta = temperature(S[:, t], config.kl_threshold, config.min_temperature)
        etas[t], P[:, t], k[t], covar[t] = _step_with_pd_covariance(S[:, t], F[:, t], old.pol_covar[t], eta, config)
        kls[t] = weights_kl(P[:, t])
    return PI2Update(LinearGaussianPolicy.from_covar(old.K.copy(), k, covar), etas, P, kls)


def _step_with_pd_covariance(S: np.ndarray, F: np.ndarray, covar_old: np.ndarray, eta: float,
                             config: PI2Config) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(eta, P [N], k [dU], Sigma [dU, dU]) at one step, doubling eta until Sigma is positive
    definite: a higher temperature spreads the weights (lowering the KL, so the bound still holds)."""
    for _ in range(_MAX_REPAIRS):
        P = softmax_weights(S, eta)
        k, covar = weighted_moments(P, F, covar_old, config.covariance_damping)
        if _is_positive_definite(covar):
            return eta, P, k, covar
        eta *= 2.0
    raise ValueError('pi2: the sample covariance is singular even with uniform weights '
                     '(identical or too few feedforward samples at some step)')


def weighted_moments(P: np.ndarray, F: np.ndarray, covar_old: np.ndarray,
                     damping: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean k [dU] of F [N, dU] and the (damped) weighted covariance [dU, dU]."""
    k = P @ F
    D = F - k
    covar = np.einsum('n,ni,nj->ij', P, D, D)
    if damping > 0:
        mult = np.trace(np.linalg.solve(covar_old, covar)) / covar.shape[0]
        covar = mult ** (1.0 / damping) * covar_old
    return k, 0.5 * (covar + covar.T)


def _is_positive_definite(A: np.ndarray) -> bool:
    """Cholesky succeeds with a smallest eigenvalue above round-off of the largest."""
    if not np.all(np.isfinite(A)):
        return False
    try:
        np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return False
    w = np.linalg.eigvalsh(A)
    return bool(w[0] > 1e-12 * w[-1])


def _validate(old: LinearGaussianPolicy, X: np.ndarray, U: np.ndarray,
              costs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, U, costs = (np.asarray(a, dtype=float) for a in (X, U, costs))
    N = X.shape[0] if X.ndim == 3 else -1
    T, dU, dX = old.T, old.dU, old.dX
    if X.shape != (N, T, dX) or U.shape != (N, T, dU) or costs.shape != (N, T) or N < 1:
        raise ValueError(f'pi2 expects X [N, {T}, {dX}], U [N, {T}, {dU}], costs [N, {T}] with N >= 1; '
                         f'got {X.shape}, {U.shape}, {costs.shape}')
    if not all(np.all(np.isfinite(a)) for a in (X, U, costs)):
        raise ValueError('pi2: non-finite states, actions or costs')
    return X, U, costs
