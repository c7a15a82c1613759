"""Dynamics fitting and the GMM prior against independent oracles.

Oracles: known linear-Gaussian systems, per-step least squares (np.linalg.lstsq), a literal per-step
transcription of the reference `gauss_fit_joint_prior`, and a slow EM / inference written with
scipy.stats.multivariate_normal over explicit loops.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gps_core.dynamics import GMM, DynamicsPriorConfig, DynamicsPriorGMM, fit_dynamics


# ----------------------------------------------------------------------------- known systems

def make_system(rng: np.random.Generator, dX: int = 4, dU: int = 2, T: int = 10,
                time_varying: float = 0.1) -> dict[str, np.ndarray]:
    """x_{t+1} = A_t x_t + B_t u_t + c_t + w_t, w_t ~ N(0, Q); u_t = K x_t + k_t + N(0, I)."""
    A0 = np.eye(dX) + 0.1 * rng.standard_normal((dX, dX))
    A0 /= max(1.0, 1.05 * np.abs(np.linalg.eigvals(A0)).max())
    dA = time_varying * rng.standard_normal((dX, dX))
    B0 = rng.standard_normal((dX, dU))
    phase = np.sin(np.linspace(0.0, np.pi, T))[:, None, None]
    L = 0.02 * rng.standard_normal((dX, dX))
    return dict(A=A0 + phase * dA, B=np.broadcast_to(B0, (T, dX, dU)).copy(),
                c=0.1 * rng.standard_normal((T, dX)), Q=L @ L.T + 0.0025 * np.eye(dX),
                K=-0.1 * rng.standard_normal((dU, dX)), k=0.5 * rng.standard_normal((T, dU)),
                x0=rng.standard_normal(dX))


def rollout(sys: dict[str, np.ndarray], rng: np.random.Generator, N: int) -> tuple[np.ndarray, np.ndarray]:
    T, dX, dU = sys['A'].shape[0], sys['A'].shape[1], sys['B'].shape[2]
    X, U = np.zeros((N, T, dX)), np.zeros((N, T, dU))
    X[:, 0] = sys['x0'] + rng.standard_normal((N, dX))
    chol_q = np.linalg.cholesky(sys['Q'])
    for t in range(T):
        U[:, t] = X[:, t] @ sys['K'].T + sys['k'][t] + rng.standard_normal((N, dU))
        if t < T - 1:
            X[:, t + 1] = (X[:, t] @ sys['A'][t].T + U[:, t] @ sys['B'][t].T + sys['c'][t]
                           + rng.standard_normal((N, dX)) @ chol_q.T)
    return X, U


def true_F(sys: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([sys['A'], sys['B']], axis=2)


def fitted_prior(sys, rng, batches: int = 4, per_batch: int = 5, **config) -> DynamicsPriorGMM:
    prior = DynamicsPriorGMM(DynamicsPriorConfig(**config))
    for _ in range(batches):
        prior.update(*rollout(sys, rng, per_batch), rng)
    return prior


# ----------------------------------------------------------------------------- regression

def test_plain_fit_recovers_time_varying_system():
    rng = np.random.default_rng(0)
    sys = make_system(rng)
    X, U = rollout(sys, rng, 2000)
    dyn = fit_dynamics(X, U)
    assert dyn.Fm.shape == (10, 4, 6) and dyn.fv.shape == (10, 4) and dyn.dyn_covar.shape == (10, 4, 4)
    np.testing.assert_allclose(dyn.Fm[:-1], true_F(sys)[:-1], atol=1e-2)
    np.testing.assert_allclose(dyn.fv[:-1], sys['c'][:-1], atol=1e-2)
    # Residual covariance of 2000 samples: relative standard error ~ sqrt(2 / 2000) = 3%.
    np.testing.assert_allclose(dyn.dyn_covar[:-1], np.broadcast_to(sys['Q'], (9, 4, 4)),
                               atol=0.1 * np.abs(sys['Q']).max())
    # Entry T-1 has no x_T behind it: zeros by contract.
    assert not dyn.Fm[-1].any() and not dyn.fv[-1].any() and not dyn.dyn_covar[-1].any()
    np.testing.assert_allclose(dyn.x0mu, sys['x0'], atol=0.1)
    np.testing.assert_allclose(dyn.x0sigma, np.eye(4), atol=0.12)


def test_plain_fit_equals_per_step_least_squares():
    rng = np.random.default_rng(1)
    sys = make_system(rng)
    X, U = rollout(sys, rng, 30)
    dyn = fit_dynamics(X, U, regularization=0.0)
    for t in range(9):
        A = np.hstack([X[:, t], U[:, t], np.ones((30, 1))])
        coef, *_ = np.linalg.lstsq(A, X[:, t + 1], rcond=None)
        resid = X[:, t + 1] - A @ coef
        np.testing.assert_allclose(dyn.Fm[t], coef[:6].T, atol=1e-9)
        np.testing.assert_allclose(dyn.fv[t], coef[6], atol=1e-9)
        np.testing.assert_allclose(dyn.dyn_covar[t], resid.T @ resid / 30, atol=1e-10)


def gauss_fit_joint_prior(pts, mu0, Phi, m, n0, d_in, sig_reg):
    """Literal per-step transcription of the reference GPS function (weights 1/N)."""
    N = pts.shape[0]
    mun = pts.mean(axis=0)
    diff = pts - mun
    empsig = diff.T @ diff / N
    empsig = 0.5 * (empsig + empsig.T)
    sigma = (N * empsig + Phi + (N * m) / (N + m) * np.outer(mun - mu0, mun - mu0)) / (N + n0)
    sigma = 0.5 * (sigma + sigma.T) + sig_reg
    fd = np.linalg.solve(sigma[:d_in, :d_in], sigma[:d_in, d_in:]).T
    fc = mun[d_in:] - fd @ mun[:d_in]
    dynsig = sigma[d_in:, d_in:] - fd @ sigma[:d_in, :d_in] @ fd.T
    return fd, fc, 0.5 * (dynsig + dynsig.T)


def test_prior_fit_equals_per_step_reference_transcription():
    rng = np.random.default_rng(2)
    sys = make_system(rng)
    prior = fitted_prior(sys, rng)
    X, U = rollout(sys, rng, 5)
    dyn = fit_dynamics(X, U, prior, regularization=1e-4)
    pts = np.concatenate([X[:, :-1], U[:, :-1], X[:, 1:]], axis=2).transpose(1, 0, 2)
    mu0, Phi, m, n0 = prior.eval(pts)
    sig_reg = np.zeros((10, 10))
    sig_reg[:6, :6] = 1e-4 * np.eye(6)
    for t in range(9):
        fd, fc, dynsig = gauss_fit_joint_prior(pts[t], mu0[t], Phi[t], m[t], n0[t], 6, sig_reg)
        np.testing.assert_allclose(dyn.Fm[t], fd, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dyn.fv[t], fc, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dyn.dyn_covar[t], dynsig, rtol=1e-8, atol=1e-12)
    # Initial state: normal-inverse-Wishart blend of the 5 samples with the window's x_0 moments.
    mu00, Phi0, m0, n00 = prior.initial_state()
    x0 = X[:, 0]
    emp = np.cov(x0.T, bias=True)
    d = x0.mean(axis=0) - mu00
    expected = (5 * emp + Phi0 + 5 * m0 / (5 + m0) * np.outer(d, d)) / (5 + n00) + 1e-4 * np.eye(4)
    np.testing.assert_allclose(dyn.x0sigma, expected, rtol=1e-10)
    np.testing.assert_allclose(dyn.x0mu, x0.mean(axis=0), rtol=1e-12)


def test_prior_beats_plain_regression_with_five_samples():
    """With dX + dU = 6 > N - 1 = 4 the plain fit is underdetermined; the prior fills it in."""
    prior_err, plain_err = [], []
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        sys = make_system(rng, time_varying=0.02)
        prior = fitted_prior(sys, rng)                       # 20 earlier trajectories
        X, U = rollout(sys, rng, 5)
        F = true_F(sys)[:-1]
        prior_err.append(np.sqrt(np.mean((fit_dynamics(X, U, prior).Fm[:-1] - F) ** 2)))
        plain_err.append(np.sqrt(np.mean((fit_dynamics(X, U).Fm[:-1] - F) ** 2)))
    assert np.mean(prior_err) < 0.5 * np.mean(plain_err), (prior_err, plain_err)


# ----------------------------------------------------------------------------- GMM

MEANS = np.array([[-6.0, 0.0], [6.0, 1.0], [0.0, 8.0]])
COVS = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]], [[0.8, 0.0], [0.0, 0.3]]])
WEIGHTS = np.array([0.2, 0.3, 0.5])


def mixture_sample(rng: np.random.Generator, M: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(3, size=M, p=WEIGHTS)
    pts = np.array([rng.multivariate_normal(MEANS[k], COVS[k]) for k in labels])
    return pts, labels


def match(fitted_means: np.ndarray) -> np.ndarray:
    """order[j] = index of the fitted cluster nearest true cluster j (must be a permutation)."""
    order = np.array([np.argmin(np.linalg.norm(fitted_means - mu, axis=1)) for mu in MEANS])
    assert sorted(order) == [0, 1, 2]
    return order


def test_gmm_recovers_separated_mixture_and_warm_start_is_fast():
    rng = np.random.default_rng(3)
    data, _ = mixture_sample(rng, 1500)
    gmm = GMM().fit(data, 3, rng)
    assert gmm.converged and gmm.n_iter > 1
    p = gmm.params
    order = match(p.means)
    np.testing.assert_allclose(p.means[order], MEANS, atol=0.15)
    np.testing.assert_allclose(p.weights[order], WEIGHTS, atol=0.04)
    np.testing.assert_allclose(p.covariances[order], COVS, atol=0.2)
    cold_iterations = gmm.n_iter
    before = p.means.copy()
    gmm.fit(data, 3, rng)                                   # warm start from the converged fit
    assert gmm.converged and gmm.n_iter <= 1 < cold_iterations
    np.testing.assert_allclose(gmm.params.means, before, atol=1e-3)


def test_carried_rows_match_a_full_recompute():
    """A sliding window: the first fit's last 600 rows lead the second fit's data."""
    rng = np.random.default_rng(14)
    data, _ = mixture_sample(rng, 1200)
    window_1, window_2 = data[:900], data[300:]
    reuse, recompute = GMM(), GMM()
    for gmm in (reuse, recompute):
        gmm.fit(window_1, 3, np.random.default_rng(0))
    reuse.fit(window_2, 3, rng, carried_rows=600)
    recompute.fit(window_2, 3, rng)
    assert reuse.n_iter == recompute.n_iter
    np.testing.assert_allclose(reuse.params.means, recompute.params.means, rtol=1e-6)
    np.testing.assert_allclose(reuse.params.covariances, recompute.params.covariances, rtol=1e-5)
    with pytest.raises(ValueError, match='carried_rows=600'):
        GMM().fit(window_1, 3, rng).fit(window_1[::-1], 3, rng, carried_rows=600)


def naive_em_step(data, weights, means, covs):
    """One EM step written with explicit loops and scipy densities (float64 throughout)."""
    M, K = data.shape[0], weights.shape[0]
    dens = np.array([[weights[k] * multivariate_normal(means[k], covs[k]).pdf(data[i])
                      for k in range(K)] for i in range(M)])
    resp = dens / dens.sum(axis=1, keepdims=True)
    nk = resp.sum(axis=0)
    new_means = np.array([resp[:, k] @ data / nk[k] for k in range(K)])
    new_covs = np.array([sum(resp[i, k] * np.outer(data[i] - new_means[k], data[i] - new_means[k])
                             for i in range(M)) / nk[k] for k in range(K)])
    return nk / M, new_means, new_covs


def test_gmm_converges_to_a_fixed_point_of_the_naive_em_step():
    rng = np.random.default_rng(4)
    data, _ = mixture_sample(rng, 300)
    data[:, 1] += 0.5 * data[:, 0]                          # shear: tilted, correlated clusters
    gmm = GMM(reg=1e-6).fit(data, 3, rng, max_iterations=500, tol=1e-13)
    p = gmm.params
    w, mu, cov = naive_em_step(data, p.weights, p.means, p.covariances)
    np.testing.assert_allclose(w, p.weights, atol=1e-6)
    np.testing.assert_allclose(mu, p.means, atol=1e-5)
    np.testing.assert_allclose(cov + 1e-6 * np.eye(2), p.covariances, atol=1e-5)


def naive_inference(gmm: GMM, pts: np.ndarray):
    p = gmm.params
    mu0s, Phis = [], []
    for query in pts:
        dens = np.array([[p.weights[k] * multivariate_normal(p.means[k], p.covariances[k]).pdf(x)
                          for k in range(p.K)] for x in query])
        w = (dens / dens.sum(axis=1, keepdims=True)).mean(axis=0)
        mu0 = w @ p.means
        Phi = sum(w[k] * (p.covariances[k] + np.outer(p.means[k] - mu0, p.means[k] - mu0))
                  for k in range(p.K))
        mu0s.append(mu0)
        Phis.append(Phi)
    return np.array(mu0s), np.array(Phis)


def test_inference_matches_naive_oracle_and_single_cluster_queries():
    rng = np.random.default_rng(5)
    data, _ = mixture_sample(rng, 900)
    data[:, 1] += 0.5 * data[:, 0]
    gmm = GMM().fit(data, 3, rng)
    p = gmm.params
    order = match(p.means @ np.array([[1.0, -0.5], [0.0, 1.0]]))      # undo the shear
    # Query set 0: points from one cluster only; 1: two clusters half and half; 2: mixed data.
    k0, k1 = order[0], order[1]
    single = rng.multivariate_normal(p.means[k0], p.covariances[k0], size=40)
    half = np.concatenate([rng.multivariate_normal(p.means[k0], p.covariances[k0], size=20),
                           rng.multivariate_normal(p.means[k1], p.covariances[k1], size=20)])
    pts = np.stack([single, half, data[:40]])
    mu0, Phi, m, n0 = gmm.inference(pts)
    ref_mu0, ref_Phi = naive_inference(gmm, pts)
    np.testing.assert_allclose(mu0, ref_mu0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(Phi, ref_Phi, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m, 1.0)
    np.testing.assert_array_equal(n0, 1.0)
    np.testing.assert_allclose(mu0[0], p.means[k0], atol=1e-3)
    np.testing.assert_allclose(Phi[0], p.covariances[k0], atol=1e-3)
    np.testing.assert_allclose(mu0[1], 0.5 * (p.means[k0] + p.means[k1]), atol=1e-3)


def test_dead_cluster_is_reset_to_the_data_moments():
    rng = np.random.default_rng(6)
    data, labels = mixture_sample(rng, 900)
    gmm = GMM().fit(data, 3, rng)
    k2 = match(gmm.params.means)[2]
    rest = data[labels != 2]                                # cluster 2's region is now empty
    gmm.fit(rest, 3, rng)
    p = gmm.params
    assert p.weights[k2] < 1e-4 / 3 and np.isclose(p.weights.sum(), 1.0)
    np.testing.assert_allclose(p.means[k2], rest.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(p.covariances[k2], np.cov(rest.T, bias=True) + 1e-6 * np.eye(2), atol=1e-9)
    mu0, Phi, _, _ = gmm.inference(rest[None, :50])
    assert np.all(np.isfinite(mu0)) and np.all(np.linalg.eigvalsh(Phi) > 0)


# ----------------------------------------------------------------------------- prior bookkeeping

def test_cluster_count_rule():
    cfg = DynamicsPriorConfig(max_clusters=5, min_samples_per_cluster=10)
    assert [cfg.num_clusters(n) for n in (1, 9, 10, 19, 20, 49, 50, 51, 1000)] == [1, 1, 1, 1, 2, 4, 5, 5, 5]


def test_window_keeps_the_most_recent_trajectories_and_sets_K():
    rng = np.random.default_rng(7)
    sys = make_system(rng, T=6)                             # 5 points per trajectory
    prior = DynamicsPriorGMM(DynamicsPriorConfig(max_clusters=3, min_samples_per_cluster=4, max_samples=3))
    batches = [rollout(sys, rng, n) for n in (1, 2, 2)]
    expected_K = [1, 3, 3]                                  # 5 // 4 = 1; 15 // 4 = 3; window stays 3
    for (X, U), K in zip(batches, expected_K):
        prior.update(X, U, rng)
        assert prior.gmm.params.K == K
    assert prior.gmm.n_iter <= prior.config.warm_em_iterations    # K unchanged: warm start, capped
    allX = np.concatenate([b[0] for b in batches])
    allU = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(prior.X, allX[-3:])
    np.testing.assert_array_equal(prior.U, allU[-3:])
    mu, Phi, m, n0 = prior.initial_state()
    np.testing.assert_allclose(mu, allX[-3:, 0].mean(axis=0))
    np.testing.assert_allclose(Phi, np.cov(allX[-3:, 0].T, bias=True))
    assert m == n0 == 1.0
    with pytest.raises(ValueError):
        prior.X[0, 0, 0] = 1.0                              # the window is read-only from outside


def test_prior_strength_scales_m_n0_and_phi_together():
    rng = np.random.default_rng(8)
    sys = make_system(rng)
    X, U = rollout(sys, rng, 5)
    pts = np.concatenate([X[:, :-1], U[:, :-1], X[:, 1:]], axis=2).transpose(1, 0, 2)
    results = []
    for strength in (1.0, 4.0):
        prior = fitted_prior(sys, np.random.default_rng(9), strength=strength)
        results.append(prior.eval(pts))
    (mu_a, Phi_a, m_a, n_a), (mu_b, Phi_b, m_b, n_b) = results
    np.testing.assert_array_equal(mu_a, mu_b)
    np.testing.assert_allclose(Phi_b, 4.0 * Phi_a, rtol=1e-12)
    np.testing.assert_allclose(m_b, 4.0 * m_a)
    np.testing.assert_allclose(n_b, 4.0 * n_a)


def test_seeded_fits_are_bit_for_bit_reproducible():
    def run(seed: int):
        rng = np.random.default_rng(seed)
        sys = make_system(np.random.default_rng(10))
        prior = DynamicsPriorGMM(DynamicsPriorConfig(min_samples_per_cluster=20))
        out = []
        for _ in range(3):
            X, U = rollout(sys, rng, 5)
            prior.update(X, U, rng)
            dyn = fit_dynamics(X, U, prior)
            out += [prior.gmm.params.means, prior.gmm.params.covariances, dyn.Fm, dyn.fv,
                    dyn.dyn_covar, dyn.x0sigma]
        return out

    first, second, other = run(11), run(11), run(12)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[2], other[2])


# ----------------------------------------------------------------------------- validation

def test_bad_inputs_raise_with_what_was_expected_and_what_arrived():
    rng = np.random.default_rng(13)
    X, U = rng.standard_normal((5, 10, 4)), rng.standard_normal((5, 10, 2))
    with pytest.raises(ValueError, match=r'X \[N, T, dX\].*got X\(5, 10\)'):
        fit_dynamics(X[..., 0], U)
    with pytest.raises(ValueError, match=r'disagree on \[N, T\]'):
        fit_dynamics(X, U[:4])
    with pytest.raises(ValueError, match=r'T >= 2'):
        fit_dynamics(X[:, :1], U[:, :1])
    with pytest.raises(ValueError, match=r'N >= 1'):
        fit_dynamics(X[:0], U[:0])
    bad = X.copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        fit_dynamics(bad, U)
    with pytest.raises(ValueError, match='regularization'):
        fit_dynamics(X, U, regularization=-1.0)
    prior = DynamicsPriorGMM(DynamicsPriorConfig(min_samples_per_cluster=10))
    with pytest.raises(RuntimeError, match='no samples yet'):
        fit_dynamics(X, U, prior)
    prior.update(X, U, rng)
    with pytest.raises(ValueError, match=r'\[T, dX\] = \(10, 4\)'):
        prior.update(X[:, :8], U[:, :8], rng)
    with pytest.raises(ValueError, match=r'pts \[B, n, D=10\].*got shape \(9, 5, 9\)'):
        prior.eval(np.zeros((9, 5, 9)))
    with pytest.raises(ValueError, match=r'pts \[B, n, D=10\]'):
        fit_dynamics(rng.standard_normal((5, 10, 5)), U, prior)
    with pytest.raises(ValueError, match=r'integer K in \[1, M=3\]'):
        GMM().fit(np.zeros((3, 2)), 4, rng)
    with pytest.raises(ValueError, match=r'data \[M, D\]'):
        GMM().fit(np.zeros(3), 1, rng)
    with pytest.raises(RuntimeError, match='not been fitted'):
        GMM().inference(np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match='max_samples must be an integer >= 1'):
        DynamicsPriorConfig(max_samples=0)
    with pytest.raises(ValueError, match='strength must be > 0'):
        DynamicsPriorConfig(strength=0.0)
