"""GPS algorithms: trajectory-centric RL (TrajOpt); MDGPS and BADMM (neural-network policies, in
gps_core.algorithms.mdgps / .badmm, which import torch); make_algorithm picks by config."""
from gps_core.algorithms.factory import make_algorithm
from gps_core.algorithms.traj_opt import ConditionState, IterationStats, TrajOptAlgorithm

__all__ = ['ConditionState', 'IterationStats', 'TrajOptAlgorithm', 'make_algorithm']
