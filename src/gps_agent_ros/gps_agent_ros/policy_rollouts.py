"""Trials of the neural-network policy: noisy ones to sample on-policy, noiseless ones to measure
how far the network alone gets (the number GPS is judged by)."""
from __future__ import annotations

from typing import Any

import numpy as np

from gps_agent_ros.agent import Agent
from gps_agent_ros.experiment import Condition, Experiment
from gps_core.policies import smoothed_noise
from gps_core.samples import SampleBatch


def sample_network(agent: Agent, exp: Experiment, m: int, network: Any, n: int,
                   rng: np.random.Generator) -> SampleBatch:
    """n trials of condition m with u_t = mu_theta(x_t) + chol(Sigma_pi) eps_t, eps smoothed noise."""
    T, dU = exp.config.T, exp.dU
    chol = np.linalg.cholesky(network.covar_np())
    sigma = exp.config.algorithm.init.smooth_noise_sigma
    trials = []
    for _ in range(n):
        eps = smoothed_noise(rng, T, dU, sigma) @ chol.T
        trials.append(agent.run_policy_trial(exp.conditions[m], lambda t, x: network.mean_np(x) + eps[t]))
    return SampleBatch(np.stack([t.X for t in trials]), np.stack([t.U for t in trials]))


def policy_final_distances(agent: Agent, exp: Experiment, conditions: list[Condition], network: Any) -> list[float]:
    """Distance of the first end-effector point to its target at the last step of one noiseless
    rollout of the network alone, per condition."""
    out = []
    for cond in conditions:
        trial = agent.run_policy_trial(cond, lambda t, x: network.mean_np(x))
        out.append(float(exp.final_distance(trial.X[None])[0]))
    return out
