"""Trials of the neural-network policy: noisy ones to sample on-policy, noiseless ones to measure
how far the network alone gets (the number GPS is judged by). The network travels to the agent
as data (its spec), so these run in-process or on an arm behind controller_node alike."""
from __future__ import annotations

from typing import Any

import numpy as np

from gps_agent_ros.agent import Agent
from gps_agent_ros.experiment import Condition, Experiment
from gps_controllers.trial_spec import NetworkSpec
from gps_core.policies import smoothed_noise
from gps_core.policies.spec import policy_spec
from gps_core.samples import SampleBatch


def sample_network(agent: Agent, exp: Experiment, m: int, network: Any, n: int,
                   rng: np.random.Generator) -> SampleBatch:
    """n trials of condition m with u_t = mu_theta(x_t) + chol(Sigma_pi) eps_t, eps smoothed noise
    drawn here (so a seeded run is reproducible wherever the trial runs)."""
    T, dU = exp.config.T, exp.dU
    spec = policy_spec(network)
    chol = np.linalg.cholesky(network.covar_np())
    sigma = exp.config.algorithm.init.smooth_noise_sigma
    trials = [agent.run(exp.conditions[m], NetworkSpec(spec, smoothed_noise(rng, T, dU, sigma) @ chol.T))
              for _ in range(n)]
    return SampleBatch(np.stack([t.X for t in trials]), np.stack([t.U for t in trials]))


def policy_final_distances(agent: Agent, exp: Experiment, conditions: list[Condition], network: Any) -> list[float]:
    """Distance of the first end-effector point to its target at the last step of one noiseless
    rollout of the network alone, per condition."""
    spec = NetworkSpec(policy_spec(network))
    return [float(exp.final_distance(agent.run(cond, spec).X[None])[0]) for cond in conditions]
