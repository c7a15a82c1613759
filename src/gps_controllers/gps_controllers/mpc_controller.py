"""The MPC teacher of MPC-guided policy search run on the arm (Zhang, Kahn, Levine, Abbeel, ICRA 2016,
Sec. IV): every `replan_every` steps an H-step LQR is re-solved from the measured state on the fitted
time-varying linear dynamics, and the solved feedback law u = K_j x + k_j is held until the next solve.

The teacher travels as data (`MPCSpec`): its problem, gps_core.traj_opt.mpc.MPCProblem,

    Fm  [T, dX, dX+dU]  fitted mean dynamics x_t+1 = Fm_t [x_t; u_t] + fv_t (row T-1 unused)
    fv  [T, dX]
    Cm  [T, dXU, dXU]   per-step quadratic cost 1/2 z^T Cm_t z + cv_t^T z of z = [x; u]: tracking of the
    cv  [T, dXU]        offline trajectory solution plus closeness to the policy (gps_core.traj_opt.mpc)
    horizon             H, steps per window
    replan_every        steps between re-solves, 1 <= replan_every <= H

plus `noise` [T, dU], the trial's exploration noise (drawn and scaled by the trainer, added to the
teacher's action as a NetworkSpec's noise is), or None. All plain float64 arrays and two integers: a
message carries them flattened row-major, the shapes following from T, dX, dU.

`command` allocates nothing on held steps; a re-solve (H backward steps on preallocated buffers) is the
only work beyond the matrix-vector product. The problem is checked convex when built, so a re-solve
cannot fail mid-trial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_core.traj_opt.mpc import InvalidMPCProblem, MPCProblem, RecedingHorizonLaw


@dataclass(frozen=True)
class MPCSpec:
    """u_t = MPC_t(x_t) + noise_t: problem (see the module docstring); noise [T, dU] or None."""

    problem: MPCProblem
    noise: np.ndarray | None = None


class MPCController:
    """The receding-horizon teacher as a controller of horizon T (the gps_controllers.controller Protocol)."""

    def __init__(self, spec: MPCSpec, T: int, dX: int, dU: int) -> None:
        problem = spec.problem
        if not isinstance(problem, MPCProblem):
            raise InvalidController(f'an MPC controller needs an MPCProblem, got {type(problem).__name__}')
        if (problem.T, problem.dX, problem.dU) != (T, dX, dU):
            raise InvalidController(f'MPC problem is for T={problem.T}, dX={problem.dX}, dU={problem.dU}; '
                                    f'this trial has T={T}, dX={dX}, dU={dU}')
        if spec.noise is None or np.size(spec.noise) == 0:
            self._noise = None
        else:
            noise = np.array(spec.noise, dtype=np.float64, copy=True)
            if noise.shape != (T, dU):
                raise InvalidController(f'MPC noise must be [T, du] = [{T}, {dU}], got {list(noise.shape)}')
            if not np.isfinite(noise).all():
                raise InvalidController(f'MPC noise has {int((~np.isfinite(noise)).sum())} non-finite values')
            noise.setflags(write=False)
            self._noise = noise
        self._law = RecedingHorizonLaw(problem)
        self._T, self._dX, self._dU = int(T), int(dX), int(dU)

    @classmethod
    def from_arrays(cls, Fm: np.ndarray, fv: np.ndarray, Cm: np.ndarray, cv: np.ndarray, horizon: int,
                    replan_every: int, noise: np.ndarray | None, T: int, dX: int, dU: int) -> MPCController:
        """From the fields as they arrive (e.g. decoded from a message); InvalidController says what is wrong."""
        try:
            problem = MPCProblem(Fm, fv, Cm, cv, horizon, replan_every)
        except InvalidMPCProblem as exc:
            raise InvalidController(f'MPC problem: {exc}') from exc
        return cls(MPCSpec(problem, noise), T, dX, dU)

    @property
    def T(self) -> int:
        return self._T

    @property
    def dX(self) -> int:
        return self._dX

    @property
    def dU(self) -> int:
        return self._dU

    @property
    def image_shape(self) -> None:
        return None  # sees the state only

    @property
    def solves(self) -> int:
        """Re-solves so far (T / replan_every rounded up, for a trial without skipped steps)."""
        return self._law.solves

    def command(self, t: int, x: np.ndarray, out: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """u_t = K_{t-t0} x + k_{t-t0} (+ noise_t) into out [dU], re-solving from x when due."""
        if not 0 <= t < self._T:
            raise IndexError(f'step t={t} outside the horizon [0, {self._T})')
        self._law.action(t, x, out)
        if self._noise is not None:
            out += self._noise[t]
        return out
