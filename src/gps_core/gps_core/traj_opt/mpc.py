"""The receding-horizon teacher of MPC-guided policy search (Zhang, Kahn, Levine, Abbeel, ICRA 2016,
"Learning Deep Control Policies for Autonomous Aerial Vehicles with MPC-Guided Policy Search", Sec. IV).

During training an MPC teacher acts on the full state x: from the measured x_t0 it solves an H-step LQR
on the fitted time-varying linear dynamics and runs the resulting feedback law until the next re-solve.
Its per-step cost (`teacher_cost`) tracks the offline (KL-constrained) trajectory solution and stays
close to the current policy's linearization:

    c_t(z) = w_track * 1/2 (z - mu_t)^T W_t (z - mu_t) + w_pol * eta * (-log pi_lin,t(u | x)),   z = [x; u]

  mu_t   [dXU]       the offline solution's state-action mean under the fitted dynamics;
  W_t    [dXU, dXU]  the positive semidefinite part of the task cost's Hessian at step t: deviations are
                     measured in the task's own curvature, so the teacher's feedback is the task's LQR
                     feedback (for a linear-quadratic task, tracking its optimal trajectory with W = C is
                     the optimal controller from every state); only the feedforward aims at mu;
  eta               the C-step's dual: the weight the trust-region step gave -log pi_lin against the cost,
                     so the closeness term keeps its meaning as the policy's covariance and the cost scale
                     change between iterations.

Each step's cost is convex with a positive definite action block, so every window's Q_uu is positive
definite (the value function of a convex quadratic under affine dynamics stays convex): a re-solve on
the arm cannot fail. `MPCProblem` checks that once, where the problem is built.

Certainty equivalence: with affine dynamics and a quadratic cost the window's gains K, k do not depend on
x_t0; the measured state enters through u = K x + k (and the plan returned with them). Re-solving matters
through the horizon (a window ends at t0 + H with no terminal value, where the offline solve sees the
whole trial) and through whatever later makes the solve state-dependent (action limits, refitted models).

Shapes: Fm [T, dX, dX+dU], fv [T, dX] (x_t+1 = Fm_t [x_t; u_t] + fv_t; entry T-1 unused),
Cm [T, dXU, dXU], cv [T, dXU] (c_t = 1/2 z^T Cm_t z + cv_t^T z + const); a window of H steps from t0:
K [H, dU, dX], k [H, dU], plan X [H, dX] (X[0] = x_t0), U [H, dU].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from gps_core.policies.linear_gaussian import LinearGaussianPolicy
from gps_core.traj_opt.lqr import NotPositiveDefinite, kl_penalty_terms


@dataclass(frozen=True)
class MPCConfig:
    """Settings of the MPC teacher.

    horizon: H, steps per window; replan_every: re-solve every this many steps (1 <= replan_every <=
    horizon: a window must cover the steps until the next re-solve); tracking_weight: w_track on the
    tracking term; policy_weight: w_pol, multiplying the C-step's eta on -log pi_lin (0: track only).
    """

    horizon: int = 10
    replan_every: int = 1
    tracking_weight: float = 1.0
    policy_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ('horizon', 'replan_every'):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f'{name}: {v!r} is not an integer >= 1 (expected a number of steps >= 1)')
        if self.replan_every > self.horizon:
            raise ValueError(f'replan_every: {self.replan_every} exceeds horizon {self.horizon} '
                             f'(expected replan_every <= horizon: the law runs out before the next re-solve)')
        if not (math.isfinite(self.tracking_weight) and self.tracking_weight > 0):
            raise ValueError(f'tracking_weight: {self.tracking_weight!r} is not a finite number > 0 (expected a weight > 0)')
        if not (math.isfinite(self.policy_weight) and self.policy_weight >= 0):
            raise ValueError(f'policy_weight: {self.policy_weight!r} is not a finite number >= 0 (expected a weight >= 0, '
                             f'0: track only)')


class InvalidMPCProblem(ValueError):
    """An MPC problem that cannot be solved as given; the message names the field."""


@dataclass(frozen=True)
class MPCProblem:
    """What the teacher solves, as plain arrays (read-only float64 copies).

    Fm [T, dX, dX+dU], fv [T, dX]: mean fitted dynamics; Cm [T, dXU, dXU] symmetric positive
    semidefinite with a positive definite action block, cv [T, dXU]: the per-step quadratic cost;
    horizon H >= 1 and 1 <= replan_every <= H. Raises InvalidMPCProblem naming the bad field.
    """

    Fm: np.ndarray
    fv: np.ndarray
    Cm: np.ndarray
    cv: np.ndarray
    horizon: int
    replan_every: int

    def __post_init__(self) -> None:
        arrays = {}
        for name in ('Fm', 'fv', 'Cm', 'cv'):
            a = np.array(getattr(self, name), dtype=np.float64, order='C', copy=True)
            if not np.all(np.isfinite(a)):
                raise InvalidMPCProblem(f'{name} has {int((~np.isfinite(a)).sum())} non-finite values')
            a.setflags(write=False)
            arrays[name] = a
            object.__setattr__(self, name, a)
        Fm = arrays['Fm']
        if Fm.ndim != 3 or Fm.shape[0] < 1 or Fm.shape[2] <= Fm.shape[1] or Fm.shape[1] < 1:
            raise InvalidMPCProblem(f'Fm must be [T, dX, dX+dU] with T, dX, dU >= 1, got {list(Fm.shape)}')
        T, dX, dXU = Fm.shape
        expected = {'fv': (T, dX), 'Cm': (T, dXU, dXU), 'cv': (T, dXU)}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise InvalidMPCProblem(f'{name} must be {list(shape)} to match Fm {list(Fm.shape)}, '
                                        f'got {list(arrays[name].shape)}')
        for name in ('horizon', 'replan_every'):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or int(v) != v or v < 1:
                raise InvalidMPCProblem(f'{name} must be an integer >= 1, got {v!r}')
            object.__setattr__(self, name, int(v))
        if self.replan_every > self.horizon:
            raise InvalidMPCProblem(f'replan_every {self.replan_every} exceeds horizon {self.horizon}')
        _check_convex(arrays['Cm'], dX)

    @property
    def T(self) -> int:
        return self.Fm.shape[0]

    @property
    def dX(self) -> int:
        return self.Fm.shape[1]

    @property
    def dU(self) -> int:
        return self.Fm.shape[2] - self.Fm.shape[1]


def _check_convex(Cm: np.ndarray, dX: int) -> None:
    """Cm_t symmetric PSD with a PD action block, for every t (what makes every window solvable)."""
    scale = max(1.0, float(np.abs(Cm).max()))
    asym = float(np.abs(Cm - np.swapaxes(Cm, 1, 2)).max())
    if asym > 1e-9 * scale:
        raise InvalidMPCProblem(f'Cm is not symmetric (largest asymmetry {asym:.3g})')
    low = np.linalg.eigvalsh(Cm).min(axis=1)
    if np.any(low < -1e-9 * scale):
        t = int(np.argmin(low))
        raise InvalidMPCProblem(f'Cm[{t}] is not positive semidefinite (eigenvalue {low[t]:.3g})')
    low_u = np.linalg.eigvalsh(Cm[:, dX:, dX:]).min(axis=1)
    if np.any(low_u <= 1e-12 * scale):
        t = int(np.argmin(low_u))
        raise InvalidMPCProblem(f'the action block of Cm[{t}] is not positive definite (eigenvalue {low_u[t]:.3g})')


def psd_part(Cm: np.ndarray) -> np.ndarray:
    """Each symmetric Cm_t [.., n, n] with its negative eigenvalues set to zero (the nearest PSD
    matrix in the Frobenius norm): a tracking metric must be a metric, and a cost Hessian need not be
    (the end-effector cost's log term is concave away from the target)."""
    S = 0.5 * (Cm + np.swapaxes(Cm, -1, -2))
    w, V = np.linalg.eigh(S)
    out = (V * np.maximum(w, 0.0)[..., None, :]) @ np.swapaxes(V, -1, -2)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


def teacher_cost(mu: np.ndarray, cost_Cm: np.ndarray, policy: LinearGaussianPolicy, policy_scale: float,
                 tracking_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(Cm [T, dXU, dXU], cv [T, dXU]) of the teacher's cost (module docstring), dropping constants.

    mu [T, dXU]: the reference to track; cost_Cm [T, dXU, dXU]: the task cost's Hessian (its PSD part
    is the metric); policy: pi_lin; policy_scale: the weight on -log pi_lin (w_pol * eta).
    """
    W = tracking_weight * psd_part(cost_Cm)
    Cm = W.copy()
    cv = -np.einsum('tij,tj->ti', W, mu)
    if policy_scale > 0:
        PKLm, PKLv = kl_penalty_terms(policy)
        Cm += policy_scale * PKLm
        cv += policy_scale * PKLv
    return 0.5 * (Cm + np.swapaxes(Cm, 1, 2)), cv


class HorizonSolver:
    """The H-step LQR of one window, on buffers allocated once (this runs on the arm between steps).

    The problem is held in augmented form, z = [u; x; 1] (actions first, so every block used below is a
    slice): per step M_t [dZ, dZ] = the cost 1/2 z^T M_t z, G_t [dX+1, dZ] = the dynamics [x'; 1] = G_t z,
    dZ = dU + dX + 1. With V [dX+1, dX+1] the value of [x; 1] after the step, Q_t = M_t + G_t^T V G_t;
    Q_uu = L L^T (Cholesky), W = L^-1 Q_u(x1), [K | k] = -L^-T W and the value before the step is
    Q_(x1)(x1) - W^T W, symmetric by construction (Q_xx + Q_xu K in lqr.backward_pass).

    `solve` writes K [n, dU, dX], k [n, dU] (and, given x0, the plan X [n, dX], U [n, dU]) into the
    first n rows of its buffers and returns n = min(H, T - t0): a window never runs past the trial. The
    rows stay valid until the next solve.
    """

    def __init__(self, Fm: np.ndarray, fv: np.ndarray, Cm: np.ndarray, cv: np.ndarray, horizon: int):
        T, dX, dXU = Fm.shape
        dU = dXU - dX
        self.T, self.dX, self.dU, self.horizon = T, dX, dU, int(horizon)
        dZ = dU + dX + 1
        order = np.r_[dX:dXU, 0:dX]                  # [u; x] from [x; u]
        M = np.zeros((T, dZ, dZ))
        M[:, :dXU, :dXU] = Cm[:, order][:, :, order]
        M[:, :dXU, dXU] = cv[:, order]
        M[:, dXU, :dXU] = cv[:, order]
        G = np.zeros((T, dX + 1, dZ))
        G[:, :dX, :dXU] = Fm[:, :, order]
        G[:, :dX, dXU] = fv
        G[:, dX, dXU] = 1.0
        self._M, self._G = M, G
        self._GT = np.ascontiguousarray(np.swapaxes(G, 1, 2))
        self._Fm, self._fv = Fm, fv
        H = self.horizon
        self.K = np.zeros((H, dU, dX))
        self.k = np.zeros((H, dU))
        self.X = np.zeros((H, dX))
        self.U = np.zeros((H, dU))
        self._Q = np.empty((dZ, dZ))
        self._VG = np.empty((dX + 1, dZ))
        self._V = np.empty((dX + 1, dX + 1))

    def solve(self, t0: int, x0: np.ndarray | None = None) -> int:
        """Backward pass over steps t0 .. t0+n-1 with zero value after the window; with x0 [dX] also the
        plan from x0. Raises NotPositiveDefinite(t) if Q_uu is not positive definite at step t (never
        for an MPCProblem's cost)."""
        T, dX, dU = self.T, self.dX, self.dU
        if not 0 <= t0 < T:
            raise IndexError(f'window start t0={t0} outside the trial [0, {T})')
        n = min(self.horizon, T - t0)
        potrf, trtrs = lapack.dpotrf, lapack.dtrtrs
        Q, VG, V = self._Q, self._VG, self._V
        for j in range(n - 1, -1, -1):
            t = t0 + j
            if j == n - 1:                          # last step of the window: no value after it
                Q[...] = self._M[t]
            else:
                np.matmul(V, self._G[t], out=VG)
                np.matmul(self._GT[t], VG, out=Q)
                Q += self._M[t]
            L, info = potrf(Q[:dU, :dU], lower=True, clean=True)
            if info != 0:
                raise NotPositiveDefinite(t)
            W, info = trtrs(L, Q[:dU, dU:], lower=True)
            if info != 0:
                raise NotPositiveDefinite(t)
            Kk, info = trtrs(L, W, lower=True, trans=1)
            self.K[j] = Kk[:, :dX]
            self.k[j] = Kk[:, dX]
            np.negative(self.K[j], out=self.K[j])
            np.negative(self.k[j], out=self.k[j])
            np.matmul(W.T, W, out=V)
            np.subtract(Q[dU:, dU:], V, out=V)
        if x0 is not None:
            self._plan(t0, n, x0)
        return n

    def _plan(self, t0: int, n: int, x0: np.ndarray) -> None:
        dX, X, U = self.dX, self.X, self.U
        X[0] = x0
        for j in range(n):
            np.matmul(self.K[j], X[j], out=U[j])
            U[j] += self.k[j]
            if j + 1 < n:
                F = self._Fm[t0 + j]
                X[j + 1] = F[:, :dX] @ X[j] + F[:, dX:] @ U[j] + self._fv[t0 + j]


@dataclass(frozen=True)
class HorizonPlan:
    """One window from t0: K [n, dU, dX], k [n, dU]; the plan X [n, dX] (X[0] = x_t0), U [n, dU]."""

    t0: int
    K: np.ndarray
    k: np.ndarray
    X: np.ndarray
    U: np.ndarray


def solve_horizon(Fm: np.ndarray, fv: np.ndarray, Cm: np.ndarray, cv: np.ndarray, t0: int,
                  x0: np.ndarray, horizon: int) -> HorizonPlan:
    """The feedback / feedforward of steps t0 .. t0+n-1, n = min(horizon, T - t0), for the quadratic
    cost (Cm, cv) under the dynamics (Fm, fv), and the plan it predicts from x0 [dX]."""
    Fm, fv, Cm, cv = (np.asarray(a, dtype=float) for a in (Fm, fv, Cm, cv))
    T, dX, dXU = Fm.shape
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (dX,):
        raise ValueError(f'x0 must be [{dX}], got {list(x0.shape)}')
    solver = HorizonSolver(Fm, fv, Cm, cv, horizon)
    n = solver.solve(int(t0), x0)
    return HorizonPlan(int(t0), solver.K[:n].copy(), solver.k[:n].copy(), solver.X[:n].copy(), solver.U[:n].copy())


class RecedingHorizonLaw:
    """The teacher's noise-free action u_t(x): re-solve from x at t = 0 and every replan_every steps
    after the last solve, and run that window's law u = K_{t-t0} x + k_{t-t0} in between.

    The one copy of the teacher's loop: the arm's controller (gps_controllers.mpc_controller) and the
    algorithm's replay of a trial (`teacher_actions`) both act through it. A step outside the last
    window (a skipped state, an earlier t) re-solves from there.
    """

    def __init__(self, problem: MPCProblem):
        self.problem = problem
        self._solver = HorizonSolver(problem.Fm, problem.fv, problem.Cm, problem.cv, problem.horizon)
        self._t0 = -1
        self._n = 0
        self.solves = 0

    def reset(self) -> None:
        self._t0, self._n = -1, 0

    def action(self, t: int, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """u_t for state x [dX] into out [dU] and returned."""
        p, j = self.problem, t - self._t0
        if self._t0 < 0 or j < 0 or j >= p.replan_every or j >= self._n:
            self._n = self._solver.solve(t)
            self._t0, j = t, 0
            self.solves += 1
        np.matmul(self._solver.K[j], x, out=out)
        out += self._solver.k[j]
        return out


def teacher_actions(problem: MPCProblem, X: np.ndarray) -> np.ndarray:
    """U [N, T, dU]: the teacher's noise-free actions along recorded states X [N, T, dX], each trial
    replayed from t = 0 through the same law that ran on the arm (so the exploration noise that was
    added there, and any clipping, are not part of it)."""
    X = np.asarray(X, dtype=float)
    N, T, dX = X.shape
    if T != problem.T or dX != problem.dX:
        raise ValueError(f'X must be [N, {problem.T}, {problem.dX}], got {list(X.shape)}')
    law = RecedingHorizonLaw(problem)
    U = np.empty((N, T, problem.dU))
    for n in range(N):
        law.reset()
        for t in range(T):
            law.action(t, X[n, t], U[n, t])
    return U
