"""Fit time-varying linear-Gaussian dynamics to samples, optionally under a GMM prior.

Shapes: X [N, T, dX], U [N, T, dU]; per step the joint Gaussian is over y_t = [x_t, u_t, x_{t+1}]
of dimension D = dX + dU + dX; result: LinearGaussianDynamics (Fm [T, dX, dX+dU], ...).

Levine & Abbeel NIPS'14 (dynamics fitting with a GMM prior): fit the joint Gaussian of y_t, under a
normal-inverse-Wishart prior when one is given, then condition x_{t+1} on [x_t, u_t] to read off
F_t, f_t and Sigma_t.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics

if TYPE_CHECKING:
    from gps_core.dynamics.gmm_prior import DynamicsPriorGMM


def validate_trajectories(X: np.ndarray, U: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Check X [N, T, dX], U [N, T, dU] with N >= 1, T >= 2, all finite; return float arrays."""
    X, U = np.asarray(X, dtype=float), np.asarray(U, dtype=float)
    if X.ndim != 3 or U.ndim != 3:
        raise ValueError(f'{where} expects X [N, T, dX] and U [N, T, dU]; got X{X.shape}, U{U.shape}')
    if X.shape[:2] != U.shape[:2]:
        raise ValueError(f'{where}: X and U disagree on [N, T]: X{X.shape}, U{U.shape}')
    N, T, dX = X.shape
    if N < 1 or T < 2 or dX < 1 or U.shape[2] < 1:
        raise ValueError(f'{where} expects N >= 1 samples, T >= 2 steps, dX, dU >= 1; '
                         f'got X{X.shape}, U{U.shape}')
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(U))):
        raise ValueError(f'{where}: X or U holds non-finite values')
    return X, U


def joint_points(X: np.ndarray, U: np.ndarray) -> np.ndarray:
    """y_t = [x_t, u_t, x_{t+1}] for t < T-1: [N, T-1, dX+dU+dX]."""
    return np.concatenate([X[:, :-1], U[:, :-1], X[:, 1:]], axis=2)


