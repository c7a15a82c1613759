"""MPC-guided policy search (Zhang, Kahn, Levine, Abbeel, ICRA 2016, Sec. IV), on MDGPS's trajectory step.

Samples are run by an MPC teacher that sees the full state: per condition, a receding-horizon LQR on
the fitted dynamics that tracks the offline trajectory solution and stays close to the current policy
(gps_core.traj_opt.mpc), re-solved from the measured state every few steps. A disturbed trial is thus
driven back by the teacher, and the policy, which sees only its observation, learns those recoveries by
regression onto the teacher's actions at the states the teacher visited.

One iteration, per condition m:
  1. fit the dynamics and the cost expansion to the new samples: to the undisturbed ones when the
     trainer says which trials it disturbed (`iteration(samples, disturbed)`; see _fit_local_models);
  2. S-step on what ran: regress the network onto the teacher's actions at the visited states (the
     first iteration's samples come from the initial controllers: onto those, as MDGPS);
  3. linearize the network around the samples (GMM policy prior): pi_lin,m;
  4. C-step, as MDGPS's: p_m <- argmin E[cost] s.t. KL(p_m || pi_lin,m) <= epsilon, one step size
     shared by all conditions and adapted from the improvement of the linearized policy (mdgps.py);
  5. the next teacher: track p_m's mean under the fitted dynamics, closeness weight w_pol * eta_m on
     -log pi_lin,m (the weight the C-step's own Lagrangian gives it).

S-step targets: the teacher's noise-free actions, replayed through the same law at the recorded states
(the exploration noise the trainer added on the arm is not something to imitate). Their precision is
the offline controller's Sigma_p,t^-1 that the teacher tracked, as in MDGPS's S-step: it is the
curvature of the C-step's Lagrangian in u, so Sigma_pi (their inverse mean, PolicyOpt) and with it the
next C-step's KL trust region keep the scale they have in MDGPS. The teacher's own Q_uu would tie that
scale to the tracking and closeness weights instead.

What the trainer samples with (`samples_from_teacher`): the initial controllers for the first
iteration (`policies`), then per condition the teacher `teacher_problem(m)` with exploration noise
`teacher_noise(m, eps)`: the tracked offline controller's covariance applied to the trainer's smoothed
standard-normal eps [T, dU] (what a linear-Gaussian controller's fold_noise adds).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from gps_core.algorithms.mdgps import MDGPSAlgorithm
from gps_core.algorithms.policy_base import PolicyConditionState, observations
from gps_core.algorithms.traj_opt import IterationStats
from gps_core.config import AlgorithmConfig, DynamicsConfig
from gps_core.costs.base import Cost
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.policies.policy_config import PolicyConfig
from gps_core.samples import SampleBatch
from gps_core.traj_opt.kl_lqr import TrajOptConfig, TrajUpdate
from gps_core.traj_opt.mpc import MPCConfig, MPCProblem, teacher_actions, teacher_cost


class MPCGPSAlgorithm(MDGPSAlgorithm):
    """MDGPS's arguments plus the teacher's settings (`mpc`)."""

    KIND = 'mpcgps'

    def __init__(self, config: AlgorithmConfig, dynamics: DynamicsConfig, traj_opt: TrajOptConfig,
                 policy: PolicyConfig, costs: list[Cost], init_policies: list[LinearGaussianPolicy],
                 rng: np.random.Generator, generator: torch.Generator, dO: int | None = None,
                 mpc: MPCConfig = MPCConfig()):
        super().__init__(config, dynamics, traj_opt, policy, costs, init_policies, rng, generator, dO)
        if mpc.horizon > init_policies[0].T:
            raise ValueError(f'mpc.horizon: {mpc.horizon} exceeds the trial length T={init_policies[0].T}')
        self.mpc = mpc
        self.teachers: list[MPCProblem] | None = None

    @property
    def samples_from_network(self) -> bool:
        return False

    @property
    def samples_from_teacher(self) -> bool:
        """Whether the next samples must be run by the teachers (from the second iteration on)."""
        return self.teachers is not None

    def teacher_problem(self, m: int) -> MPCProblem:
        """Condition m's teacher, as data (what gps_controllers.mpc_controller.MPCSpec carries)."""
        if self.teachers is None:
            raise RuntimeError('no teacher before the first iteration: sample the initial controllers')
        return self.teachers[m]

    def teacher_noise(self, m: int, eps: np.ndarray) -> np.ndarray:
        """[T, dU] exploration noise for a teacher trial: chol(Sigma_p,t)^T eps_t of the offline
        controller the teacher tracks; eps [T, dU] standard normal (smoothed by the trainer)."""
        p = self.conditions[m].local.policy
        return p.fold_noise(eps) - p.k

    def iteration(self, samples: list[SampleBatch], disturbed: list[np.ndarray] | None = None) -> IterationStats:
        """disturbed: per condition a [N] bool mask of the trials that were disturbed (None: none)."""
        from_teacher = self.samples_from_teacher          # how these samples were run
        stats = self._fit_local_models(samples, disturbed)
        if from_teacher:
            self._teacher_step(stats)
        else:
            self._policy_step(self.policies, stats)
        for m in range(len(self.conditions)):
            self._linearize(m, stats)
        if self.iteration_count > 0:
            self._adjust_shared_step(stats)
        teachers = []
        for m, cond in enumerate(self.conditions):
            t0 = time.perf_counter()
            kl_step = self.config.base_kl_step * cond.local.step_mult * cond.batch.T
            upd = self.traj_opt.update(cond.pol_lin, cond.dyn, cond.cost, kl_step, cond.local.eta)
            cond.new_policy, cond.local.eta = upd.policy, upd.eta
            teachers.append(self._teacher(cond, upd))
            stats.seconds['traj_opt'] += time.perf_counter() - t0
            self._trajectory_stats(stats, m, upd, kl_step)
        self.teachers = teachers
        self._advance()
        return stats

    def _fit_local_models(self, samples: list[SampleBatch], disturbed: list[np.ndarray] | None) -> IterationStats:
        """Dynamics and cost expansion from the undisturbed trials; every trial stays in cond.batch for
        the S-step and the policy linearization.

        A disturbance is in neither x nor u, so a model fitted through a disturbed transition is wrong at
        its step, by about the velocity jump / (N x the samples' spread there): the fitted model is of the
        undisturbed arm (what the C-step and the teacher predict with), the disturbed trials carry the
        recoveries the policy must learn.
        """
        if disturbed is None:
            return self._start_iteration(samples)
        if len(samples) != len(self.conditions) or len(disturbed) != len(samples):
            raise ValueError(f'got samples for {len(samples)} and disturbance masks for {len(disturbed)} '
                             f'conditions, expected {len(self.conditions)}')
        clean = []
        for m, (batch, mask) in enumerate(zip(samples, disturbed)):
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (batch.N,):
                raise ValueError(f'disturbed[{m}] must be [{batch.N}] booleans, got shape {list(mask.shape)}')
            if mask.all():
                raise ValueError(f'condition {m}: every trial was disturbed; the dynamics need undisturbed ones')
            keep = ~mask
            clean.append(SampleBatch(batch.X[keep], batch.U[keep], None if batch.obs is None else batch.obs[keep]))
        stats = self._start_iteration(clean)
        for cond, batch in zip(self.conditions, samples):
            cond.batch = batch
        return stats

    def _variant_state(self) -> dict[str, Any]:
        """The teachers the next samples are run with: None before the first iteration, else per
        condition the MPCProblem's arrays (Fm, fv, Cm, cv) and its horizon and replan_every."""
        if self.teachers is None:
            return {'teachers': None}
        return {'teachers': [{'Fm': t.Fm.copy(), 'fv': t.fv.copy(), 'Cm': t.Cm.copy(), 'cv': t.cv.copy(),
                              'horizon': t.horizon, 'replan_every': t.replan_every} for t in self.teachers]}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        if set(state) != {'teachers'}:
            raise ValueError(f'training state: MPC-GPS carries exactly its teachers, got {sorted(state)}')
        teachers = state['teachers']
        if teachers is None:
            self.teachers = None
            return
        p = self.policies[0]
        if not isinstance(teachers, list) or len(teachers) != len(self.conditions):
            raise ValueError(f'training state: MPC-GPS needs {len(self.conditions)} teachers')
        problems = [MPCProblem(t['Fm'], t['fv'], t['Cm'], t['cv'], t['horizon'], t['replan_every']) for t in teachers]
        if any((q.T, q.dX, q.dU) != (p.T, p.dX, p.dU) for q in problems):
            raise ValueError(f'training state: teachers must be for T={p.T}, dX={p.dX}, dU={p.dU}')
        self.teachers = problems

    def _teacher(self, cond: PolicyConditionState, upd: TrajUpdate) -> MPCProblem:
        Cm, cv = teacher_cost(upd.mu, cond.cost.Cm, cond.pol_lin, self.mpc.policy_weight * upd.eta,
                              self.mpc.tracking_weight)
        return MPCProblem(cond.dyn.Fm, cond.dyn.fv, Cm, cv, self.mpc.horizon, self.mpc.replan_every)

    def _teacher_step(self, stats: IterationStats) -> None:
        """Regress the network onto each teacher's actions at its trials' states, with the precision of
        the offline controller it tracked (module docstring)."""
        t0 = time.perf_counter()
        obs, mu, prc = [], [], []
        for m, cond in enumerate(self.conditions):
            batch, tracked = cond.batch, cond.local.policy
            N, T = batch.N, batch.T
            obs.append(observations(batch).reshape(N * T, -1))
            mu.append(teacher_actions(self.teachers[m], batch.X).reshape(N * T, -1))
            prc.append(np.broadcast_to(tracked.inv_pol_covar, (N,) + tracked.inv_pol_covar.shape)
                       .reshape(N * T, tracked.dU, tracked.dU))
        mu_all = np.concatenate(mu)
        upd = self.policy_opt.update(np.concatenate(obs), mu_all, np.concatenate(prc), np.ones(mu_all.shape[0]))
        stats.extra.setdefault('policy_loss', []).append(upd.loss_after)
        stats.seconds['policy'] += time.perf_counter() - t0
