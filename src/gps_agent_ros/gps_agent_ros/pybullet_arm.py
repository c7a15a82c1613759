"""A torque-controlled arm in PyBullet, free of ROS.

`PyBulletArm` loads any fixed-base URDF arm into its own PyBullet physics client and exposes
the interface a real arm has under ros2_control's `forward_effort_controller`:
joint positions/velocities out, joint torques in, with the robot compensating gravity itself
(as a UR e-Series does). The sim node wraps one of these; the in-process agent uses it directly.

Shapes: nj = len(joint_names); q, qd, torques: [nj], ordered as `joint_names` (never as the
URDF or PyBullet order).
"""
from __future__ import annotations

from types import TracebackType
from typing import Sequence

import numpy as np
import pybullet as p

# Physics step inside one control step. 1 ms keeps the 6-dof UR5e at +-150 N m stable with
# plenty of margin; see `substeps`.
DEFAULT_SUBSTEP_S = 0.001
GRAVITY_M_S2 = 9.81

_MOVABLE = (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)


class PyBulletArm:
    """Fixed-base arm under joint torque control, stepped at a fixed control period.

    Args:
        urdf_path: URDF file of the arm.
        joint_names: the controlled joints, in the order of every array this class takes or
            returns. Joints found by name. Movable joints not listed (e.g. a gripper's
            fingers) are held by PyBullet's default velocity motors and put back at their
            load-time position by every `reset`.
        dt: control period in seconds; `step` advances the simulation by exactly dt.
        substeps: physics steps per control step (physics time step dt / substeps);
            default round(dt / 1 ms).
        gravity_compensation: add the gravity torques g(q) at every physics substep on top
            of the commanded torques, as a UR in torque mode does.
        gui: open the PyBullet GUI instead of a headless (DIRECT) client.
        armature: reflected rotor inertia per controlled joint (kg m^2; scalar or [nj]), added
            to the diagonal of the joint-space inertia: (M(q) + diag(armature)) qdd = ... .
            URDF cannot express it and PyBullet has none, so it is emulated by torque
            shaping at every substep (see `_augmented_torques`).
        damping: viscous joint friction per controlled joint (N m s / rad; scalar or [nj]),
            on top of any URDF <dynamics damping>.

    The commanded torques are clipped to the URDF effort limits; g(q) is added after
    clipping (the commanded torque is what the controller sees as its action). Link and
    velocity-motor damping of PyBullet are switched off, so the dynamics are exactly those
    of the URDF (its <dynamics damping> included) unless `armature` / `damping` are given.

    Why armature: a UR joint is a motor behind a ~100:1 gearbox; the rotor's reflected inertia
    (~0.1 kg m^2, cf. MuJoCo Menagerie's UR5e) dwarfs the wrist links' own (2.6e-4 kg m^2 for
    wrist_3). Without it a few N m held for a 50 ms control step spin a wrist to PyBullet's
    100 rad/s cap.
    """

    def __init__(
        self,
        urdf_path: str,
        joint_names: Sequence[str],
        dt: float = 0.05,
        substeps: int | None = None,
        gravity_compensation: bool = True,
        gui: bool = False,
        *,
        armature: float | Sequence[float] = 0.0,
        damping: float | Sequence[float] = 0.0,
    ) -> None:
        if not (np.isfinite(dt) and dt > 0.0):
            raise ValueError(f"dt must be a positive finite number of seconds, got {dt!r}")
        if substeps is None:
            substeps = max(1, int(round(dt / DEFAULT_SUBSTEP_S)))
        if int(substeps) != substeps or substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
        names = tuple(joint_names)
        if not names:
            raise ValueError("joint_names is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"joint_names has duplicates: {list(names)}")

        self._dt = float(dt)
        self._substeps = int(substeps)
        self._gravity_compensation = bool(gravity_compensation)
        self._joint_names = names
        self._armature = self._per_joint(armature, "armature")
        self._damping = self._per_joint(damping, "damping")
        self._augmented = bool(np.any(self._armature) or np.any(self._damping))
        self._client = p.connect(p.GUI if gui else p.DIRECT)
        if self._client < 0:
            raise RuntimeError("could not connect to a PyBullet physics server")
        try:
            self._load(urdf_path)
        except BaseException:
            p.disconnect(physicsClientId=self._client)
            raise

    # ------------------------------------------------------------------ setup
    def _load(self, urdf_path: str) -> None:
        cid = self._client
        p.setGravity(0.0, 0.0, -GRAVITY_M_S2, physicsClientId=cid)
        p.setTimeStep(self._dt / self._substeps, physicsClientId=cid)
        try:
            # Without URDF_USE_INERTIA_FROM_FILE PyBullet replaces the URDF inertias by
            # ones computed from the collision shapes.
            self._body = p.loadURDF(str(urdf_path), useFixedBase=True,
                                    flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=cid)
        except p.error as exc:
            raise ValueError(f"PyBullet could not load URDF {urdf_path!r}: {exc}") from exc

        movable: dict[str, int] = {}
        lower, upper, effort, n_joints = {}, {}, {}, p.getNumJoints(self._body, physicsClientId=cid)
        for j in range(n_joints):
            info = p.getJointInfo(self._body, j, physicsClientId=cid)
            name, jtype = info[1].decode(), info[2]
            if jtype in _MOVABLE:
                movable[name] = j
                lower[name], upper[name], effort[name] = info[8], info[9], info[10]
            elif jtype != p.JOINT_FIXED:
                raise ValueError(f"joint {name!r} has a type PyBulletArm does not support "
                                 f"(only revolute, prismatic, fixed)")
        unknown = [n for n in self._joint_names if n not in movable]
        if unknown:
            raise ValueError(f"joints {unknown} are not movable joints of {urdf_path!r}; "
                             f"it has {sorted(movable)}")
        limits = np.array([effort[n] for n in self._joint_names], dtype=float)
        if not np.all(limits > 0.0):
            bad = [n for n, e in zip(self._joint_names, limits) if not e > 0.0]
            raise ValueError(f"joints {bad} have no positive effort limit in {urdf_path!r}")

        self._joint_idx = [movable[n] for n in self._joint_names]  # PyBullet indices
        self._all_movable_idx = sorted(movable.values())  # PyBullet's DOF order
        # position of each controlled joint inside PyBullet's DOF vector
        self._dof_of_joint = np.array([self._all_movable_idx.index(j) for j in self._joint_idx])
        self._n_dof = len(self._all_movable_idx)
        self._zeros_dof = [0.0] * self._n_dof
        self._effort_limits = limits
        lo = np.array([lower[n] for n in self._joint_names], dtype=float)
        hi = np.array([upper[n] for n in self._joint_names], dtype=float)
        unbounded = lo >= hi  # PyBullet reports continuous joints as lower >= upper
        lo[unbounded], hi[unbounded] = -np.inf, np.inf
        self._position_limits = np.stack([lo, hi], axis=1)

        for link in range(-1, n_joints):
            p.changeDynamics(self._body, link, linearDamping=0.0, angularDamping=0.0,
                             physicsClientId=cid)
        # The default velocity motors would fight any torque: switch them off.
        p.setJointMotorControlArray(self._body, self._joint_idx, p.VELOCITY_CONTROL,
                                    forces=[0.0] * len(self._joint_idx), physicsClientId=cid)
        # uncontrolled movable joints: where each starts, restored by every reset
        self._held = [(j, p.getJointState(self._body, j, physicsClientId=cid)[0])
                      for j in self._all_movable_idx if j not in self._joint_idx]
        if self._augmented:
            # the controlled DOFs in PyBullet's DOF order (all of them when nothing is held)
            self._ctrl_dof = np.sort(self._dof_of_joint)
            order = np.argsort(self._dof_of_joint)  # joint_names position of each _ctrl_dof
            self._armature_dof = np.diag(self._armature[order])
            self._damping_dof = self._damping[order]

    # ------------------------------------------------------------- properties
    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._joint_names

    @property
    def dt(self) -> float:
        """Control period in seconds."""
        return self._dt

    @property
    def substeps(self) -> int:
        return self._substeps

    @property
    def effort_limits(self) -> np.ndarray:
        """[nj] torque limits from the URDF (N m or N); commands are clipped to these."""
        return self._effort_limits.copy()

    @property
    def position_limits(self) -> np.ndarray:
        """[nj, 2] (lower, upper) from the URDF; +-inf for continuous joints."""
        return self._position_limits.copy()

    @property
    def client_id(self) -> int:
        """PyBullet physics client id (for rendering cameras into the same world)."""
        return self._client

    @property
    def body_id(self) -> int:
        return self._body

    # ---------------------------------------------------------------- control
    def reset(self, q0: np.ndarray | Sequence[float]) -> None:
        """Put the controlled joints at q0 [nj] and every other movable joint at its
        load-time position, all with zero velocity: each trial starts from the same state."""
        q0 = self._check_vector(q0, "q0")
        lo, hi = self._position_limits[:, 0], self._position_limits[:, 1]
        outside = (q0 < lo) | (q0 > hi)
        if np.any(outside):
            bad = {n: float(v) for n, v, o in zip(self._joint_names, q0, outside) if o}
            raise ValueError(f"q0 outside the URDF position limits: {bad}")
        for j, qj in zip(self._joint_idx, q0):
            p.resetJointState(self._body, j, float(qj), 0.0, physicsClientId=self._client)
        for j, qj in self._held:
            p.resetJointState(self._body, j, qj, 0.0, physicsClientId=self._client)

    def step(self, torques: np.ndarray | Sequence[float], substeps: int | None = None,
             external: np.ndarray | None = None) -> None:
        """Apply torques [nj] (clipped to the effort limits) for one control period dt, or for
        `substeps` physics steps of dt / self.substeps each (a caller holding a torque over
        several physics steps in one call: bit-for-bit the same as that many calls).

        external [n_dof] (PyBullet's DOF order): the generalized force J^T W of an external wrench
        the caller applies to the body (p.applyExternalForce) during these physics steps, for the
        armature emulation to act on (see `_augmented_torques`); PyBullet applies the wrench itself.
        Without armature or damping it changes nothing.

        Raises ValueError on a wrong shape or any non-finite value, before anything is applied.
        """
        tau = np.clip(self._check_vector(torques, "torques"),
                      -self._effort_limits, self._effort_limits)
        if external is not None:
            external = np.asarray(external, dtype=float)
            if external.shape != (self._n_dof,) or not np.all(np.isfinite(external)):
                raise ValueError(f"external must be a finite [{self._n_dof}] generalized force, got "
                                 f"shape {external.shape}")
        cid, body, idx = self._client, self._body, self._joint_idx
        tau_list = tau.tolist()
        for _ in range(self._substeps if substeps is None else substeps):
            if self._augmented:
                tau_list = self._augmented_torques(tau, external)[self._dof_of_joint].tolist()
            elif self._gravity_compensation:
                tau_list = (tau + self._gravity_torques()).tolist()
            p.setJointMotorControlArray(body, idx, p.TORQUE_CONTROL, forces=tau_list,
                                        physicsClientId=cid)
            p.stepSimulation(physicsClientId=cid)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (q [nj], qd [nj]) of the controlled joints."""
        states = p.getJointStates(self._body, self._joint_idx, physicsClientId=self._client)
        q = np.array([s[0] for s in states], dtype=float)
        qd = np.array([s[1] for s in states], dtype=float)
        return q, qd

    def _gravity_torques(self) -> np.ndarray:
        """g(q) [nj] at the current configuration: inverse dynamics with qd = qdd = 0."""
        states = p.getJointStates(self._body, self._all_movable_idx, physicsClientId=self._client)
        q_all = [s[0] for s in states]
        g = p.calculateInverseDynamics(self._body, q_all, self._zeros_dof, self._zeros_dof,
                                       physicsClientId=self._client)
        return np.asarray(g)[self._dof_of_joint]

    def _augmented_torques(self, tau: np.ndarray, external: np.ndarray | None = None) -> np.ndarray:
        """Torques [n_dof, PyBullet order] that make PyBullet's rigid-body step (which knows
        only M) produce the accelerations of the arm with armature A and damping D on the
        controlled joints c (the held joints h are taken as still, qdd_h = 0, as their motors
        keep them), under an external generalized force e (`external`, J^T W of a push PyBullet
        applies itself; 0 without one):

            (M_cc + A) qdd_c = tau (+ g_c if compensated) - b_c(q, qd) - D qd_c + e_c,   b = c + g,
            applied_c = M_cc qdd_c + b_c - e_c   =>   PyBullet's row c, M_cc qdd_c + M_ch qdd_h =
            applied_c - b_c + e_c, gives qdd_c as long as qdd_h = 0.

        Without e in both places the push would act on M alone (the rotor inertia would not resist
        it). Entries of held joints are zero (their motors act instead).
        """
        cid, body, c = self._client, self._body, self._ctrl_dof
        states = p.getJointStates(body, self._all_movable_idx, physicsClientId=cid)
        q_all = [s[0] for s in states]
        qd_all = [s[1] for s in states]
        bias = np.asarray(p.calculateInverseDynamics(body, q_all, qd_all, self._zeros_dof,
                                                     physicsClientId=cid))[c]
        mass = np.asarray(p.calculateMassMatrix(body, q_all, physicsClientId=cid))[np.ix_(c, c)]
        rhs = np.zeros(self._n_dof)
        rhs[self._dof_of_joint] = tau
        rhs = rhs[c] - (bias + self._damping_dof * np.asarray(qd_all)[c])
        if self._gravity_compensation:
            rhs += np.asarray(p.calculateInverseDynamics(body, q_all, self._zeros_dof, self._zeros_dof,
                                                         physicsClientId=cid))[c]
        if external is not None:
            rhs += external[c]
        qdd = np.linalg.solve(mass + self._armature_dof, rhs)
        out = np.zeros(self._n_dof)
        out[c] = mass @ qdd + bias
        if external is not None:
            out[c] -= external[c]
        return out

    def _per_joint(self, value: float | Sequence[float], what: str) -> np.ndarray:
        try:
            arr = np.broadcast_to(np.asarray(value, dtype=float), (len(self._joint_names),))
        except ValueError:
            arr = np.array([np.nan])  # reported below
        if not np.all(np.isfinite(arr)) or np.any(arr < 0.0):
            raise ValueError(f"{what} must be finite and >= 0 (scalar or one per joint of "
                             f"{list(self._joint_names)}), got {np.asarray(value).tolist()}")
        return arr.copy()

    def _check_vector(self, value: np.ndarray | Sequence[float], what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=float)
        if arr.shape != (len(self._joint_names),):
            raise ValueError(f"{what} must have shape ({len(self._joint_names)},) "
                             f"for joints {list(self._joint_names)}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} has non-finite values: {arr.tolist()}")
        return arr

    # -------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Disconnect the physics client; idempotent."""
        if self._client is not None and self._client >= 0:
            try:
                p.disconnect(physicsClientId=self._client)
            except p.error:
                pass
            self._client = -1

    def __enter__(self) -> PyBulletArm:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
