"""Gaussian mixture model fitted by EM: the clusters behind the dynamics prior.

Shapes (documented once):
  data  [M, D]     points the mixture is fitted to (for the dynamics prior D = dX + dU + dX)
  pts   [B, n, D]  B independent query sets of n points each (e.g. B = T-1 steps, n = N samples)
  K                number of clusters

Levine & Abbeel NIPS'14 (dynamics fitting with a GMM prior) and Levine et al. JMLR'16: a GMM over
[x_t, u_t, x_{t+1}] of recent samples; each cluster is one local linear-Gaussian model, and the
weighted moments of the clusters that explain a time step's samples form the normal-inverse-Wishart
prior of that step's regression (see `GMM.inference`).

Speed: each M-step Cholesky-factorizes every cluster covariance once and stores the factors, the
log-determinants and the stacked whitening matrices L_k^{-1}; the E-step (fit and query alike) is
then at most three GEMMs of all points against all K whitening matrices, vectorized over points
and clusters. Those GEMMs run in float32 on data centred at the fit's mean: the squared
Mahalanobis distances are accurate to ~1e-6 relative (errors enter squared where a point lies on
a cluster's thin directions), far below what matters for responsibilities; factors, moments and
the M-step stay in float64. Responsibilities are computed in log space (logsumexp).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

_LOG_2PI = float(np.log(2.0 * np.pi))
# A responsibility below this adds < 1e-10 of a point to a cluster's scatter: skipped in the M-step.
_RESP_FLOOR = 1e-10
# Log-responsibility floor (relative to a point's best cluster): e^-80 ~ 1e-35, still a normal float.
_LOG_RESP_FLOOR = -80.0
# Clusters whose mass falls below this fraction of 1/K are reset (reference GPS: 1e-4 / K).
_DEAD_MASS = 1e-4


@dataclass(frozen=True)
class GMMParams:
    """A fitted mixture, with the factorization every E-step needs.

    weights [K], means [K, D], covariances [K, D, D] (float64);
    chol [K, D, D] lower Cholesky factors L_k (Sigma_k = L_k L_k^T); logdet [K] = log |Sigma_k|;
    center [D]: origin of the E-step's coordinates a = [1, x - center];
    whiten: row blocks of the stacked whitening maps, each (e, W [e+1, K*w]) float32, mapping
    a[:, :e+1] to rows s..e-1 (w = e - s) of L_k^{-1} (x - mu_k) for every k. L_k^{-1} is lower
    triangular, so rows below e never need coordinates past e: the blocks skip ~1/3 of the flops
    of one dense [D+1, K*D] product.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    chol: np.ndarray
    logdet: np.ndarray
    center: np.ndarray
    whiten: tuple[tuple[int, np.ndarray], ...]

    @property
    def K(self) -> int:
        return self.means.shape[0]

    @property
    def D(self) -> int:
        return self.means.shape[1]


