"""What MDGPS and BADMM share: per-condition local models, the network, its linearization and the
supervised policy step. The variants differ only in how the trajectory and policy steps are
coupled (mdgps.py, badmm.py).

Observations: a batch's obs if it has them, else obs = x. The UR5e state already holds what the
GPS papers give the policy (joint angles and velocities, end-effector points minus the target and
their velocities), so the network sees the target through the relative points. A visuomotor
policy (policy.kind spatial_softmax, Levine et al. JMLR'16) sees the batch's images and obs (the
robot's own state); the controllers and the dynamics still see x only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gps_core.algorithms.local_models import expand_batch_cost, fit_dynamics_with_prior
from gps_core.algorithms.base import STATE_FORMAT, IterationStats, check_state_header
from gps_core.algorithms.plain_state import (cost_from_state, cost_state, dynamics_from_state, dynamics_state,
                                            numpy_rng_state, policy_from_state, policy_state, restore_numpy_rng)
from gps_core.algorithms.traj_opt import ConditionState
from gps_core.config import AlgorithmConfig, DynamicsConfig
from gps_core.costs.base import Cost
from gps_core.dynamics.gmm_prior import DynamicsPriorGMM
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.nn_policy import PolicyNetwork
from gps_core.policies.policy_config import PolicyConfig
from gps_core.policies.policy_opt import PolicyOpt
from gps_core.policies.visuomotor_config import VisuomotorPolicyConfig
from gps_core.policies.policy_prior import PolicyPriorGMM
from gps_core.samples import SampleBatch
from gps_core.traj_opt.cost_expansion import CostExpansion
from gps_core.traj_opt.kl_lqr import KLTrajOpt, TrajOptConfig


@dataclass(frozen=True)
class Snapshot:
    """One condition's previous iteration, for the step-size rule."""

    sampled: LinearGaussianPolicy         # the controller its samples came from
    new: LinearGaussianPolicy             # the controller its trajectory step produced
    pol_lin: LinearGaussianPolicy | None  # the network linearized around its samples
    dyn: LinearGaussianDynamics | None    # (PIGPS: no models; no pol_lin while it samples the controllers)
    cost: CostExpansion | None


@dataclass
class PolicyConditionState:
    local: ConditionState                 # controller, dynamics prior, eta, step multiplier
    pol_prior: PolicyPriorGMM
    batch: SampleBatch | None = None      # this iteration's samples and the models fitted to them
    dyn: LinearGaussianDynamics | None = None
    cost: CostExpansion | None = None
    pol_lin: LinearGaussianPolicy | None = None
    new_policy: LinearGaussianPolicy | None = None
    prev: Snapshot | None = None


def observations(batch: SampleBatch) -> np.ndarray:
    return batch.obs if batch.obs is not None else batch.X


