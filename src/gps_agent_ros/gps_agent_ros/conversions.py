"""Message <-> array conversion: the one place where ROS messages meet numpy.

Robot side (controller node): JointState -> (q, qd) by joint name; an array -> the
Float64MultiArray a ForwardCommandController takes; RunTrial goal -> TrialSpec (the trial as
data, validated by gps_controllers.trial_spec.plan_trial); a trial's recording -> RunTrial.Result;
a disturbance plan <-> the fields a RunTrial goal and a ResetArm request carry it in (sim_node).
Trainer side: TrialSpec -> RunTrial goal; RunTrial.Result -> X [steps, dX], U [steps, dU].

Generated float64[] fields are array.array('d'): they are read with np.frombuffer (no copy) and
written as array.array built from the array's bytes (assigning numpy arrays element-checks every
value, ~100x slower for a trial's worth of data).
"""
from __future__ import annotations

import array
import math
from typing import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.mpc_controller import MPCSpec
from gps_controllers.trial_runner import TrialRunner
from gps_controllers.trial_spec import (ControllerSpec, LinearGaussianSpec, NetworkSpec,
                                        TrialSpec)
from gps_core.disturbance_plan import DisturbancePlan, Impulse
from gps_core.policies.spec import InvalidPolicy, PolicySpec
from gps_core.traj_opt.mpc import InvalidMPCProblem, MPCProblem
from gps_interfaces.action import RunTrial
from gps_interfaces.srv import ResetArm

DISTURBANCE_FIELDS = ('disturbance_link', 'disturbance_kind', 'disturbance_physics_dt', 'disturbance_starts',
                      'disturbance_substeps', 'disturbance_vectors')

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
    msg.position = as_double_array(q)
    msg.velocity = as_double_array(qd)
    if effort is not None:
        msg.effort = as_double_array(effort)
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
        msg.data = as_double_array(values)
    return msg


def from_float64_multi_array(msg: Float64MultiArray) -> np.ndarray:
    """Float64MultiArray -> a float64 array (a copy)."""
    return np.array(msg.data, dtype=np.float64)


# -------------------------------------------------------------- RunTrial goal
def trial_spec_from_goal(goal: RunTrial.Goal) -> TrialSpec:
    """Robot side: the trial a RunTrial goal describes, decoded but not yet validated against the
    robot (gps_controllers.trial_spec.plan_trial does that).

    Raises InvalidController when the goal cannot be decoded: an unknown controller_type, flat
    arrays whose sizes do not match the sizes the goal declares, an unparsable policy.
    """
    T, du, dx = int(goal.horizon), int(goal.du), int(goal.dx)
    if T < 1:
        raise InvalidController(f"horizon T must be >= 1, got {T}")
    if goal.controller_type == RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN:
        gains, offsets = _doubles(goal.gains), _doubles(goal.offsets)
        if gains.size != T * du * dx:
            raise InvalidController(f"gains must have T*du*dx = {T}*{du}*{dx} = {T * du * dx} entries "
                                    f"(K [T, du, dx] row-major), got {gains.size}")
        if offsets.size != T * du:
            raise InvalidController(f"offsets must have T*du = {T}*{du} = {T * du} entries "
                                    f"(k [T, du] row-major), got {offsets.size}")
        controller: ControllerSpec = LinearGaussianSpec(gains.reshape(T, du, dx), offsets.reshape(T, du))
    elif goal.controller_type == RunTrial.Goal.CONTROLLER_POLICY:
        try:
            policy = PolicySpec.from_flat(goal.policy_architecture, list(goal.policy_parameter_names),
                                          _doubles(goal.policy_parameters))
        except InvalidPolicy as exc:
            raise InvalidController(str(exc)) from exc
        noise = _doubles(goal.policy_noise)
        if noise.size not in (0, T * du):
            raise InvalidController(f"policy_noise must be empty or have T*du = {T}*{du} = {T * du} "
                                    f"entries ([T, du] row-major), got {noise.size}")
        controller = NetworkSpec(policy, noise.reshape(T, du) if noise.size else None)
    elif goal.controller_type == RunTrial.Goal.CONTROLLER_MPC:
        controller = _mpc_spec_from_goal(goal, T, du, dx)
    else:
        raise InvalidController(f"controller_type {goal.controller_type} is not one of "
                                f"CONTROLLER_LINEAR_GAUSSIAN ({RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN}), "
                                f"CONTROLLER_POLICY ({RunTrial.Goal.CONTROLLER_POLICY}) or "
                                f"CONTROLLER_MPC ({RunTrial.Goal.CONTROLLER_MPC})")
    try:
        disturbance = disturbance_from_fields(goal)
    except ValueError as exc:
        raise InvalidController(str(exc)) from exc
    return TrialSpec(condition=goal.condition, joint_names=tuple(goal.joint_names),
                     q0=_doubles(goal.initial_joint_positions), targets=_doubles(goal.ee_targets),
                     horizon=T, dt=float(goal.dt), controller=controller,
                     record_images=bool(goal.record_images),
                     objects=objects_from_fields(goal.object_names, goal.object_positions),
                     disturbance=disturbance)