def _cholesky(covariances: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """Batched Cholesky; if rounding broke definiteness, floor the eigenvalues at reg first."""
    try:
        return covariances, np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        evals, evecs = np.linalg.eigh(covariances)
        covariances = (evecs * np.maximum(evals, reg)[:, None, :]) @ evecs.transpose(0, 2, 1)
        covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
        return covariances, np.linalg.cholesky(covariances)


def make_params(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                center: np.ndarray, reg: float) -> GMMParams:
    """Factor the cluster covariances once and build the E-step's whitening blocks."""
    K, D = means.shape
    covariances, chol = _cholesky(covariances, reg)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    inv_chol = np.empty_like(chol)
    # K LAPACK trtri calls, O(K D^3): small next to one E-step. The strictly upper triangle of
    # each inverse stays the zeros it was copied from.
    for k in range(K):
        inv_chol[k], info = lapack.dtrtri(chol[k], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f'cluster {k}: singular Cholesky factor (trtri info={info})')
    offsets = (inv_chol @ (means - center)[:, :, None])[:, :, 0]          # L_k^{-1}(mu_k - c)
    bounds = np.unique(np.linspace(0, D, min(3, D) + 1).round().astype(int))
    blocks = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        w = np.empty((e + 1, K * (e - s)), dtype=np.float32)
        w[0] = -offsets[:, s:e].reshape(-1)
        w[1:] = inv_chol[:, s:e, :e].transpose(2, 0, 1).reshape(e, K * (e - s))
        blocks.append((int(e), w))
    return GMMParams(weights=weights, means=means, covariances=covariances, chol=chol,
                     logdet=logdet, center=center, whiten=tuple(blocks))


def estep_workspace(params: GMMParams, M: int) -> np.ndarray:
    """Scratch for `log_joint` on M points; reusing one across EM iterations avoids paying page
    faults on a fresh multi-MB buffer every E-step."""
    return np.empty(M * max(w.shape[1] for _, w in params.whiten), dtype=np.float32)


def log_joint(params: GMMParams, x: np.ndarray, work: np.ndarray | None = None) -> np.ndarray:
    """log(w_k N(x_i | mu_k, Sigma_k)) for x [M, D] -> [M, K], from the stored factors.

    work: optional scratch from `estep_workspace(params, M)` (same K and D).
    """
    M, D = x.shape
    a = np.empty((M, D + 1), dtype=np.float32)
    a[:, 0] = 1.0
    np.subtract(x, params.center, out=a[:, 1:], casting='same_kind')
    if work is None:
        work = estep_workspace(params, M)
    maha = np.zeros((M, params.K), dtype=np.float32)
    for e, w in params.whiten:  # <= 3 row blocks, each one GEMM over all points and clusters
        z = np.matmul(a[:, :e + 1], w, out=work[:M * w.shape[1]].reshape(M, w.shape[1]))
        z = z.reshape(M, params.K, -1)
        maha += np.einsum('mkd,mkd->mk', z, z)
    return np.log(params.weights) - 0.5 * (maha.astype(np.float64) + params.logdet + D * _LOG_2PI)


def responsibilities(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-space normalization of logp [M, K]: (logsumexp_k [M], responsibilities [M, K])."""
    top = logp.max(axis=1, keepdims=True)
    # Responsibilities below e^-80 (~1e-35) are kept at that floor: letting exp underflow into
    # subnormals makes every later product on them an order of magnitude slower.
    e = np.exp(np.maximum(logp - top, _LOG_RESP_FLOOR))
    total = e.sum(axis=1, keepdims=True)
    return np.log(total[:, 0]) + top[:, 0], e / total


def m_step(data: np.ndarray, resp: np.ndarray, reg: float, data_moments: tuple[np.ndarray, np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights [K], means [K, D], covariances [K, D, D] (+ reg I) from responsibilities resp [M, K].

    Clusters whose mass fell below _DEAD_MASS / K are reset to data_moments (mean [D] and
    covariance [D, D] of all the data) and keep their tiny mass, as in the reference GPS code: an
    inert, broad component that cannot collapse onto a few points (a singular spike). Giving it
    real mass back instead revives identical clusters EM cannot pull apart; replacing it by
    splitting a live cluster roughly doubled the EM iterations on the 71-D benchmark without
    improving the fitted dynamics.
    """
    M, D = data.shape
    K = resp.shape[1]
    nk = resp.sum(axis=0)
    dead = nk < _DEAD_MASS * M / K
    means = (resp.T @ data) / nk[:, None]
    # Responsibilities in high D are nearly hard, so each cluster's scatter is summed over only
    # the (point, cluster) pairs it holds: ~K x cheaper than the dense [K*D, M] x [M, D] product.
    kk, ii = np.nonzero((resp.T > _RESP_FLOOR) & ~dead[:, None])    # sorted by cluster
    y = (data[ii] - means[kk]) * np.sqrt(resp[ii, kk])[:, None]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(kk, minlength=K))])
    covs = np.empty((K, D, D))
    for k in range(K):  # one small BLAS product per cluster; numpy runs y^T y as SYRK: symmetric
        yk = y[bounds[k]:bounds[k + 1]]
        np.matmul(yk.T, yk, out=covs[k])
    covs /= nk[:, None, None]
    means[dead], covs[dead] = data_moments
    covs[:, np.arange(D), np.arange(D)] += reg
    return nk / nk.sum(), means, covs


