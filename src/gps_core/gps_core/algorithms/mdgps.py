"""Mirror-descent guided policy search (Montgomery & Levine, NIPS 2016, Alg. 2).

One iteration:
  1. fit each condition's dynamics and cost expansion to its new samples;
  2. (first iteration only) regress the network onto the initial controllers;
  3. linearize the network around each condition's samples (GMM policy prior): pi_lin,m;
  4. C-step: p_m <- argmin E_p[cost] s.t. KL(p_m || pi_lin,m) <= epsilon (the trajectory
     optimizer is handed pi_lin,m as the distribution to stay close to), with ONE step size
     epsilon = base_kl_step * step_mult * T shared across conditions, adapted from the predicted
     vs. actual improvement of the linearized policy's cost (Sec. 4.2, "laplace" rule);
  5. S-step: regress the network onto the new controllers at the samples' states.

Sampling is off-policy (the controllers) or, with mdgps.sample_on_policy, on-policy (the network
with its noise) from the second iteration on; the algorithm only reports which it wants
(`samples_from_network`), the trainer samples.
"""
from __future__ import annotations

import time

import numpy as np

from gps_core.algorithms.policy_base import PolicyAlgorithmBase
from gps_core.algorithms.step_adjust import step_mult_rule
from gps_core.algorithms.traj_opt import IterationStats
from gps_core.samples import SampleBatch
from gps_core.traj_opt.kl_lqr import estimate_cost


class MDGPSAlgorithm(PolicyAlgorithmBase):
    KIND = 'mdgps'

    @property
    def samples_from_network(self) -> bool:
        return self.config.mdgps.sample_on_policy and self.iteration_count > 0

    def iteration(self, samples: list[SampleBatch]) -> IterationStats:
        stats = self._start_iteration(samples)
        if self.iteration_count == 0:            # catch the network up to the initial controllers
            self._policy_step(self.policies, stats)
        for m in range(len(self.conditions)):
            self._linearize(m, stats)
        if self.iteration_count > 0:
            self._adjust_shared_step(stats)
        for m, cond in enumerate(self.conditions):
            t0 = time.perf_counter()
            kl_step = self.config.base_kl_step * cond.local.step_mult * cond.batch.T
            upd = self.traj_opt.update(cond.pol_lin, cond.dyn, cond.cost, kl_step, cond.local.eta)
            cond.new_policy, cond.local.eta = upd.policy, upd.eta
            stats.seconds['traj_opt'] += time.perf_counter() - t0
            self._trajectory_stats(stats, m, upd, kl_step)
        self._policy_step([c.new_policy for c in self.conditions], stats)
        self._advance()
        return stats

    def _adjust_shared_step(self, stats: IterationStats) -> None:
        """Montgomery & Levine Sec. 4.2: improvement of the global policy's expected cost, each
        estimated under the local models (Laplace), averaged over conditions.

        previous:  last iteration's pi_lin under last iteration's dynamics and cost;
        predicted: last iteration's new controllers under the same models (what the C-step aimed for);
        actual:    this iteration's pi_lin under this iteration's models.
        """
        previous = np.mean([estimate_cost(c.prev.pol_lin, c.prev.dyn, c.prev.cost).sum() for c in self.conditions])
        predicted = np.mean([estimate_cost(c.prev.new, c.prev.dyn, c.prev.cost).sum() for c in self.conditions])
        actual = np.mean([estimate_cost(c.pol_lin, c.dyn, c.cost).sum() for c in self.conditions])
        cfg = self.config
        mult = step_mult_rule(self.conditions[0].local.step_mult, float(previous - predicted),
                              float(previous - actual), cfg.min_step_mult, cfg.max_step_mult)
        for cond in self.conditions:
            cond.local.step_mult = mult
        stats.extra['predicted_improvement'] = [float(previous - predicted)]
        stats.extra['actual_improvement'] = [float(previous - actual)]
