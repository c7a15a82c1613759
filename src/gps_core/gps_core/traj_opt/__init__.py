"""Trajectory optimization: KL-constrained LQR (backward pass, forward pass, eta search) and the
model-free PI2 update."""
from gps_core.traj_opt.cost_expansion import CostExpansion, expand_cost
from gps_core.traj_opt.kl import traj_kl
from gps_core.traj_opt.kl_lqr import (EtaSearchError, KLPenalty, KLTrajOpt, TrajOptConfig, TrajUpdate,
                                      estimate_cost)
from gps_core.traj_opt.lqr import backward_pass, forward_pass
from gps_core.traj_opt.pi2 import PI2Config, PI2Update, pi2_update

__all__ = ['CostExpansion', 'expand_cost', 'traj_kl', 'EtaSearchError', 'KLPenalty', 'KLTrajOpt', 'TrajOptConfig',
           'TrajUpdate', 'estimate_cost', 'backward_pass', 'forward_pass', 'PI2Config', 'PI2Update', 'pi2_update']