def kmeanspp_labels(data: np.ndarray, K: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), then nearest-seed labels [M]."""
    M = data.shape[0]
    sq = np.einsum('md,md->m', data, data)
    seeds = [int(rng.integers(M))]
    d2 = np.maximum(sq - 2.0 * data @ data[seeds[0]] + sq[seeds[0]], 0.0)
    for _ in range(1, K):
        total = d2.sum()
        seed = int(rng.choice(M, p=d2 / total)) if total > 0 else int(rng.integers(M))
        seeds.append(seed)
        d2 = np.minimum(d2, np.maximum(sq - 2.0 * data @ data[seed] + sq[seed], 0.0))
    centers = data[seeds]
    dist = sq[:, None] - 2.0 * data @ centers.T + np.einsum('kd,kd->k', centers, centers)[None]
    return np.argmin(dist, axis=1)


def initial_params(data: np.ndarray, K: int, rng: np.random.Generator, reg: float) -> GMMParams:
    """Cold start: k-means++ partition; every cluster starts with the pooled within-cluster
    covariance, so no small seed cluster starts out as a near-singular spike that EM would
    collapse onto."""
    M, D = data.shape
    labels = kmeanspp_labels(data, K, rng)
    counts = np.bincount(labels, minlength=K).astype(float)
    sums = np.zeros((K, D))
    np.add.at(sums, labels, data)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1.0)[:, None], data.mean(axis=0))
    resid = data - means[labels]
    pooled = resid.T @ resid / M + reg * np.eye(D)
    weights = np.maximum(counts, 1.0)
    return make_params(weights / weights.sum(), means, np.broadcast_to(pooled, (K, D, D)).copy(),
                       data.mean(axis=0), reg)


class GMM:
    """Gaussian mixture fitted by EM over points [M, D], warm-started across fits.

    After `fit`: `params` (weights, means, covariances and their factors), `n_iter` (M-steps in the
    last fit), `converged`, `log_likelihood` (mean per point, at the returned parameters).
    """

    def __init__(self, reg: float = 1e-6) -> None:
        """reg: added to every cluster covariance's diagonal (reference GPS: 1e-6)."""
        if not reg > 0:
            raise ValueError(f'GMM reg must be > 0; got {reg}')
        self.reg = float(reg)
        self._params: GMMParams | None = None
        self._last_data: np.ndarray | None = None          # [M, D] of the last fit
        self._last_log_joint: np.ndarray | None = None     # [M, K] at the returned parameters
        self.n_iter = 0
        self.converged = False
        self.log_likelihood = float('nan')

    @property
    def params(self) -> GMMParams:
        if self._params is None:
            raise RuntimeError('GMM has not been fitted yet; call fit(data, K, rng) first')
        return self._params

    @property
    def fitted(self) -> bool:
        return self._params is not None

    def fit(self, data: np.ndarray, K: int, rng: np.random.Generator, max_iterations: int = 100,
            tol: float = 1e-4, carried_rows: int = 0, warm_max_iterations: int | None = None) -> GMM:
        """EM on data [M, D] with K clusters.

        Warm start: if the last fit had the same K and D, EM starts from its parameters (the
        sliding sample window changes little between GPS iterations) and runs at most
        warm_max_iterations M-steps (default: max_iterations); otherwise k-means++ seeding from
        `rng` and at most max_iterations. Stops early when the mean per-point log-likelihood
        changes by at most tol * max(1, |ll|).

        carried_rows: the first carried_rows rows of data are the last rows of the previous fit's
        data (trajectories kept in a sliding window). On a warm start their first E-step is taken
        from the previous fit's final E-step, which ran at exactly these parameters, instead of
        being recomputed. Checked: rows that differ raise ValueError.
        """
        data = np.asarray(data, dtype=float)
        if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
            raise ValueError(f'GMM.fit expects data [M, D] with M, D >= 1; got shape {data.shape}')
        if not np.all(np.isfinite(data)):
            raise ValueError('GMM.fit: data holds non-finite values')
        M, D = data.shape
        if int(K) != K or not 1 <= K <= M:
            raise ValueError(f'GMM.fit expects an integer K in [1, M={M}]; got {K}')
        for name, cap in (('max_iterations', max_iterations), ('warm_max_iterations', warm_max_iterations)):
            if cap is not None and (int(cap) != cap or cap < 0):
                raise ValueError(f'GMM.fit expects {name} >= 0; got {cap}')
        K = int(K)
        prev = self._params
        warm = prev is not None and prev.K == K and prev.D == D
        params = prev if warm else initial_params(data, K, rng, self.reg)
        if warm and warm_max_iterations is not None:
            max_iterations = warm_max_iterations
        center = data.mean(axis=0)
        diff = data - center
        moments = (center, diff.T @ diff / M)
        work = estep_workspace(params, M)
        logp = self._carried_log_joint(data, carried_rows, work) if warm else log_joint(params, data, work)
        prev_ll, n_iter, converged = -np.inf, 0, False
        while True:
            lse, resp = responsibilities(logp)
            ll = float(lse.mean())
            if abs(ll - prev_ll) <= tol * max(1.0, abs(ll)):
                converged = True
                break
            if n_iter == max_iterations:
                break
            prev_ll = ll
            params = make_params(*m_step(data, resp, self.reg, moments), center, self.reg)
            n_iter += 1
            logp = log_joint(params, data, work)
        self._params, self.n_iter, self.converged, self.log_likelihood = params, n_iter, converged, ll
        self._last_data, self._last_log_joint = data.copy(), logp
        return self

    def _carried_log_joint(self, data: np.ndarray, carried_rows: int, work: np.ndarray) -> np.ndarray:
        """First warm-start E-step [M, K], reusing the previous final E-step for carried rows."""
        c = int(carried_rows)
        last = self._last_data
        if c == 0 or last is None:
            return log_joint(self.params, data, work)
        if not 0 < c <= min(len(last), len(data)) or not np.array_equal(last[len(last) - c:], data[:c]):
            raise ValueError(f'GMM.fit: carried_rows={c}, but the first {c} rows of data are not the '
                             f'last rows of the previous fit\'s {len(last)} rows')
        logp = np.empty((len(data), self.params.K))
        logp[:c] = self._last_log_joint[len(last) - c:]
        logp[c:] = log_joint(self.params, data[c:], work)
        return logp

    def inference(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Normal-inverse-Wishart prior for each of B query sets pts [B, n, D].

        Per query set b (reference GPS `GMM.inference`): cluster weights w_bk = mean over its n
        points of the posterior responsibilities; mu0 [B, D] = sum_k w_bk mu_k;
        Phi [B, D, D] = sum_k w_bk (Sigma_k + (mu_k - mu0_b)(mu_k - mu0_b)^T), the covariance of
        the weighted mixture.

        Returns (mu0, Phi, m [B], n0 [B]) with m = n0 = 1: the prior counts as one pseudo-
        observation whose scatter is Phi, so its expected covariance Phi / n0 is exactly the
        mixture covariance at any strength. (The reference's n0 = (M - 2 - D) / M tends to 1 for
        M >> D and turns negative, i.e. invalid, when the GMM saw fewer than D + 2 points.)
        Callers scale m, n0 and Phi together by the prior strength.
        """
        params = self.params
        pts = np.asarray(pts, dtype=float)
        if pts.ndim != 3 or pts.shape[1] < 1 or pts.shape[2] != params.D:
            raise ValueError(f'GMM.inference expects pts [B, n, D={params.D}] with n >= 1; '
                             f'got shape {pts.shape}')
        if not np.all(np.isfinite(pts)):
            raise ValueError('GMM.inference: pts hold non-finite values')
        B, n, D = pts.shape
        _, resp = responsibilities(log_joint(params, pts.reshape(B * n, D)))
        w = resp.reshape(B, n, params.K).mean(axis=1)                       # [B, K]
        mu0 = w @ params.means
        dmu = params.means[None] - mu0[:, None]                              # [B, K, D]
        # Two [B, D, D] buffers in all: fresh multi-MB arrays cost page faults, not just flops.
        within = (w @ params.covariances.reshape(params.K, D * D)).reshape(B, D, D)
        between = np.matmul((dmu * w[:, :, None]).transpose(0, 2, 1), dmu)
        within += between
        Phi = np.add(within, within.transpose(0, 2, 1), out=between)
        del within
        Phi *= 0.5
        return mu0, Phi, np.ones(B), np.ones(B)

    # ------------------------------------------------------------ checkpoints (plain data)
    _PARAMS = ('weights', 'means', 'covariances', 'chol', 'logdet', 'center')

    def state_dict(self) -> dict:
        """The fitted parameters with their factors, and the last fit's data [M, D] and final
        E-step [M, K] that the next warm start reuses: copies, so refits do not change it."""
        p = self._params
        params = None if p is None else {
            **{name: getattr(p, name).copy(order='K') for name in self._PARAMS},
            'whiten': [{'end': int(e), 'W': w.copy(order='K')} for e, w in p.whiten]}
        return {'reg': self.reg, 'params': params, 'last_data': _copy(self._last_data),
                'last_log_joint': _copy(self._last_log_joint), 'n_iter': int(self.n_iter),
                'converged': bool(self.converged), 'log_likelihood': float(self.log_likelihood)}

    def load_state_dict(self, state: dict) -> None:
        if float(state['reg']) != self.reg:
            raise ValueError(f'training state: a GMM with reg={state["reg"]!r}, this one has reg={self.reg!r}')
        p = state['params']
        params = None
        if p is not None:
            params = GMMParams(**{name: np.array(p[name], order='K') for name in self._PARAMS},
                               whiten=tuple((int(b['end']), np.array(b['W'], order='K')) for b in p['whiten']))
            K, D = params.means.shape
            if (params.weights.shape != (K,) or params.covariances.shape != (K, D, D)
                    or params.chol.shape != (K, D, D) or params.logdet.shape != (K,) or params.center.shape != (D,)):
                raise ValueError(f'training state: GMM parameters disagree with means [{K}, {D}]')
        self._params, self._last_data = params, _copy(state['last_data'])
        self._last_log_joint = _copy(state['last_log_joint'])
        self.n_iter, self.converged = int(state['n_iter']), bool(state['converged'])
        self.log_likelihood = float(state['log_likelihood'])


def _copy(a: np.ndarray | None) -> np.ndarray | None:
    """A copy with the same memory layout (the next E-step's BLAS calls then see the same strides)."""
    return None if a is None else np.array(a, order='K')