def niw_map_covariance(emp_mean: np.ndarray, emp_cov: np.ndarray, N: int, mu0: np.ndarray,
                       Phi: np.ndarray, m: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Normal-inverse-Wishart MAP covariance (reference GPS `gauss_fit_joint_prior`), batched.

    emp_mean [B, D], emp_cov [B, D, D] (weights 1/N), mu0 [B, D], Phi [B, D, D], m [B], n0 [B]:
    Sigma = (N S + Phi + N m / (N + m) (mean - mu0)(mean - mu0)^T) / (N + n0), symmetrized.
    Works in place: emp_cov and Phi are overwritten and the result is returned in Phi's buffer,
    so the [B, D, D] arithmetic allocates nothing (fresh multi-MB arrays cost page faults).
    """
    d = emp_mean - mu0
    sigma = np.multiply(emp_cov, N, out=emp_cov)
    sigma += Phi
    np.multiply(((N * m / (N + m))[:, None] * d)[:, :, None], d[:, None, :], out=Phi)
    sigma += Phi
    sigma /= (N + n0)[:, None, None]
    out = np.add(sigma, sigma.transpose(0, 2, 1), out=Phi)
    out *= 0.5
    return out


def condition(mean: np.ndarray, sigma: np.ndarray, d_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Condition the last block on the first d_in entries of a batch of Gaussians.

    mean [B, D], sigma [B, D, D] -> F [B, D-d_in, d_in], f [B, D-d_in], cov [B, D-d_in, D-d_in]:
    F = Sigma_oi Sigma_ii^{-1}, f = mu_o - F mu_i, cov = Sigma_oo - F Sigma_ii F^T, computed as
    Sigma_oo - F Sigma_io (the same matrix, one product fewer), symmetrized. One batched solve.
    """
    s_ii, s_io, s_oo = sigma[:, :d_in, :d_in], sigma[:, :d_in, d_in:], sigma[:, d_in:, d_in:]
    F = np.linalg.solve(s_ii, s_io).transpose(0, 2, 1)
    f = mean[:, d_in:] - np.einsum('boi,bi->bo', F, mean[:, :d_in])
    cov = s_oo - F @ s_io
    return F, f, 0.5 * (cov + cov.transpose(0, 2, 1))


def initial_state(X0: np.ndarray, prior: DynamicsPriorGMM | None, regularization: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """x0mu [dX] = mean of X0 [N, dX]; x0sigma [dX, dX] = its covariance (weights 1/N) plus
    `regularization` on the diagonal.

    With a prior, the covariance is the normal-inverse-Wishart MAP estimate under the prior's
    initial-state estimate over its whole sample window (`DynamicsPriorGMM.initial_state`, worth
    `strength` pseudo-samples): with few samples (N = 1 gives a zero empirical covariance) it
    leans on the window; its pull fades as 1 / N. The mean stays the empirical one, as in the
    reference code.
    """
    N, dX = X0.shape
    mean = X0.mean(axis=0)
    diff = X0 - mean
    cov = diff.T @ diff / N
    if prior is not None:
        mu0, Phi, m, n0 = prior.initial_state()
        if mu0.shape != (dX,):
            raise ValueError(f'prior initial state has dX={mu0.shape[0]}; samples have dX={dX}')
        cov = niw_map_covariance(mean[None], cov[None], N, mu0[None], Phi[None],
                                 np.array([m]), np.array([n0]))[0]
    return mean, cov + regularization * np.eye(dX)


def fit_dynamics(X: np.ndarray, U: np.ndarray, prior: DynamicsPriorGMM | None = None,
                 regularization: float = 1e-6) -> LinearGaussianDynamics:
    """Fit p(x_{t+1} | x_t, u_t) = N(F_t [x_t; u_t] + f_t, Sigma_t) for every t < T-1 at once.

    X [N, T, dX], U [N, T, dU]. Per step, the joint Gaussian over y_t = [x_t, u_t, x_{t+1}]:
    empirical mean and covariance (weights 1/N); with a prior, its covariance is replaced by the
    normal-inverse-Wishart MAP estimate (`niw_map_covariance`) under prior.eval of that step's
    N points. `regularization` is added to the [x_t, u_t] diagonal block before conditioning
    (`condition`); without a prior this is ridge-regularized least squares with an intercept.

    Entry T-1 of Fm, fv, dyn_covar is zeros: there is no x_T, so it must not look like a fitted
    model. x0mu, x0sigma: see `initial_state`.
    """
    X, U = validate_trajectories(X, U, 'fit_dynamics')
    if not (np.isfinite(regularization) and regularization >= 0):
        raise ValueError(f'fit_dynamics expects regularization >= 0; got {regularization}')
    N, T, dX = X.shape
    dU = U.shape[2]
    dXU = dX + dU
    pts = joint_points(X, U).transpose(1, 0, 2)                      # [T-1, N, D]
    mean = pts.mean(axis=1)
    diff = pts - mean[:, None]
    # The prior is evaluated before the empirical covariance exists, so at most two [T-1, D, D]
    # buffers are alive at once.
    prior_moments = prior.eval(pts) if prior is not None else None
    sigma = np.matmul(diff.transpose(0, 2, 1), diff)                  # [T-1, D, D]
    sigma /= N
    if prior_moments is not None:
        sigma = niw_map_covariance(mean, sigma, N, *prior_moments)
    else:
        sigma = np.add(sigma, sigma.transpose(0, 2, 1))
        sigma *= 0.5
    sigma[:, np.arange(dXU), np.arange(dXU)] += regularization
    F, f, cov = condition(mean, sigma, dXU)
    Fm = np.zeros((T, dX, dXU))
    fv = np.zeros((T, dX))
    dyn_covar = np.zeros((T, dX, dX))
    Fm[:-1], fv[:-1], dyn_covar[:-1] = F, f, cov
    x0mu, x0sigma = initial_state(X[:, 0], prior, regularization)
    return LinearGaussianDynamics(Fm=Fm, fv=fv, dyn_covar=dyn_covar, x0mu=x0mu, x0sigma=x0sigma)