def _mpc_spec_from_goal(goal: RunTrial.Goal, T: int, du: int, dx: int) -> MPCSpec:
    """The MPC teacher of a goal: every array of the size T, dx, du declare, the problem checked
    (finite, convex, 1 <= replan_every <= horizon) by MPCProblem; InvalidController says what is wrong."""
    dxu = dx + du
    if dx < 1 or du < 1:
        raise InvalidController(f"an MPC goal needs dx, du >= 1, got dx={dx}, du={du}")
    fields = {'mpc_dynamics': (T, dx, dxu), 'mpc_dynamics_offset': (T, dx), 'mpc_cost_hessian': (T, dxu, dxu),
              'mpc_cost_gradient': (T, dxu)}
    arrays = {}
    for name, shape in fields.items():
        flat = _doubles(getattr(goal, name))
        if flat.size != int(np.prod(shape)):
            raise InvalidController(f"{name} must have {' * '.join(map(str, shape))} = {int(np.prod(shape))} "
                                    f"entries ({list(shape)} row-major), got {flat.size}")
        arrays[name] = flat.reshape(shape)
    noise = _doubles(goal.mpc_noise)
    if noise.size not in (0, T * du):
        raise InvalidController(f"mpc_noise must be empty or have T*du = {T}*{du} = {T * du} entries "
                                f"([T, du] row-major), got {noise.size}")
    try:
        problem = MPCProblem(arrays['mpc_dynamics'], arrays['mpc_dynamics_offset'], arrays['mpc_cost_hessian'],
                             arrays['mpc_cost_gradient'], int(goal.mpc_horizon), int(goal.mpc_replan_every))
    except InvalidMPCProblem as exc:
        raise InvalidController(f"MPC problem: {exc}") from exc
    return MPCSpec(problem, noise.reshape(T, du) if noise.size else None)


def disturbance_from_fields(msg) -> DisturbancePlan | None:
    """The disturbance plan in a RunTrial goal's or a ResetArm request's disturbance_* fields (None when
    disturbance_link is empty); ValueError naming what does not fit."""
    if not msg.disturbance_link:
        return None
    starts = np.asarray(msg.disturbance_starts, dtype=np.int64)
    lengths = np.asarray(msg.disturbance_substeps, dtype=np.int64)
    vectors = _doubles(msg.disturbance_vectors)
    n = starts.size
    if lengths.size != n or vectors.size != 3 * n:
        raise ValueError(f"disturbance_starts, disturbance_substeps and disturbance_vectors must hold 1, 1 and 3 "
                         f"values per impulse; got {starts.size}, {lengths.size} and {vectors.size}")
    impulses = tuple(Impulse(int(s), int(k), tuple(float(v) for v in vectors[3 * i:3 * i + 3]))
                     for i, (s, k) in enumerate(zip(starts, lengths)))
    return DisturbancePlan(str(msg.disturbance_link), str(msg.disturbance_kind), float(msg.disturbance_physics_dt),
                           impulses)


