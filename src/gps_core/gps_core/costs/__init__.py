"""Costs: batched values and analytic derivatives over X [N, T, dX], U [N, T, dU]."""
from gps_core.costs.action import ActionCost
from gps_core.costs.base import Cost, CostDerivs
from gps_core.costs.ee_point import EEPointCost
from gps_core.costs.ramp import ramp_weights
from gps_core.costs.state import StateCost
from gps_core.costs.weighted_sum import WeightedSumCost

__all__ = ['ActionCost', 'Cost', 'CostDerivs', 'EEPointCost', 'StateCost', 'WeightedSumCost',
           'ramp_weights']
