"""KL-constrained trajectory optimization by dual gradient descent on eta.

Levine & Abbeel, "Learning Neural Network Policies with Guided Policy Search under Unknown
Dynamics", NIPS 2014, eq. (3)-(4): minimize E[cost] subject to KL(p_new || p_prior) <= epsilon.
For fixed eta the Lagrangian is minimized by an LQR pass on cost/eta - log p_prior; eta is then
searched in log space until |KL - epsilon| <= tolerance * epsilon.

The optimizer is given the distribution to stay close to (`prior`); it knows nothing of the
algorithm calling it (trajectory-centric RL passes the previous controller, MDGPS the
linearized global policy, BADMM adds its Lagrange terms to the cost and a second distribution
to stay near with per-step weights, `KLPenalty`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from gps_core.dynamics.linear_gaussian import LinearGaussianDynamics
from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.cost_expansion import CostExpansion
from gps_core.traj_opt.kl import traj_kl
from gps_core.traj_opt.lqr import NotPositiveDefinite, backward_pass, forward_pass, kl_penalty_terms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrajOptConfig:
    min_eta: float = 1e-8
    max_eta: float = 1e16
    max_iterations: int = 50
    kl_tolerance: float = 0.1     # accept |KL - eps| <= kl_tolerance * eps


@dataclass(frozen=True)
class TrajUpdate:
    policy: LinearGaussianPolicy
    eta: float
    kl: float                     # KL(p_new || prior), summed over time
    kl_step: float                # the epsilon it was constrained to
    iterations: int
    converged: bool               # False only when eta hit a bound (constraint inactive / infeasible)
    mu: np.ndarray                # [T, dXU] state-action marginals of the new controller
    sigma: np.ndarray             # [T, dXU, dXU]


@dataclass(frozen=True)
class KLPenalty:
    """An extra objective term sum_t weights_t KL(p_t || policy_t): weights [T] >= 0.

    With it the update solves min E[cost] + sum_t w_t KL(p_t || q_t) s.t. KL(p || prior) <= eps,
    BADMM's trajectory step (Levine et al. JMLR'16, App. A; w = nu, q = pi_lin, cost - lambda^T u).
    For a fixed dual eta the Lagrangian, with each KL written as E[-log(.)] - H(p_t(.|x_t)), is
      sum_t E_p[ c_t - w_t log q_t - eta log prior_t ] - (w_t + eta) H(p_t(.|x_t))   (+ const),
    an LQR with a per-step entropy weight a_t = w_t + eta. Dynamic programming from t = T-1:
    Q_t = c~_t + E[V_t+1(x')] with c~_t the bracket above; min over p_t of E[Q_t] - a_t H(p_t) is
    p_t(u|x) ~ exp(-Q_t / a_t) = N(-Q_uu^-1 (Q_ux x + Q_u), a_t Q_uu^-1), and V_t is Q_t minimized
    over u (up to a constant: the log-normalizer does not depend on x). Dividing step t by a_t
    (the surrogate cost c~_t / a_t whose Q_uu^-1 is the covariance directly) gives
      Q~_t = c~_t / a_t + (a_t+1 / a_t) E[V~_t+1(x')],
    so the value function from step t+1 enters rescaled by (w_t+1 + eta) / (w_t + eta): exact for
    any weights (as the reference code's BADMM backward pass does), not only constant ones.
    """

    policy: LinearGaussianPolicy
    weights: np.ndarray

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=float)
        if w.shape != (self.policy.T,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f'KLPenalty.weights must be [{self.policy.T}] finite and >= 0; got shape {w.shape}')
        object.__setattr__(self, 'weights', w)


class EtaSearchError(RuntimeError):
    pass


class KLTrajOpt:
    def __init__(self, config: TrajOptConfig = TrajOptConfig()):
        self.config = config

    def solve_eta(self, eta: float, cost: CostExpansion, dyn: LinearGaussianDynamics,
                  prior: LinearGaussianPolicy, pkl: tuple[np.ndarray, np.ndarray],
                  penalty: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                  ) -> tuple[LinearGaussianPolicy, float]:
        """Backward pass at eta, raising eta geometrically while Q_uu is not positive definite
        (with a penalty: on the per-step normalized surrogate of KLPenalty, exactly).

        Large eta weights -log p_prior (PD) over the cost (possibly indefinite, e.g. the log term of
        the end-effector cost), so raising eta always repairs Q_uu unless the prior itself is bad.
        penalty: (w [T], w_t * QKLm_t, w_t * QKLv_t) of a KLPenalty, or None.
        """
        PKLm, PKLv = pkl
        step = max(eta, 1e-4)
        while True:
            value_scale = None
            if penalty is None:
                Cm, cv = cost.Cm / eta + PKLm, cost.cv / eta + PKLv
            else:
                w, wQm, wQv = penalty
                a = eta + w                                    # per-step entropy weight (KLPenalty)
                Cm = (cost.Cm + wQm + eta * PKLm) / a[:, None, None]
                cv = (cost.cv + wQv + eta * PKLv) / a[:, None]
                value_scale = np.append(a[1:] / a[:-1], 1.0)
            try:
                return backward_pass(Cm, cv, dyn, value_scale), eta
            except NotPositiveDefinite as err:
                if eta >= self.config.max_eta:
                    raise EtaSearchError(
                        f'Q_uu is not positive definite at t={err.t} even at eta={eta:.3g} '
                        f'(max_eta): the prior controller covariance or the cost is degenerate') from None
                eta = min(eta + step, self.config.max_eta)
                step *= 2.0

    def update(self, prior: LinearGaussianPolicy, dyn: LinearGaussianDynamics, cost: CostExpansion,
               kl_step: float, eta0: float = 1.0, penalty: KLPenalty | None = None) -> TrajUpdate:
        """New controller with KL(p_new || prior) ~= kl_step (total over the horizon), minimizing
        the expected cost (plus the weighted KL to penalty.policy when a penalty is given)."""
        if not (kl_step > 0 and math.isfinite(kl_step)):
            raise ValueError(f'kl_step must be positive and finite; got {kl_step}')
        cfg = self.config
        pkl = kl_penalty_terms(prior)
        pen = None
        if penalty is not None:
            QKLm, QKLv = kl_penalty_terms(penalty.policy)
            w = penalty.weights
            pen = (w, w[:, None, None] * QKLm, w[:, None] * QKLv)
        lo, hi = cfg.min_eta, cfg.max_eta          # bracket on eta, in log space
        lo_con = hi_con = None                     # log(KL/eps) at the bracket ends, once known
        eta = float(np.clip(eta0, lo, hi))
        for it in range(1, cfg.max_iterations + 1):
            policy, eta = self.solve_eta(eta, cost, dyn, prior, pkl, pen)
            mu, sigma = forward_pass(policy, dyn)
            kl = float(np.sum(traj_kl(mu, sigma, policy, prior)))
            con = kl - kl_step
            log.debug('eta search %d: eta=%.4g KL=%.4g target=%.4g', it, eta, kl, kl_step)
            if abs(con) <= cfg.kl_tolerance * kl_step:
                return TrajUpdate(policy, eta, kl, kl_step, it, True, mu, sigma)
            lcon = math.log(max(kl, 1e-300) / kl_step)
            if con < 0:                            # KL too small: eta too large
                hi, hi_con = eta, lcon
                if eta <= cfg.min_eta * (1 + 1e-9):
                    return TrajUpdate(policy, eta, kl, kl_step, it, False, mu, sigma)
            else:
                lo, lo_con = eta, lcon
                if eta >= cfg.max_eta * (1 - 1e-9):
                    return TrajUpdate(policy, eta, kl, kl_step, it, False, mu, sigma)
            eta = self._next_eta(lo, hi, lo_con, hi_con, eta, lcon)
        log.warning('eta search did not converge in %d iterations (KL %.4g, target %.4g)',
                    cfg.max_iterations, kl, kl_step)
        return TrajUpdate(policy, eta, kl, kl_step, cfg.max_iterations, False, mu, sigma)

    @staticmethod
    def _next_eta(lo: float, hi: float, lo_con: float | None, hi_con: float | None,
                  eta: float, lcon: float) -> float:
        """Next eta inside (lo, hi), from lcon = log(KL / eps) at the last eta.

        Bracketed: the zero of the secant of log KL against log eta through the bracket ends
        (kept 10% inside them so the bracket shrinks from both sides). Not yet bracketed: a
        Newton step with slope d log KL / d log eta = -1 (KL ~ 1/eta between the limits of the
        constraint being tight and inactive), at most x100 per step.
        """
        llo, lhi = math.log(lo), math.log(hi)
        if lo_con is not None and hi_con is not None and lo_con > hi_con:
            frac = lo_con / (lo_con - hi_con)      # zero of the line through both ends
            frac = min(max(frac, 0.1), 0.9)
            return math.exp(llo + frac * (lhi - llo))
        step = min(max(lcon, -math.log(100.0)), math.log(100.0))
        new = math.log(eta) + step
        if not llo < new < lhi:                    # never leave the bracket: bisect instead
            return math.exp(0.5 * (llo + lhi))
        return math.exp(new)


def estimate_cost(policy: LinearGaussianPolicy, dyn: LinearGaussianDynamics,
                  cost: CostExpansion) -> np.ndarray:
    """Expected cost per step [T] of the policy under the dynamics and the quadratic cost model."""
    return expected_cost(*forward_pass(policy, dyn), cost)


def expected_cost(mu: np.ndarray, sigma: np.ndarray, cost: CostExpansion) -> np.ndarray:
    """Expected cost per step [T] of state-action marginals mu [T, dXU], sigma [T, dXU, dXU]."""
    return (cost.cc + np.einsum('ti,ti->t', mu, cost.cv)
            + 0.5 * np.einsum('ti,tij,tj->t', mu, cost.Cm, mu)
            + 0.5 * np.einsum('tij,tji->t', cost.Cm, sigma))
