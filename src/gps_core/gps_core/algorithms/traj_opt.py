"""Trajectory-centric RL: one linear-Gaussian controller per condition, no neural network.

One iteration per condition m (Levine & Abbeel NIPS'14, Alg. 1): fit dynamics to the new
samples with the GMM prior, expand the cost, adapt the KL step, solve the KL-constrained update.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gps_core.config import AlgorithmConfig, DynamicsConfig
from gps_core.costs.base import Cost
from gps_core.dynamics.gmm_prior import DynamicsPriorGMM
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.samples import SampleBatch
from gps_core.traj_opt.cost_expansion import CostExpansion
from gps_core.traj_opt.kl_lqr import KLTrajOpt, TrajOptConfig, expected_cost
from gps_core.algorithms.base import STATE_FORMAT, IterationStats, check_state_header
from gps_core.algorithms.local_models import expand_batch_cost, fit_dynamics_with_prior
from gps_core.algorithms.plain_state import (cost_from_state, cost_state, dynamics_from_state,
                                            dynamics_state, numpy_rng_state, policy_from_state, policy_state,
                                            restore_numpy_rng)
from gps_core.algorithms.step_adjust import adjust_step_mult


@dataclass
class ConditionState:
    """What the algorithm carries for one condition between iterations."""

    policy: LinearGaussianPolicy                   # the controller the next samples come from
    prior: DynamicsPriorGMM
    eta: float
    step_mult: float = 1.0
    # the previous update: (controller it started from, dynamics, cost model, the new
    # controller's predicted cost under them)
    prev: tuple[LinearGaussianPolicy, LinearGaussianDynamics, CostExpansion, float] | None = None


class TrajOptAlgorithm:
    """A GPSAlgorithm without a network: samples always come from the controllers."""

    KIND = 'traj_opt'
    network = None
    samples_from_network = False

    def __init__(self, config: AlgorithmConfig, dynamics: DynamicsConfig, traj_opt: TrajOptConfig,
                 costs: list[Cost], init_policies: list[LinearGaussianPolicy], rng: np.random.Generator):
        if len(costs) != len(init_policies):
            raise ValueError(f'{len(costs)} costs for {len(init_policies)} conditions')
        self.config, self.dynamics_config = config, dynamics
        self.costs = costs
        self.rng = rng
        self.traj_opt = KLTrajOpt(traj_opt)
        self.conditions = [ConditionState(p, DynamicsPriorGMM(dynamics.prior), config.initial_eta)
                           for p in init_policies]
        self.iteration_count = 0

    @property
    def policies(self) -> list[LinearGaussianPolicy]:
        return [c.policy for c in self.conditions]

    def iteration(self, samples: list[SampleBatch]) -> IterationStats:
        """Update every condition's controller from its new samples."""
        if len(samples) != len(self.conditions):
            raise ValueError(f'got samples for {len(samples)} conditions, expected {len(self.conditions)}')
        stats = IterationStats()
        for m, batch in enumerate(samples):
            self._update_condition(m, batch, stats)
        self.iteration_count += 1
        return stats

    def _update_condition(self, m: int, batch: SampleBatch, stats: IterationStats) -> None:
        cond, cfg = self.conditions[m], self.config
        t0 = time.perf_counter()
        dyn = fit_dynamics_with_prior(cond.prior, batch, self.dynamics_config.regularization, self.rng)
        t1 = time.perf_counter()
        cost = expand_batch_cost(self.costs[m], batch)
        if cond.prev is not None:
            prev_policy, prev_dyn, prev_cost, predicted = cond.prev
            cond.step_mult, _, _ = adjust_step_mult(cond.step_mult, prev_policy, cond.policy, prev_dyn,
                                                    prev_cost, dyn, cost, cfg.min_step_mult, cfg.max_step_mult,
                                                    predicted)
        kl_step = cfg.base_kl_step * cond.step_mult * batch.T
        upd = self.traj_opt.update(cond.policy, dyn, cost, kl_step, cond.eta)
        # the update's final forward pass already gives the new controller's predicted cost
        cond.prev = (cond.policy, dyn, cost, float(expected_cost(upd.mu, upd.sigma, cost).sum()))
        cond.policy, cond.eta = upd.policy, upd.eta
        t2 = time.perf_counter()
        stats.kl.append(upd.kl)
        stats.kl_step.append(kl_step)
        stats.eta.append(upd.eta)
        stats.step_mult.append(cond.step_mult)
        stats.eta_iterations.append(upd.iterations)
        stats.seconds['dynamics'] += t1 - t0
        stats.seconds['traj_opt'] += t2 - t1

    # ------------------------------------------------------------ checkpoints (plain data)
    def _state_header(self) -> dict[str, Any]:
        p = self.conditions[0].policy
        return {'format': STATE_FORMAT, 'algorithm': self.KIND, 'conditions': len(self.conditions),
                'T': p.T, 'dX': p.dX, 'dU': p.dU}

    def state_dict(self) -> dict[str, Any]:
        """header; iteration_count; rng (the numpy Generator's state); per condition: controller,
        dynamics_prior (window + GMM), eta, step_mult, previous (None before the first iteration,
        else the controller the last samples came from, the dynamics and cost fitted to them and
        the new controller's predicted cost: what the next step-size adjustment compares)."""
        return {'header': self._state_header(), 'iteration_count': self.iteration_count,
                'rng': numpy_rng_state(self.rng), 'conditions': [_condition_state(c) for c in self.conditions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_header(state, self._state_header())
        conditions = [_condition_from_state(c, self.dynamics_config) for c in state['conditions']]
        restore_numpy_rng(self.rng, state['rng'])
        self.conditions, self.iteration_count = conditions, int(state['iteration_count'])


def _condition_state(cond: ConditionState) -> dict[str, Any]:
    prev = None
    if cond.prev is not None:
        policy, dyn, cost, predicted = cond.prev
        prev = {'controller': policy_state(policy), 'dynamics': dynamics_state(dyn), 'cost': cost_state(cost),
                'predicted_cost': float(predicted)}
    return {'controller': policy_state(cond.policy), 'dynamics_prior': cond.prior.state_dict(),
            'eta': float(cond.eta), 'step_mult': float(cond.step_mult), 'previous': prev}


def _condition_from_state(state: dict[str, Any], dynamics: DynamicsConfig) -> ConditionState:
    prior = DynamicsPriorGMM(dynamics.prior)
    prior.load_state_dict(state['dynamics_prior'])
    p = state['previous']
    prev = None if p is None else (policy_from_state(p['controller']), dynamics_from_state(p['dynamics']),
                                   cost_from_state(p['cost']), float(p['predicted_cost']))
    return ConditionState(policy_from_state(state['controller']), prior, float(state['eta']),
                          float(state['step_mult']), prev)
