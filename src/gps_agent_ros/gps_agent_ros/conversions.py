"""Message <-> array conversion: the one place where ROS messages meet numpy.

Robot side (controller node): JointState -> (q, qd) by joint name; an array -> the
Float64MultiArray a ForwardCommandController takes; RunTrial goal -> validated trial inputs
(TrialGoal with a LinearGaussianController); recorded arrays -> RunTrial.Result.
Trainer side: arrays -> RunTrial goal; RunTrial.Result -> X [steps, dX], U [steps, dU].

Generated float64[] fields are array.array('d'): they are read with np.frombuffer (no copy) and
written as array.array built from the array's bytes (assigning numpy arrays element-checks every
value, ~100x slower for a trial's worth of data).
"""
from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from gps_controllers.linear_gaussian_controller import InvalidController, LinearGaussianController
from gps_interfaces.action import RunTrial

_NS = 1_000_000_000
_MAX_CACHED_ORDERS = 8


# ------------------------------------------------------------------- time
def time_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_time(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time (nanosec in [0, 1e9), also for t < 0)."""
    if not math.isfinite(seconds):
        raise ValueError(f"cannot convert non-finite time {seconds} to builtin_interfaces/Time")
    total_ns = int(round(seconds * _NS))
    sec, nanosec = divmod(total_ns, _NS)
    return Time(sec=sec, nanosec=nanosec)


# ------------------------------------------------------------ joint state
class JointStateReader:
    """JointState -> (q [nj], qd [nj]) in a fixed joint order, matched by name, never by index.

    The index map is cached per name tuple, so a publisher with any (stable) order costs one
    dict lookup per message.
    """

    def __init__(self, joint_names: Sequence[str]) -> None:
        self._names = tuple(joint_names)
        if not self._names:
            raise ValueError("joint_names is empty")
        self._index_cache: dict[tuple[str, ...], np.ndarray] = {}

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._names

    def read(self, msg: JointState, q_out: np.ndarray | None = None,
             qd_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(q, qd) of msg in joint_names order, written into q_out / qd_out if given.

        Raises ValueError naming missing joints, or when positions / velocities do not have
        one entry per name.
        """
        idx = self._indices(msg.name)
        n = len(msg.name)
        if len(msg.position) != n:
            raise ValueError(f"joint_states has {n} names but {len(msg.position)} positions")
        if len(msg.velocity) != n:
            raise ValueError(f"joint_states has {n} names but {len(msg.velocity)} velocities "
                             f"(joint velocities are part of the GPS state)")
        position = np.frombuffer(msg.position, dtype=np.float64) if isinstance(
            msg.position, array.array) else np.asarray(msg.position, dtype=np.float64)
        velocity = np.frombuffer(msg.velocity, dtype=np.float64) if isinstance(
            msg.velocity, array.array) else np.asarray(msg.velocity, dtype=np.float64)
        q = np.take(position, idx, out=q_out) if q_out is not None else position[idx]
        qd = np.take(velocity, idx, out=qd_out) if qd_out is not None else velocity[idx]
        return q, qd

    def _indices(self, names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        idx = self._index_cache.get(key)
        if idx is None:
            where = {name: i for i, name in enumerate(key)}
            missing = [n for n in self._names if n not in where]
            if missing:
                raise ValueError(f"joint_states lacks joints {missing}; it has {list(key)}")
            idx = np.array([where[n] for n in self._names], dtype=np.intp)
            if len(self._index_cache) >= _MAX_CACHED_ORDERS:
                self._index_cache.clear()
            self._index_cache[key] = idx
        return idx


def joint_state_msg(joint_names: Sequence[str], q: np.ndarray, qd: np.ndarray,
                    stamp_s: float, effort: np.ndarray | None = None) -> JointState:
    """A JointState (as joint_state_broadcaster publishes it) from arrays."""
    msg = JointState()
    msg.header.stamp = seconds_to_time(stamp_s)
    msg.name = list(joint_names)
    msg.position = _as_double_array(q)
    msg.velocity = _as_double_array(qd)
    if effort is not None:
        msg.effort = _as_double_array(effort)
    return msg


# ---------------------------------------------------------------- commands
def to_float64_multi_array(values: np.ndarray, msg: Float64MultiArray | None = None
                           ) -> Float64MultiArray:
    """values [n] -> Float64MultiArray (no layout: forward_command_controller reads .data only).

    If `msg` is given it is reused: its data buffer is overwritten in place when the length
    matches (the hot path publishes the same-size command every step).
    """
    if msg is None:
        msg = Float64MultiArray()
    values = np.asarray(values, dtype=np.float64)
    if len(msg.data) == values.size:
        np.frombuffer(msg.data, dtype=np.float64)[:] = values.ravel()
    else:
        msg.data = _as_double_array(values)
    return msg


def from_float64_multi_array(msg: Float64MultiArray) -> np.ndarray:
    """Float64MultiArray -> a float64 array (a copy)."""
    return np.array(msg.data, dtype=np.float64)


# -------------------------------------------------------------- RunTrial goal
@dataclass(frozen=True)
class TrialGoal:
    """A validated RunTrial goal: what the controller node runs.

    q0 [nj] initial joint positions (robot joint order), targets [P, 3] end-effector point
    targets (base frame), controller K [T, dU, dX], k [T, dU].
    """

    condition: str
    horizon: int
    dt: float
    q0: np.ndarray
    targets: np.ndarray
    controller: LinearGaussianController


def trial_goal_from_msg(goal: RunTrial.Goal, joint_names: Sequence[str], dx: int, n_points: int,
                        position_limits: np.ndarray | None = None) -> TrialGoal:
    """Validate a RunTrial goal against the robot and build its controller.

    joint_names: the robot's joints, in the order of the state and command arrays; the goal
    must list exactly these, in this order. dx: the robot's state size; du is len(joint_names).
    position_limits: [nj, 2] (lower, upper), to check the initial positions against.
    Raises InvalidController saying what was expected and what arrived.
    """
    robot = tuple(joint_names)
    got = tuple(goal.joint_names)
    if got != robot:
        missing = [n for n in robot if n not in got]
        unknown = [n for n in got if n not in robot]
        if missing or unknown or len(got) != len(robot):
            raise InvalidController(f"goal joint_names {list(got)} must be the robot's joints "
                                    f"{list(robot)} (missing {missing}, unknown {unknown})")
        raise InvalidController(f"goal joint_names {list(got)} must list the robot's joints in "
                                f"its order {list(robot)}")
    if goal.controller_type != RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN:
        raise InvalidController(f"controller_type {goal.controller_type} is not supported; this "
                                f"node runs CONTROLLER_LINEAR_GAUSSIAN "
                                f"({RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN})")
    if not (math.isfinite(goal.dt) and goal.dt > 0.0):
        raise InvalidController(f"dt must be a finite number > 0, got {goal.dt}")
    q0 = _vector(goal.initial_joint_positions, len(robot), "initial_joint_positions")
    if position_limits is not None:
        lower, upper = position_limits[:, 0], position_limits[:, 1]
        outside = [robot[j] for j in np.flatnonzero((q0 < lower) | (q0 > upper))]
        if outside:
            raise InvalidController(f"initial_joint_positions outside the URDF limits for "
                                    f"joints {outside}: {q0.tolist()}")
    targets = _vector(goal.ee_targets, 3 * n_points, "ee_targets").reshape(n_points, 3)
    controller = LinearGaussianController.from_flat(
        _doubles(goal.gains), _doubles(goal.offsets), T=goal.horizon, du=goal.du, dx=goal.dx,
        expected_dx=dx, expected_du=len(robot))
    return TrialGoal(condition=goal.condition, horizon=int(goal.horizon), dt=float(goal.dt),
                     q0=q0, targets=targets, controller=controller)


def run_trial_goal(condition: str, joint_names: Sequence[str], q0: np.ndarray,
                   targets: np.ndarray, dt: float, K: np.ndarray, k: np.ndarray
                   ) -> RunTrial.Goal:
    """Trainer side: a RunTrial goal for u_t = K_t x_t + k_t, K [T, dU, dX], k [T, dU],
    starting from q0 [nj] with end-effector point targets [P, 3]."""
    K = np.asarray(K, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if K.ndim != 3 or k.shape != K.shape[:2]:
        raise ValueError(f"K must be [T, dU, dX] and k [T, dU], got {K.shape} and {k.shape}")
    T, du, dx = K.shape
    return RunTrial.Goal(
        condition=condition, joint_names=list(joint_names),
        initial_joint_positions=_as_double_array(q0), horizon=T, dt=float(dt),
        ee_targets=_as_double_array(targets),
        controller_type=RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN, dx=dx, du=du,
        gains=_as_double_array(K), offsets=_as_double_array(k))


# ------------------------------------------------------------ RunTrial result
def run_trial_result(status: int, reason: str, condition: str, steps: int,
                     X: np.ndarray, U: np.ndarray, stamps: np.ndarray, latencies: np.ndarray,
                     compute_times: np.ndarray) -> RunTrial.Result:
    """Result of a trial from its recording: the first `steps` rows of X [>=steps, dX],
    U [>=steps, dU], stamps / latencies / compute_times [>=steps] (float seconds)."""
    steps = int(steps)
    if X.ndim != 2 or U.ndim != 2 or X.shape[0] < steps or U.shape[0] < steps:
        raise ValueError(f"X and U must be [>= {steps}, d], got {X.shape} and {U.shape}")
    result = RunTrial.Result(status=int(status), reason=reason, condition=condition, steps=steps,
                             dx=X.shape[1], du=U.shape[1], dobs=0)
    result.states = _as_double_array(X[:steps])
    result.actions = _as_double_array(U[:steps])
    result.stamps = [seconds_to_time(float(s)) for s in stamps[:steps]]
    result.latencies = _as_double_array(latencies[:steps])
    result.compute_times = _as_double_array(compute_times[:steps])
    return result


def result_to_arrays(result: RunTrial.Result) -> tuple[np.ndarray, np.ndarray]:
    """Trainer side: (X [steps, dx], U [steps, du]) of a RunTrial result (copies)."""
    steps, dx, du = int(result.steps), int(result.dx), int(result.du)
    X = _doubles(result.states)
    U = _doubles(result.actions)
    if X.size != steps * dx or U.size != steps * du:
        raise ValueError(f"result has {X.size} state and {U.size} action values; expected "
                         f"steps*dx = {steps}*{dx} and steps*du = {steps}*{du}")
    return X.reshape(steps, dx).copy(), U.reshape(steps, du).copy()


def result_timing(result: RunTrial.Result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stamps [steps] s, latencies [steps] s, compute_times [steps] s) of a result."""
    stamps = np.array([time_to_seconds(s) for s in result.stamps], dtype=np.float64)
    return stamps, _doubles(result.latencies).copy(), _doubles(result.compute_times).copy()


# ----------------------------------------------------------------- helpers
def _as_double_array(values: np.ndarray | Sequence[float]) -> array.array:
    """Row-major flattening into the array.array('d') generated float64[] fields hold."""
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    return array.array("d", flat.tobytes())


def _doubles(values: array.array | Sequence[float] | np.ndarray) -> np.ndarray:
    """A read-only float64 view (array.array) or conversion of a float64[] field."""
    if isinstance(values, array.array) and values.typecode == "d":
        return np.frombuffer(values, dtype=np.float64) if len(values) else np.empty(0)
    return np.asarray(values, dtype=np.float64).ravel()


def _vector(values: Sequence[float], n: int, what: str) -> np.ndarray:
    arr = np.array(_doubles(values), dtype=np.float64, copy=True)
    if arr.size != n:
        raise InvalidController(f"{what} must have {n} entries, got {arr.size}")
    if not np.isfinite(arr).all():
        raise InvalidController(f"{what} has non-finite values: {arr.tolist()}")
    return arr
