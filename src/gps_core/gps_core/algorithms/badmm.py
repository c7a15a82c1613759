"""Bregman-ADMM guided policy search (Levine, Finn, Darrell, Abbeel, JMLR 2016, Alg. 3 / App. A).

The controllers p_m and the network pi_theta must agree on the action means, E_p[u_t] =
E[mu_theta(o_t)]; dual variables lambda_t (per condition and step) price the disagreement and
per-step weights nu_t scale a KL penalty that pulls the two together. Each GPS iteration runs
`inner_iterations` rounds of
  policy step:     theta <- argmin sum_t nu_t E[(mu_theta - mu_p)^T P_t (mu_theta - mu_p)] / 2
                                     + lambda_t^T E[mu_theta],
                   i.e. a precision-weighted regression onto mu_p - (nu_t P_t)^-1 lambda_t;
  linearization:   pi_lin,m from the GMM policy prior;
  dual step:       lambda_t <- lambda_t - dual_rate nu_t P_t E[mu_p - mu_theta];
                   on the last round nu_t <- nu_t + pol_wt_step * E[KL(p_t || pi_theta)];
  trajectory step: p_m <- argmin E[cost - lambda^T u] + sum_t nu_t KL(p_t || pi_lin,t)
                   s.t. KL(p_m || p_m,old) <= epsilon_m (a KLPenalty for the optimizer, solved
                   exactly for time-varying nu_t: see KLPenalty).
The step size is adapted per condition from the predicted vs. actual improvement of that
penalized objective.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from gps_core.algorithms.policy_base import PolicyAlgorithmBase
from gps_core.algorithms.step_adjust import step_mult_rule
from gps_core.algorithms.traj_opt import IterationStats
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.samples import SampleBatch
from gps_core.traj_opt.cost_expansion import CostExpansion
from gps_core.traj_opt.kl import traj_kl
from gps_core.traj_opt.kl_lqr import KLPenalty, estimate_cost
from gps_core.traj_opt.lqr import forward_pass


class BADMMAlgorithm(PolicyAlgorithmBase):
    KIND = 'badmm'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        T, dU = self.policies[0].T, self.policies[0].dU
        init = self.config.badmm.init_pol_wt
        self.pol_wt = [np.full(T, init) for _ in self.conditions]          # nu [T] per condition
        self.lambda_k = [np.zeros((T, dU)) for _ in self.conditions]       # lambda [T, dU] per condition

    def iteration(self, samples: list[SampleBatch]) -> IterationStats:
        stats = self._start_iteration(samples)
        if self.iteration_count > 0:
            for m in range(len(self.conditions)):
                self._adjust_step(m)
        inner = self.config.badmm.inner_iterations
        for i in range(inner):
            started = self.iteration_count > 0 or i > 0
            latest = [c.new_policy if i > 0 else c.local.policy for c in self.conditions]
            if started:
                self._badmm_policy_step(latest, stats)
            for m in range(len(self.conditions)):
                self._linearize(m, stats, add_samples=(i == 0))
            if started:
                for m in range(len(self.conditions)):
                    self._dual_step(m, latest[m], update_weights=(i == inner - 1))
            for m in range(len(self.conditions)):
                self._trajectory_step(m, stats, record=(i == inner - 1))
        stats.extra['pol_wt_mean'] = [float(w.mean()) for w in self.pol_wt]
        self._advance()
        return stats

    def _variant_state(self) -> dict[str, Any]:
        """The duals: per condition lambda [T, dU] and the KL weights nu [T]."""
        return {'lambda': [a.copy(order='K') for a in self.lambda_k],
                'pol_wt': [a.copy(order='K') for a in self.pol_wt]}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        T, dU = self.policies[0].T, self.policies[0].dU
        lam, wt = state.get('lambda'), state.get('pol_wt')
        M = len(self.conditions)
        if (not isinstance(lam, list) or not isinstance(wt, list) or len(lam) != M or len(wt) != M
                or any(np.shape(a) != (T, dU) for a in lam) or any(np.shape(a) != (T,) for a in wt)):
            raise ValueError(f'training state: BADMM needs {M} duals lambda [{T}, {dU}] and weights nu [{T}]')
        self.lambda_k = [np.array(a, dtype=float, order='K') for a in lam]
        self.pol_wt = [np.array(a, dtype=float, order='K') for a in wt]

    def _badmm_policy_step(self, controllers: list[LinearGaussianPolicy], stats: IterationStats) -> None:
        shifts = [-np.linalg.solve(self.pol_wt[m][:, None, None] * c.inv_pol_covar, self.lambda_k[m][:, :, None])[:, :, 0]
                  for m, c in enumerate(controllers)]
        self._policy_step(controllers, stats, weights=self.pol_wt, shifts=shifts)

    def _dual_step(self, m: int, ctrl: LinearGaussianPolicy, update_weights: bool) -> None:
        cond, net = self.conditions[m], self.network
        X = cond.batch.X
        mu_p = np.einsum('tux,ntx->ntu', ctrl.K, X) + ctrl.k                       # [N, T, dU]
        mu_pi = self.batch_mean(cond.batch)
        diff = (mu_p - mu_pi).mean(axis=0)                                         # [T, dU]
        self.lambda_k[m] -= self.config.badmm.dual_rate * self.pol_wt[m][:, None] * \
            np.einsum('tij,tj->ti', ctrl.inv_pol_covar, diff)
        if update_weights:
            cfg = self.config.badmm
            kl = sample_policy_kl(ctrl, X, mu_pi, net.covar_np())
            self.pol_wt[m] = np.clip(self.pol_wt[m] + cfg.pol_wt_step * kl, 0.0, cfg.max_pol_wt)

    def _trajectory_step(self, m: int, stats: IterationStats, record: bool) -> None:
        t0 = time.perf_counter()
        cond = self.conditions[m]
        dX = cond.batch.dX
        dcv = np.zeros_like(cond.cost.cv)
        dcv[:, dX:] = -self.lambda_k[m]                                            # cost - lambda^T u
        kl_step = self.config.base_kl_step * cond.local.step_mult * cond.batch.T
        upd = self.traj_opt.update(cond.local.policy, cond.dyn, cond.cost.with_linear_terms(dcv), kl_step,
                                   cond.local.eta, penalty=KLPenalty(cond.pol_lin, self.pol_wt[m]))
        cond.new_policy, cond.local.eta = upd.policy, upd.eta
        stats.seconds['traj_opt'] += time.perf_counter() - t0
        if record:
            self._trajectory_stats(stats, m, upd, kl_step)

    def _adjust_step(self, m: int) -> None:
        """Predicted vs. actual improvement of E[cost] + sum_t nu_t KL(p_t || pi_lin,t) under the
        local models (Levine et al. JMLR'16 App. A; the reference code's BADMM step rule)."""
        cond, prev = self.conditions[m], self.conditions[m].prev
        nu, pol_lin = self.pol_wt[m], prev.pol_lin

        def objective(p: LinearGaussianPolicy, dyn: LinearGaussianDynamics, cost: CostExpansion) -> float:
            mu, sigma = forward_pass(p, dyn)
            return float(estimate_cost(p, dyn, cost).sum() + np.sum(nu * traj_kl(mu, sigma, p, pol_lin)))

        previous = objective(prev.sampled, prev.dyn, prev.cost)
        predicted = objective(cond.local.policy, prev.dyn, prev.cost)
        actual = objective(cond.local.policy, cond.dyn, cond.cost)
        cfg = self.config
        cond.local.step_mult = step_mult_rule(cond.local.step_mult, previous - predicted, previous - actual,
                                              cfg.min_step_mult, cfg.max_step_mult)


def sample_policy_kl(ctrl: LinearGaussianPolicy, X: np.ndarray, pol_mu: np.ndarray, pol_covar: np.ndarray) -> np.ndarray:
    """Monte-Carlo E_x[KL(p_t(.|x) || pi(.|o))] per step [T] at the sampled states X [N, T, dX];
    pol_mu [N, T, dU] the network means there, pol_covar [dU, dU] its covariance."""
    dU = ctrl.dU
    prc = np.linalg.inv(pol_covar)
    d = pol_mu - (np.einsum('tux,ntx->ntu', ctrl.K, X) + ctrl.k)
    quad = np.einsum('ntu,uv,ntv->t', d, prc, d) / X.shape[0]
    trace = np.einsum('uv,tvu->t', prc, ctrl.pol_covar)
    logdet_p = 2.0 * np.log(np.diagonal(ctrl.chol_pol_covar, axis1=1, axis2=2)).sum(axis=1)
    logdet_pi = np.linalg.slogdet(pol_covar)[1]
    return np.maximum(0.5 * (trace + quad - dU + logdet_pi - logdet_p), 0.0)
