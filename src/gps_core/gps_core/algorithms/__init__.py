"""GPS algorithms: trajectory-centric RL (TrajOpt); MDGPS and BADMM build on the same pieces."""
from gps_core.algorithms.traj_opt import ConditionState, IterationStats, TrajOptAlgorithm

__all__ = ['ConditionState', 'IterationStats', 'TrajOptAlgorithm']