def set_disturbance_fields(msg, plan: DisturbancePlan | None) -> None:
    """Write a plan (None: none) into a RunTrial goal's or a ResetArm request's disturbance_* fields."""
    if plan is None:
        return
    msg.disturbance_link, msg.disturbance_kind = plan.link, plan.kind
    msg.disturbance_physics_dt = float(plan.physics_dt)
    msg.disturbance_starts = array.array('I', [int(i.start) for i in plan.impulses])
    msg.disturbance_substeps = array.array('I', [int(i.substeps) for i in plan.impulses])
    msg.disturbance_vectors = as_double_array(np.array([i.vector for i in plan.impulses], dtype=np.float64)
                                               .reshape(-1))


def objects_from_fields(names: Sequence[str], positions) -> dict[str, np.ndarray]:
    """(object_names [n], object_positions [3n]) -> {name: centre [3]}; InvalidController if
    they do not match."""
    names, flat = list(names), _doubles(positions)
    if flat.size != 3 * len(names) or len(set(names)) != len(names):
        raise InvalidController(f"object_positions must hold 3 values per object of {names} (distinct), "
                                f"got {flat.size}")
    return {n: flat[3 * i:3 * i + 3].copy() for i, n in enumerate(names)}


def object_fields(objects: Mapping[str, np.ndarray]) -> tuple[list[str], array.array]:
    """{name: centre [3]} -> (object_names, object_positions) of a goal or reset request."""
    names = list(objects)
    return names, as_double_array([np.asarray(objects[n], dtype=np.float64).reshape(3) for n in names]
                                   if names else np.empty(0))


def reset_request(joint_names: Sequence[str], q0: np.ndarray, objects: Mapping[str, np.ndarray],
                  disturbance: DisturbancePlan | None) -> ResetArm.Request:
    """controller_node's ResetArm request: the arm to q0, the scene's objects, the trial's pushes
    (for a simulator; None: none)."""
    request = ResetArm.Request(joint_names=list(joint_names), joint_positions=np.asarray(q0, dtype=float).tolist())
    request.object_names, request.object_positions = object_fields(objects)
    set_disturbance_fields(request, disturbance)
    return request


def run_trial_goal(spec: TrialSpec) -> RunTrial.Goal:
    """Trainer side: the RunTrial goal of a trial (the inverse of trial_spec_from_goal)."""
    goal = RunTrial.Goal(condition=spec.condition, joint_names=list(spec.joint_names),
                         initial_joint_positions=as_double_array(spec.q0), horizon=int(spec.horizon),
                         dt=float(spec.dt), ee_targets=as_double_array(spec.targets),
                         record_images=bool(spec.record_images))
    goal.object_names, goal.object_positions = object_fields(spec.objects)
    ctrl = spec.controller
    if isinstance(ctrl, LinearGaussianSpec):
        K, k = np.asarray(ctrl.K, dtype=np.float64), np.asarray(ctrl.k, dtype=np.float64)
        if K.ndim != 3 or k.shape != K.shape[:2]:
            raise ValueError(f"K must be [T, dU, dX] and k [T, dU], got {K.shape} and {k.shape}")
        goal.controller_type = RunTrial.Goal.CONTROLLER_LINEAR_GAUSSIAN
        goal.du, goal.dx = K.shape[1], K.shape[2]
        goal.gains, goal.offsets = as_double_array(K), as_double_array(k)
    elif isinstance(ctrl, NetworkSpec):
        names, values = ctrl.policy.flat()
        goal.controller_type = RunTrial.Goal.CONTROLLER_POLICY
        goal.du, goal.dx = ctrl.policy.dU, ctrl.policy.dO
        goal.policy_architecture = ctrl.policy.architecture_json()
        goal.policy_parameter_names = names
        goal.policy_parameters = as_double_array(values)
        if ctrl.noise is not None:
            goal.policy_noise = as_double_array(ctrl.noise)
    elif isinstance(ctrl, MPCSpec):
        problem = ctrl.problem
        goal.controller_type = RunTrial.Goal.CONTROLLER_MPC
        goal.du, goal.dx = problem.dU, problem.dX
        goal.mpc_dynamics, goal.mpc_dynamics_offset = as_double_array(problem.Fm), as_double_array(problem.fv)
        goal.mpc_cost_hessian, goal.mpc_cost_gradient = as_double_array(problem.Cm), as_double_array(problem.cv)
        goal.mpc_horizon, goal.mpc_replan_every = int(problem.horizon), int(problem.replan_every)
        if ctrl.noise is not None:
            goal.mpc_noise = as_double_array(ctrl.noise)
    else:
        raise TypeError(f"unknown controller description {type(ctrl).__name__}")
    set_disturbance_fields(goal, spec.disturbance)
    return goal


