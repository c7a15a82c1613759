"""GPS algorithms: trajectory-centric RL (TrajOpt); MDGPS, BADMM, PIGPS and MPC-GPS (neural-network
policies, in gps_core.algorithms.mdgps / .badmm / .pigps / .mpcgps, which import torch); make_algorithm
picks by config; all are GPSAlgorithms (gps_core.algorithms.base), MPC-GPS a TeacherAlgorithm too."""
from gps_core.algorithms.base import GPSAlgorithm, IterationStats
from gps_core.algorithms.factory import make_algorithm
from gps_core.algorithms.traj_opt import ConditionState, TrajOptAlgorithm

__all__ = ['ConditionState', 'GPSAlgorithm', 'IterationStats', 'TrajOptAlgorithm', 'make_algorithm']
