"""A weighted sum of costs: l = sum_j w_j l_j, and the same for every derivative."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gps_core.costs.base import Cost, CostDerivs


@dataclass(frozen=True)
class WeightedSumCost:
    """costs: one or more Cost; weights: one finite float per cost (stored as tuples)."""

    costs: Sequence[Cost]
    weights: Sequence[float]

    def __post_init__(self) -> None:
        costs, weights = tuple(self.costs), tuple(float(w) for w in self.weights)
        if not costs:
            raise ValueError('WeightedSumCost: needs at least one cost')
        if len(weights) != len(costs):
            raise ValueError(f'WeightedSumCost: got {len(costs)} costs but {len(weights)} weights')
        if not all(math.isfinite(w) for w in weights):
            raise ValueError(f'WeightedSumCost: weights must be finite, got {weights}')
        for c in costs:
            if not callable(getattr(c, 'eval', None)):
                raise ValueError(f'WeightedSumCost: {c!r} has no eval(X, U) method')
        object.__setattr__(self, 'costs', costs)
        object.__setattr__(self, 'weights', weights)

    def eval(self, X: np.ndarray, U: np.ndarray) -> CostDerivs:
        """X [N, T, dX], U [N, T, dU] -> sum_j w_j * costs[j].eval(X, U)."""
        total = self.costs[0].eval(X, U).scale(self.weights[0])
        for cost, w in zip(self.costs[1:], self.weights[1:]):
            total = total + cost.eval(X, U).scale(w)
        return total