# ------------------------------------------------------------ RunTrial result
def run_trial_result(status: int, reason: str, condition: str, recording: TrialRunner | None = None
                     ) -> RunTrial.Result:
    """Result of a trial: the first `recording.steps` rows of its X [T, dX], U [T, dU], stamps,
    latencies and compute times (float seconds), or only the status when it never started."""
    result = RunTrial.Result(status=int(status), reason=reason, condition=condition)
    if recording is None:
        return result
    steps = int(recording.steps)
    X, U = recording.X, recording.U
    result.steps, result.dx, result.du, result.dobs = steps, X.shape[1], U.shape[1], 0
    result.states = as_double_array(X[:steps])
    result.actions = as_double_array(U[:steps])
    result.stamps = [seconds_to_time(float(s)) for s in recording.stamps[:steps]]
    result.latencies = as_double_array(recording.latencies[:steps])
    result.compute_times = as_double_array(recording.compute_times[:steps])
    if recording.images is not None:
        images = np.ascontiguousarray(recording.images[:steps])
        result.image_height, result.image_width = images.shape[1], images.shape[2]
        result.images = array.array("B", images.tobytes())
    return result


def result_images(result: RunTrial.Result) -> np.ndarray | None:
    """Trainer side: the result's images [steps, H, W, 3] uint8 (a copy), or None."""
    if len(result.images) == 0:
        return None
    H, W, steps = int(result.image_height), int(result.image_width), int(result.steps)
    images = np.frombuffer(result.images, dtype=np.uint8)
    if images.size != steps * H * W * 3:
        raise ValueError(f"result has {images.size} image bytes; expected steps*H*W*3 = {steps}*{H}*{W}*3")
    return images.reshape(steps, H, W, 3).copy()


# ------------------------------------------------------------------ images
def image_from_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> [H, W, 3] uint8 RGB (a view of the message for rgb8
    with no row padding). Raises ValueError for another encoding or a size that does not add up."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"camera image encoding {msg.encoding!r} is not rgb8 or bgr8")
    H, W, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8) if isinstance(msg.data, (array.array, bytes)) else \
        np.asarray(msg.data, dtype=np.uint8)
    if step < 3 * W or data.size != H * step:
        raise ValueError(f"camera image {W}x{H}: step {step} and {data.size} bytes do not add up")
    image = data.reshape(H, step)[:, :3 * W].reshape(H, W, 3)
    return image[:, :, ::-1] if msg.encoding == "bgr8" else image


def image_msg(image: np.ndarray, stamp, frame_id: str = "camera", msg: Image | None = None) -> Image:
    """[H, W, 3] uint8 RGB -> sensor_msgs/Image rgb8 (msg reused when given)."""
    msg = Image() if msg is None else msg
    H, W = image.shape[:2]
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = H, W, "rgb8", 0, 3 * W
    msg.data = array.array("B", np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return msg


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
def as_double_array(values: np.ndarray | Sequence[float]) -> array.array:
    """Row-major flattening into the array.array('d') generated float64[] fields hold."""
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    return array.array("d", flat.tobytes())


def _doubles(values: array.array | Sequence[float] | np.ndarray) -> np.ndarray:
    """A read-only float64 view (array.array) or conversion of a float64[] field."""
    if isinstance(values, array.array) and values.typecode == "d":
        return np.frombuffer(values, dtype=np.float64) if len(values) else np.empty(0)
    return np.asarray(values, dtype=np.float64).ravel()
