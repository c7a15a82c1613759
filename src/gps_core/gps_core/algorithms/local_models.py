"""The per-condition local models every GPS variant starts an iteration with: linear-Gaussian
dynamics fitted under the GMM prior, and the quadratic cost expansion around the samples."""
from __future__ import annotations

import numpy as np

from gps_core.costs.base import Cost
from gps_core.dynamics.gmm_prior import DynamicsPriorGMM
from gps_core.dynamics.lin_reg import fit_dynamics
from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.samples import SampleBatch
from gps_core.traj_opt.cost_expansion import CostExpansion, expand_cost


def fit_dynamics_with_prior(prior: DynamicsPriorGMM, batch: SampleBatch, regularization: float,
                            rng: np.random.Generator) -> LinearGaussianDynamics:
    """Add the batch to the prior's window, refit the GMM, fit p(x_t+1 | x_t, u_t) to the batch."""
    prior.update(batch.X, batch.U, rng)
    return fit_dynamics(batch.X, batch.U, prior, regularization)


def expand_batch_cost(cost: Cost, batch: SampleBatch) -> CostExpansion:
    return expand_cost(cost.eval(batch.X, batch.U), batch.X, batch.U)
