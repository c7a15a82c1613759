"""Initial controllers: a PD controller that holds the start pose, with exploration covariance."""
from __future__ import annotations

import numpy as np

from gps_core.policies.linear_gaussian import LinearGaussianPolicy


def hold_pose_controller(T: int, dX: int, q0: np.ndarray, q_index: np.ndarray, qd_index: np.ndarray,
                         kp: np.ndarray, kd: np.ndarray, init_var: np.ndarray) -> LinearGaussianPolicy:
    """u_t = -kp (q - q0) - kd qd + noise with covariance diag(init_var), for every t.

    q_index / qd_index: where the joint positions / velocities sit in x (each [dU]).
    kp, kd, init_var: per joint [dU] (scalars broadcast).
    """
    q0 = np.asarray(q0, dtype=float)
    dU = q0.shape[0]
    q_index, qd_index = np.asarray(q_index), np.asarray(qd_index)
    kp, kd, init_var = (np.broadcast_to(np.asarray(a, dtype=float), (dU,)).copy() for a in (kp, kd, init_var))
    if q_index.shape != (dU,) or qd_index.shape != (dU,):
        raise ValueError(f'q_index and qd_index must each hold {dU} state indices; '
                         f'got {q_index.shape} and {qd_index.shape}')
    if np.any(q_index >= dX) or np.any(qd_index >= dX):
        raise ValueError(f'q_index/qd_index point outside the state (dX={dX})')
    if np.any(init_var <= 0) or not np.all(np.isfinite(np.r_[kp, kd, init_var, q0])):
        raise ValueError('init_var must be positive and kp, kd, init_var, q0 finite')
    K = np.zeros((T, dU, dX))
    K[:, np.arange(dU), q_index] = -kp
    K[:, np.arange(dU), qd_index] = -kd
    k = np.tile(kp * q0, (T, 1))
    covar = np.tile(np.diag(init_var), (T, 1, 1))
    return LinearGaussianPolicy.from_covar(K, k, covar)
