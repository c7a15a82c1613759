"""Joint state -> GPS state vector x, with end-effector points from the URDF (pinocchio).

The state the trajectory controllers see (Levine, Finn, Darrell, Abbeel, JMLR'16, sec. 6:
joint angles and velocities plus end-effector points and their velocities) is

    x = [q (nj), qd (nj), (p - p_target).ravel() (3P), pd.ravel() (3P)],   dX = 2 nj + 6 P

where p [P, 3] are P points rigidly attached to `ee_link` (offsets given in that link's frame)
expressed in the frame of `base_link`, p_target [P, 3] the same points at the target pose, and
pd [P, 3] their linear velocities pd_i = J_i(q) qd, J_i the LOCAL_WORLD_ALIGNED frame Jacobian
shifted to point i. Three non-collinear points fix the full pose, so a cost on them is a pose cost.

All arrays are in `joint_names` order: joints are mapped to pinocchio's configuration by name,
never by index. This module must not import rclpy (it runs inside the controller node's
500 Hz loop and in the in-process agent).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pinocchio as pin

from .urdf_limits import read_joint_limits

_LWA = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
_ROTATION_TOL = 1e-6


class StateEncoder:
    """Encode (q, qd, targets) into the GPS state x using a pinocchio model of the URDF.

    Args:
        urdf_path: robot description.
        joint_names: the nj joints making up q and qd, in this order. Joints of the URDF not
            listed stay at their neutral position (e.g. a gripper).
        ee_link: link the end-effector points are attached to (e.g. "tool0").
        ee_points: [P, 3] point offsets in the ee_link frame (m).
        base_link: link whose frame positions and velocities are expressed in; it must be
            fixed to the root. Default: the URDF root link (pinocchio's world).
    """

    def __init__(
        self,
        urdf_path: str | Path,
        joint_names: Sequence[str],
        ee_link: str,
        ee_points: np.ndarray | Sequence[Sequence[float]],
        base_link: str | None = None,
    ) -> None:
        try:
            self._model = pin.buildModelFromUrdf(str(urdf_path))
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"pinocchio cannot build a model from {str(urdf_path)!r}: {exc}") from exc
        self._data = self._model.createData()
        self._joint_names = tuple(joint_names)
        self._map_joints()
        self._read_limits(urdf_path)

        offsets = np.array(ee_points, dtype=float)
        if offsets.ndim != 2 or offsets.shape[1] != 3 or offsets.shape[0] < 1:
            raise ValueError(f"ee_points must have shape [P, 3] with P >= 1, got {offsets.shape}")
        if not np.all(np.isfinite(offsets)):
            raise ValueError(f"ee_points has non-finite values: {offsets.tolist()}")
        self._offsets = offsets  # [P, 3] in the ee_link frame
        self._ee_link = ee_link
        self._ee_frame = self._link_frame_id(ee_link, "ee_link")
        self._base_link = base_link
        self._set_base(base_link)

        nj, n_pts = len(self._joint_names), offsets.shape[0]
        self._dX = 2 * nj + 6 * n_pts
        self._q_slice = slice(0, nj)
        self._qd_slice = slice(nj, 2 * nj)
        self._ee_slice = slice(2 * nj, 2 * nj + 3 * n_pts)
        self._ee_vel_slice = slice(2 * nj + 3 * n_pts, self._dX)
        # hot-path buffers
        self._q_full = pin.neutral(self._model)
        self._v_full = np.zeros(self._model.nv)
        self._omega_x = np.zeros((3, 3))  # skew(omega)

    # ------------------------------------------------------------------ setup
    def _map_joints(self) -> None:
        model, names = self._model, self._joint_names
        available = [n for n in list(model.names)[1:]]  # [0] is 'universe'
        if not names:
            raise ValueError(f"joint_names is empty; the URDF has joints {available}")
        if len(set(names)) != len(names):
            raise ValueError(f"joint_names has duplicates: {list(names)}")
        unknown = [n for n in names if not model.existJointName(n)]
        if unknown:
            raise ValueError(f"joints {unknown} not in the URDF; it has {available}")
        single_j, single_q, cont_j, cont_q, v_idx = [], [], [], [], []
        for j, name in enumerate(names):
            joint = model.joints[model.getJointId(name)]
            if joint.nv != 1 or joint.nq not in (1, 2):
                raise ValueError(f"joint {name!r} ({joint.shortname()}) has {joint.nq} "
                                 f"position / {joint.nv} velocity coordinates; "
                                 f"StateEncoder handles one-dof joints only")
            if joint.nq == 1:  # revolute / prismatic
                single_j.append(j)
                single_q.append(joint.idx_q)
            else:  # continuous: pinocchio stores (cos, sin)
                cont_j.append(j)
                cont_q.append(joint.idx_q)
            v_idx.append(joint.idx_v)
        self._single_j, self._single_q = np.array(single_j, int), np.array(single_q, int)
        self._cont_j, self._cont_q = np.array(cont_j, int), np.array(cont_q, int)
        self._v_idx = np.array(v_idx, int)

    def _read_limits(self, urdf_path: str | Path) -> None:
        limits = read_joint_limits(urdf_path)
        missing = [n for n in self._joint_names if n not in limits]
        if missing:
            raise ValueError(f"joints {missing} have no limits in {str(urdf_path)!r}")
        lim = [limits[n] for n in self._joint_names]
        self._effort_limits = np.array([x.effort for x in lim])
        self._velocity_limits = np.array([x.velocity for x in lim])
        self._position_limits = np.array([[x.lower, x.upper] for x in lim])

    def _link_frame_id(self, link: str, what: str) -> int:
        if not self._model.existFrame(link, pin.FrameType.BODY):
            links = [f.name for f in self._model.frames if f.type == pin.FrameType.BODY]
            raise ValueError(f"{what} {link!r} is not a link of the URDF; it has {links}")
        return self._model.getFrameId(link, pin.FrameType.BODY)

    def _set_base(self, base_link: str | None) -> None:
        """Precompute the fixed pose of base_link in pinocchio's world."""
        self._base_R = np.eye(3)  # rotation world <- base
        self._base_t = np.zeros(3)
        if base_link is None:
            self._base_is_world = True
            return
        fid = self._link_frame_id(base_link, "base_link")
        if self._model.frames[fid].parentJoint != 0:
            raise ValueError(f"base_link {base_link!r} moves with joint "
                             f"{self._model.names[self._model.frames[fid].parentJoint]!r}; "
                             f"it must be fixed to the URDF root")
        data = self._model.createData()
        pin.framesForwardKinematics(self._model, data, pin.neutral(self._model))
        pose = data.oMf[fid]
        self._base_R = pose.rotation.copy()
        self._base_t = pose.translation.copy()
        self._base_is_world = bool(np.array_equal(self._base_R, np.eye(3))
                                   and not np.any(self._base_t))

    # ------------------------------------------------------------- properties
    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._joint_names

    @property
    def ee_link(self) -> str:
        return self._ee_link

    @property
    def base_link(self) -> str | None:
        return self._base_link

    @property
    def ee_points(self) -> np.ndarray:
        """[P, 3] point offsets in the ee_link frame."""
        return self._offsets.copy()

    @property
    def n_points(self) -> int:
        return self._offsets.shape[0]

    @property
    def dX(self) -> int:
        """State dimension 2 nj + 6 P."""
        return self._dX

    @property
    def q_slice(self) -> slice:
        return self._q_slice

    @property
    def qd_slice(self) -> slice:
        return self._qd_slice

    @property
    def ee_slice(self) -> slice:
        """Slice of x holding (p - p_target).ravel(), [3P]."""
        return self._ee_slice

    @property
    def ee_vel_slice(self) -> slice:
        """Slice of x holding the point velocities pd.ravel(), [3P]."""
        return self._ee_vel_slice

    @property
    def effort_limits(self) -> np.ndarray:
        """[nj] from the URDF <limit effort>."""
        return self._effort_limits.copy()

    @property
    def velocity_limits(self) -> np.ndarray:
        """[nj] from the URDF <limit velocity>."""
        return self._velocity_limits.copy()

    @property
    def position_limits(self) -> np.ndarray:
        """[nj, 2] (lower, upper) from the URDF; +-inf for continuous joints."""
        return self._position_limits.copy()

    # ---------------------------------------------------------------- queries
    def ee_pose(self, q: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Pose of ee_link in the base frame: (position [3], rotation [3, 3])."""
        self._load_q(self._check(q, (len(self._joint_names),), "q"))
        pin.forwardKinematics(self._model, self._data, self._q_full)
        pose = pin.updateFramePlacement(self._model, self._data, self._ee_frame)
        R, t = pose.rotation, pose.translation
        if self._base_is_world:
            return t.copy(), R.copy()
        return self._base_R.T @ (t - self._base_t), self._base_R.T @ R

    def ee_points_world(self, q: np.ndarray | Sequence[float]) -> np.ndarray:
        """[P, 3] positions of the end-effector points in the base frame for q [nj]."""
        self._load_q(self._check(q, (len(self._joint_names),), "q"))
        pin.forwardKinematics(self._model, self._data, self._q_full)
        pose = pin.updateFramePlacement(self._model, self._data, self._ee_frame)
        points = pose.translation + self._offsets @ pose.rotation.T
        return self._to_base(points)

    def targets_from_pose(self, position: np.ndarray | Sequence[float],
                          rotation: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """[P, 3] target points for ee_link at (position [3], rotation [3, 3]) in the base
        frame: position + rotation @ offset for each point."""
        t = self._check(position, (3,), "position")
        R = self._check(rotation, (3, 3), "rotation")
        if (np.abs(R.T @ R - np.eye(3)).max() > _ROTATION_TOL
                or np.linalg.det(R) <= 0.0):
            raise ValueError(f"rotation must be a proper rotation matrix "
                             f"(R^T R = I, det R = +1), got {R.tolist()}")
        return t + self._offsets @ R.T

    def encode(self, q: np.ndarray | Sequence[float], qd: np.ndarray | Sequence[float],
               targets: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """State x [dX] from q [nj], qd [nj] and target points [P, 3] (base frame).

        `out` ([dX], float64), if given, is filled and returned (no allocation).
        """
        nj = len(self._joint_names)
        q = self._check(q, (nj,), "q")
        qd = self._check(qd, (nj,), "qd")
        targets = self._check(targets, (self.n_points, 3), "targets")
        if out is None:
            out = np.empty(self._dX)
        elif out.shape != (self._dX,) or out.dtype != np.float64:
            raise ValueError(f"out must be a float64 array of shape ({self._dX},), "
                             f"got {out.dtype} {out.shape}")

        self._load_q(q)
        self._v_full[self._v_idx] = qd
        model, data = self._model, self._data
        pin.forwardKinematics(model, data, self._q_full, self._v_full)
        pose = pin.updateFramePlacement(model, data, self._ee_frame)
        twist = pin.getFrameVelocity(model, data, self._ee_frame, _LWA)
        arms = self._offsets @ pose.rotation.T  # [P, 3] offsets in world orientation
        points = pose.translation + arms
        # rigid-body point velocity v + omega x r  (== shifted LWA Jacobian times qd)
        w, W = twist.angular, self._omega_x
        W[0, 1], W[0, 2], W[1, 2] = -w[2], w[1], -w[0]
        W[1, 0], W[2, 0], W[2, 1] = w[2], -w[1], w[0]
        velocities = twist.linear + arms @ W.T

        out[self._q_slice] = q
        out[self._qd_slice] = qd
        if self._base_is_world:
            out[self._ee_slice] = (points - targets).ravel()
            out[self._ee_vel_slice] = velocities.ravel()
        else:
            out[self._ee_slice] = ((points - self._base_t) @ self._base_R - targets).ravel()
            out[self._ee_vel_slice] = (velocities @ self._base_R).ravel()
        return out

    # ---------------------------------------------------------------- helpers
    def _load_q(self, q: np.ndarray) -> None:
        """Write q [nj] into pinocchio's configuration vector by joint name."""
        self._q_full[self._single_q] = q[self._single_j]
        if self._cont_j.size:
            angles = q[self._cont_j]
            self._q_full[self._cont_q] = np.cos(angles)
            self._q_full[self._cont_q + 1] = np.sin(angles)

    def _to_base(self, points_world: np.ndarray) -> np.ndarray:
        if self._base_is_world:
            return points_world
        return (points_world - self._base_t) @ self._base_R

    @staticmethod
    def _check(value: np.ndarray | Sequence, shape: tuple[int, ...], what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=float)
        if arr.shape != shape:
            raise ValueError(f"{what} must have shape {shape}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} has non-finite values: {arr.tolist()}")
        return arr