class PolicyAlgorithmBase:
    """Holds the conditions, the trajectory optimizer and the policy optimizer (the network).

    A GPSAlgorithm; subclasses name themselves in KIND and add what only they carry through
    `_variant_state` / `_load_variant_state`.
    """

    KIND = ''

    def __init__(self, config: AlgorithmConfig, dynamics: DynamicsConfig, traj_opt: TrajOptConfig,
                 policy: PolicyConfig, costs: list[Cost], init_policies: list[LinearGaussianPolicy],
                 rng: np.random.Generator, generator: torch.Generator, dO: int | None = None,
                 image_shape: tuple[int, int] | None = None):
        """dO: the observation size (default dX); image_shape (H, W): the camera's, for a
        visuomotor policy (whose robot-state size is dO)."""
        if len(costs) != len(init_policies) or not costs:
            raise ValueError(f'{len(costs)} costs for {len(init_policies)} conditions')
        self.config, self.dynamics_config, self.policy_config = config, dynamics, policy
        self.costs, self.rng = costs, rng
        self.traj_opt = KLTrajOpt(traj_opt)
        dX, dU = init_policies[0].dX, init_policies[0].dU
        if isinstance(policy, VisuomotorPolicyConfig):
            from gps_core.policies.visuomotor_opt import VisuomotorPolicyOpt
            if image_shape is None:
                raise ValueError('a visuomotor policy needs the camera image_shape')
            self.policy_opt = VisuomotorPolicyOpt(policy, image_shape, dX if dO is None else dO, dU, generator)
        else:
            self.policy_opt = PolicyOpt(policy, dX if dO is None else dO, dU, generator)
        self.visuomotor = isinstance(policy, VisuomotorPolicyConfig)
        self.conditions = [
            PolicyConditionState(ConditionState(p, DynamicsPriorGMM(dynamics.prior), config.initial_eta),
                                 PolicyPriorGMM(policy.prior, policy.regularization))
            for p in init_policies]
        self.iteration_count = 0

    @property
    def policies(self) -> list[LinearGaussianPolicy]:
        """The local controllers (what off-policy sampling runs)."""
        return [c.local.policy for c in self.conditions]

    @property
    def network(self) -> PolicyNetwork:
        return self.policy_opt.network

    @property
    def samples_from_network(self) -> bool:
        """Whether the next samples should come from the network (on-policy) instead of the controllers."""
        return False

    def _start_iteration(self, samples: list[SampleBatch]) -> IterationStats:
        """Store the batches and fit every condition's dynamics and cost expansion."""
        if len(samples) != len(self.conditions):
            raise ValueError(f'got samples for {len(samples)} conditions, expected {len(self.conditions)}')
        stats = IterationStats()
        stats.seconds['policy'] = 0.0
        for m, (cond, batch) in enumerate(zip(self.conditions, samples)):
            t0 = time.perf_counter()
            cond.batch = batch
            cond.dyn = fit_dynamics_with_prior(cond.local.prior, batch, self.dynamics_config.regularization, self.rng)
            cond.cost = expand_batch_cost(self.costs[m], batch)
            stats.seconds['dynamics'] += time.perf_counter() - t0
        return stats

    def network_mean(self, obs: np.ndarray, images: np.ndarray | None = None) -> np.ndarray:
        """mu_theta for obs [M, dO] (and images [M, H, W, 3] uint8 for a visuomotor policy) -> [M, dU]."""
        if self.visuomotor:
            return self.network.act_np(images, obs)
        return self.network.mean_np(obs)

    def batch_mean(self, batch: SampleBatch) -> np.ndarray:
        """mu_theta at every (sample, step) of a batch: [N, T, dU]."""
        obs = observations(batch)
        N, T = obs.shape[:2]
        images = None if batch.images is None else batch.images.reshape((N * T,) + batch.images.shape[2:])
        return self.network_mean(obs.reshape(N * T, -1), images).reshape(N, T, -1)

    def _linearize(self, m: int, stats: IterationStats, add_samples: bool = True) -> None:
        """Refit condition m's policy prior and linearize the network around its samples."""
        t0 = time.perf_counter()
        cond, net = self.conditions[m], self.network
        obs = observations(cond.batch)
        images = cond.batch.images if self.visuomotor else None
        if add_samples:
            cond.pol_prior.add_samples(cond.batch.X, obs, images)
        cond.pol_lin = cond.pol_prior.update_and_linearize(self.network_mean, cond.batch.X, obs, net.covar_np(),
                                                           self.rng, images)
        stats.seconds['policy'] += time.perf_counter() - t0

    def _policy_step(self, controllers: list[LinearGaussianPolicy], stats: IterationStats,
                     weights: list[np.ndarray] | None = None, shifts: list[np.ndarray] | None = None) -> None:
        """Regress the network onto the controllers' actions at every condition's sampled states.

        weights: per condition [T] time-step weights (default 1); shifts: per condition [T, dU]
        added to the target means (BADMM's dual terms). Precisions: the controllers' Sigma_t^-1.
        """
        t0 = time.perf_counter()
        obs, mu, prc, wt, images = [], [], [], [], []
        for m, (cond, ctrl) in enumerate(zip(self.conditions, controllers)):
            X = cond.batch.X
            N, T = X.shape[:2]
            target = np.einsum('tux,ntx->ntu', ctrl.K, X) + ctrl.k
            if shifts is not None:
                target = target + shifts[m]
            w = np.ones(T) if weights is None else weights[m]
            obs.append(observations(cond.batch).reshape(N * T, -1))
            if self.visuomotor:
                images.append(cond.batch.images.reshape((N * T,) + cond.batch.images.shape[2:]))
            mu.append(target.reshape(N * T, -1))
            prc.append(np.broadcast_to(ctrl.inv_pol_covar, (N,) + ctrl.inv_pol_covar.shape).reshape(N * T, ctrl.dU, ctrl.dU))
            wt.append(np.broadcast_to(w, (N, T)).reshape(-1))
        targets = (np.concatenate(mu), np.concatenate(prc), np.concatenate(wt))
        if self.visuomotor:
            upd = self.policy_opt.update(np.concatenate(images), np.concatenate(obs), *targets)
        else:
            upd = self.policy_opt.update(np.concatenate(obs), *targets)
        stats.extra.setdefault('policy_loss', []).append(upd.loss_after)
        stats.seconds['policy'] += time.perf_counter() - t0

    def _trajectory_stats(self, stats: IterationStats, m: int, upd, kl_step: float) -> None:
        stats.kl.append(upd.kl)
        stats.kl_step.append(kl_step)
        stats.eta.append(upd.eta)
        stats.step_mult.append(self.conditions[m].local.step_mult)
        stats.eta_iterations.append(upd.iterations)

    def _advance(self) -> None:
        """The new controllers become the sampling controllers; remember this iteration."""
        for cond in self.conditions:
            cond.prev = Snapshot(cond.local.policy, cond.new_policy, cond.pol_lin, cond.dyn, cond.cost)
            cond.local.policy = cond.new_policy
        self.iteration_count += 1

    # ------------------------------------------------------------ checkpoints (plain data)
    def _state_header(self) -> dict[str, Any]:
        p = self.conditions[0].local.policy
        return {'format': STATE_FORMAT, 'algorithm': self.KIND, 'conditions': len(self.conditions),
                'T': p.T, 'dX': p.dX, 'dU': p.dU, 'dO': self.network.dO, 'network': self.network.architecture()}

    def state_dict(self) -> dict[str, Any]:
        """header; iteration_count; rng (the numpy Generator's state); policy_opt (network, Adam,
        normalization, minibatch generator: PolicyOpt.state_dict); variant (what the subclass adds,
        e.g. BADMM's duals); per condition: controller, dynamics_prior, eta, step_mult,
        policy_prior (window + GMM) and previous (None before the first iteration, else the
        Snapshot the next step-size rule reads: sampled, new, pol_lin, dynamics, cost).

        Taken between iterations. This iteration's batch is not kept (the next iteration replaces
        it before reading it); its dyn, cost, pol_lin and new_policy are the Snapshot's."""
        return {'header': self._state_header(), 'iteration_count': self.iteration_count,
                'rng': numpy_rng_state(self.rng), 'policy_opt': self.policy_opt.state_dict(),
                'variant': self._variant_state(),
                'conditions': [_condition_state(c) for c in self.conditions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refuses a state of another algorithm, shape or network (naming the mismatch) before
        changing anything."""
        check_state_header(state, self._state_header())
        conditions = [self._condition_from_state(c) for c in state['conditions']]
        self._load_variant_state(state['variant'])
        self.policy_opt.load_state_dict(state['policy_opt'])
        restore_numpy_rng(self.rng, state['rng'])
        self.conditions, self.iteration_count = conditions, int(state['iteration_count'])

    def _variant_state(self) -> dict[str, Any]:
        return {}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f'training state: {self.KIND} carries no {sorted(state)}')

    def _condition_from_state(self, state: dict[str, Any]) -> PolicyConditionState:
        prior = DynamicsPriorGMM(self.dynamics_config.prior)
        prior.load_state_dict(state['dynamics_prior'])
        pol_prior = PolicyPriorGMM(self.policy_config.prior, self.policy_config.regularization)
        pol_prior.load_state_dict(state['policy_prior'])
        local = ConditionState(policy_from_state(state['controller']), prior, float(state['eta']),
                               float(state['step_mult']))
        p = state['previous']
        if p is None:
            return PolicyConditionState(local, pol_prior)
        prev = Snapshot(policy_from_state(p['sampled']), policy_from_state(p['new']), policy_from_state(p['pol_lin']),
                        dynamics_from_state(p['dynamics']), cost_from_state(p['cost']))
        # after _advance these are the same objects as the snapshot's
        return PolicyConditionState(local, pol_prior, None, prev.dyn, prev.cost, prev.pol_lin, prev.new, prev)


def _condition_state(cond: PolicyConditionState) -> dict[str, Any]:
    local, prev = cond.local, cond.prev
    return {'controller': policy_state(local.policy), 'dynamics_prior': local.prior.state_dict(),
            'eta': float(local.eta), 'step_mult': float(local.step_mult),
            'policy_prior': cond.pol_prior.state_dict(),
            'previous': None if prev is None else {
                'sampled': policy_state(prev.sampled), 'new': policy_state(prev.new),
                'pol_lin': policy_state(prev.pol_lin), 'dynamics': dynamics_state(prev.dyn),
                'cost': cost_state(prev.cost)}}
