"""Adapting the KL step from predicted vs. actual improvement (Levine & Abbeel NIPS'14, Sec. 3.1;
the multiplier rule of the reference GPS code's trajectory-optimization algorithm)."""
from __future__ import annotations

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.cost_expansion import CostExpansion
from gps_core.traj_opt.kl_lqr import estimate_cost


def adjust_step_mult(step_mult: float, prev_policy: LinearGaussianPolicy, cur_policy: LinearGaussianPolicy,
                     prev_dyn: LinearGaussianDynamics, prev_cost: CostExpansion,
                     cur_dyn: LinearGaussianDynamics, cur_cost: CostExpansion,
                     min_mult: float, max_mult: float, predicted: float | None = None
                     ) -> tuple[float, float, float]:
    """New step multiplier, plus (predicted, actual) improvement of the last update.

    Model the improvement as I(KL) = a KL + b KL^2 with a from the prediction and b from the
    prediction error; the maximizer rescales the step by pred / (2 (pred - actual)), clipped to
    [0.1, 5] per iteration and to [min_mult, max_mult] overall.
    predicted: cur_policy's expected cost under (prev_dyn, prev_cost) if the caller kept it from
    the update that made cur_policy (its final forward pass), saving that forward pass here.
    """
    previous = estimate_cost(prev_policy, prev_dyn, prev_cost).sum()    # what the old samples cost (model)
    if predicted is None:                                               # what we expected the update to cost
        predicted = estimate_cost(cur_policy, prev_dyn, prev_cost).sum()
    actual = estimate_cost(cur_policy, cur_dyn, cur_cost).sum()         # what it cost under the new fit
    predicted_impr, actual_impr = previous - predicted, previous - actual
    return step_mult_rule(step_mult, predicted_impr, actual_impr, min_mult, max_mult), \
        float(predicted_impr), float(actual_impr)


def step_mult_rule(step_mult: float, predicted_impr: float, actual_impr: float,
                   min_mult: float, max_mult: float) -> float:
    """The multiplier rule itself, for any predicted / actual improvement of an objective."""
    mult = predicted_impr / (2.0 * max(1e-4, predicted_impr - actual_impr))
    mult = min(max(mult, 0.1), 5.0)
    return min(max(mult * step_mult, min_mult), max_mult)
