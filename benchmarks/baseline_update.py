"""The baseline of bench_update.py: the same math, structured like the 2017 reference code.

Per time step: GMM responsibilities with every cluster covariance factorized again
(scipy.stats.multivariate_normal), one normal-inverse-Wishart regression; EM run until it
converges (no warm-start cap); the eta search of the reference (bracketing, x10 steps, geometric
means) with the KL summed step by step. Used only to measure speedups; results are checked
against the production code by the benchmark.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gps_core.algorithms.step_adjust import adjust_step_mult
from gps_core.dynamics.lin_reg import fit_dynamics, joint_points
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.traj_opt import expand_cost, forward_pass
from gps_core.traj_opt.lqr import NotPositiveDefinite, backward_pass, kl_penalty_terms


def _prior_step(gmm_params, pts: np.ndarray, strength: float):
    K = gmm_params.K
    logp = np.stack([np.log(gmm_params.weights[k]) + multivariate_normal.logpdf(
        pts, gmm_params.means[k], gmm_params.covariances[k], allow_singular=True) for k in range(K)], axis=1)
    w = np.exp(logp - logsumexp(logp, axis=1, keepdims=True)).mean(axis=0)
    mu0 = w @ gmm_params.means
    Phi = sum(w[k] * (gmm_params.covariances[k] + np.outer(gmm_params.means[k] - mu0, gmm_params.means[k] - mu0))
              for k in range(K))
    return mu0, Phi * strength, strength, strength


def baseline_dynamics(alg, batch) -> tuple[float, LinearGaussianDynamics]:
    cond = alg.conditions[0]
    prior = cond.prior
    prior.config = dataclasses.replace(prior.config, warm_em_iterations=prior.config.em_iterations)
    t0 = time.perf_counter()
    prior.update(batch.X, batch.U, alg.rng)
    N, T, dX = batch.X.shape
    dXU = dX + batch.dU
    pts = joint_points(batch.X, batch.U)
    Fm, fv, cov = np.zeros((T, dX, dXU)), np.zeros((T, dX)), np.zeros((T, dX, dX))
    for t in range(T - 1):
        y = pts[:, t]
        mu0, Phi, m, n0 = _prior_step(prior.gmm.params, y, prior.config.strength)
        mun = y.mean(axis=0)
        empsig = (y - mun).T @ (y - mun) / N
        sigma = (N * empsig + Phi + (N * m) / (N + m) * np.outer(mun - mu0, mun - mu0)) / (N + n0)
        sigma = 0.5 * (sigma + sigma.T)
        sigma[np.arange(dXU), np.arange(dXU)] += alg.dynamics_config.regularization
        Fm[t] = np.linalg.solve(sigma[:dXU, :dXU], sigma[:dXU, dXU:]).T
        fv[t] = mun[dXU:] - Fm[t] @ mun[:dXU]
        c = sigma[dXU:, dXU:] - Fm[t] @ sigma[:dXU, :dXU] @ Fm[t].T
        cov[t] = 0.5 * (c + c.T)
    x0 = fit_dynamics(batch.X, batch.U, prior, alg.dynamics_config.regularization)   # x0 terms only
    elapsed = time.perf_counter() - t0
    return elapsed, LinearGaussianDynamics(Fm, fv, cov, x0.x0mu, x0.x0sigma)


def _kl_loop(mu, sigma, new, old) -> float:
    dX, total = new.dX, 0.0
    for t in range(new.T):
        P = old.inv_pol_covar[t]
        dK, dk = new.K[t] - old.K[t], new.k[t] - old.k[t]
        dmean = dK @ mu[t, :dX] + dk
        total += 0.5 * (np.trace(P @ new.pol_covar[t]) + dmean @ P @ dmean
                        + np.trace(P @ dK @ sigma[t, :dX, :dX] @ dK.T) - new.dU
                        + np.linalg.slogdet(old.pol_covar[t])[1] - np.linalg.slogdet(new.pol_covar[t])[1])
    return total


def baseline_traj_opt(alg, batch) -> tuple[float, float]:
    """Returns (seconds, achieved KL)."""
    cond, cfg = alg.conditions[0], alg.config
    dyn = fit_dynamics(batch.X, batch.U, cond.prior, alg.dynamics_config.regularization)
    t0 = time.perf_counter()
    cost = expand_cost(alg.costs[0].eval(batch.X, batch.U), batch.X, batch.U)
    step_mult = cond.step_mult
    if cond.prev is not None:
        pp, pd, pc, _ = cond.prev                        # the reference recomputes the prediction
        step_mult, _, _ = adjust_step_mult(step_mult, pp, cond.policy, pd, pc, dyn, cost,
                                           cfg.min_step_mult, cfg.max_step_mult)
    kl_step = cfg.base_kl_step * step_mult * batch.T
    prior = cond.policy
    PKLm, PKLv = kl_penalty_terms(prior)
    eta, min_eta, max_eta = cond.eta, 1e-8, 1e16
    for _ in range(50):
        while True:
            try:
                pol = backward_pass(cost.Cm / eta + PKLm, cost.cv / eta + PKLv, dyn)
                break
            except NotPositiveDefinite:
                eta *= 2.0
        mu, sigma = forward_pass(pol, dyn)
        kl = _kl_loop(mu, sigma, pol, prior)
        con = kl - kl_step
        if abs(con) < 0.1 * kl_step:
            break
        if con < 0:
            max_eta = eta
            eta = max(math.sqrt(min_eta * max_eta), 0.1 * max_eta)
        else:
            min_eta = eta
            eta = min(math.sqrt(min_eta * max_eta), 10.0 * min_eta)
    return time.perf_counter() - t0, kl
