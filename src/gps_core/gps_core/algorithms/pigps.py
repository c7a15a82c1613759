"""Path Integral Guided Policy Search (Chebotar, Kalakrishnan, Yahya, Li, Schaal, Levine, ICRA 2017):
MDGPS's alternation with the model-free PI2 update as the C-step.

One iteration:
  1. evaluate each condition's per-sample costs (no dynamics fit, no cost expansion);
  2. (first iteration only) regress the network onto the initial controllers;
  3. C-step, per condition: the samples' distribution as a linear-Gaussian controller p_old
     (the network linearized around the samples once they come from it, the initial controller
     before), then PI2 keeps p_old's feedback gain and re-estimates the feedforward term and the
     covariance from the cost-weighted samples, each step's weights bounded by
     KL(weights || uniform) <= kl_threshold (gps_core.traj_opt.pi2). Because the samples are drawn
     from pi_theta, that bound approximates MDGPS's KL(p || pi_theta) <= epsilon;
  4. S-step: regress the network onto the new controllers at the samples' states.

Sampling is on-policy (the network with its noise, as the paper does) from the second iteration
on, like the reference implementation: before its first policy step the network is an untrained
initialization, so the first samples come from the initial controllers. The network's feedback
changes through the S-step, which fits one policy to the time-varying feedforward improvements of
all conditions and time steps.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from gps_core.algorithms.policy_base import PolicyAlgorithmBase
from gps_core.algorithms.traj_opt import IterationStats
from gps_core.config import AlgorithmConfig, DynamicsConfig
from gps_core.costs.base import Cost
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.policy_config import PolicyConfig
from gps_core.samples import SampleBatch
from gps_core.traj_opt.kl_lqr import TrajOptConfig
from gps_core.traj_opt.pi2 import PI2Config, pi2_update


class PIGPSAlgorithm(PolicyAlgorithmBase):
    """Takes the same arguments as MDGPSAlgorithm plus the PI2 settings; dynamics and traj_opt
    are accepted for a uniform constructor and unused (PI2 needs no model)."""

    KIND = 'pigps'

    def __init__(self, config: AlgorithmConfig, dynamics: DynamicsConfig, traj_opt: TrajOptConfig,
                 policy: PolicyConfig, costs: list[Cost], init_policies: list[LinearGaussianPolicy],
                 rng: np.random.Generator, generator: torch.Generator, dO: int | None = None,
                 pi2: PI2Config = PI2Config()):
        super().__init__(config, dynamics, traj_opt, policy, costs, init_policies, rng, generator, dO)
        self.pi2 = pi2

    @property
    def samples_from_network(self) -> bool:
        return self.iteration_count > 0

    def iteration(self, samples: list[SampleBatch]) -> IterationStats:
        on_policy = self.samples_from_network       # how this iteration's samples were drawn
        stats = self._store_samples(samples)
        if self.iteration_count == 0:               # catch the network up to the initial controllers
            self._policy_step(self.policies, stats)
        for m in range(len(self.conditions)):
            if on_policy:
                self._linearize(m, stats)
            self._pi2_step(m, on_policy, stats)
        self._policy_step([c.new_policy for c in self.conditions], stats)
        self._advance()
        return stats

    def _store_samples(self, samples: list[SampleBatch]) -> IterationStats:
        if len(samples) != len(self.conditions):
            raise ValueError(f'got samples for {len(samples)} conditions, expected {len(self.conditions)}')
        stats = IterationStats()
        stats.seconds['policy'] = 0.0
        for cond, batch in zip(self.conditions, samples):
            cond.batch = batch
        return stats

    def _pi2_step(self, m: int, on_policy: bool, stats: IterationStats) -> None:
        t0 = time.perf_counter()
        cond = self.conditions[m]
        batch = cond.batch
        sampled_from = cond.pol_lin if on_policy else cond.local.policy
        upd = pi2_update(sampled_from, batch.X, batch.U, self.costs[m].eval(batch.X, batch.U).l, self.pi2)
        cond.new_policy = upd.policy
        stats.seconds['traj_opt'] += time.perf_counter() - t0
        stats.kl.append(float(upd.kl.sum()))
        stats.kl_step.append(self.pi2.kl_threshold * batch.T)
        stats.eta.append(float(np.mean(upd.temperature)))
        stats.step_mult.append(cond.local.step_mult)
        stats.eta_iterations.append(0)
