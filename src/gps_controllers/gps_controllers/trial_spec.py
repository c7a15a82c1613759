"""What a trial runs, as data, and its validation against the robot.

The trainer describes a controller as data (`ControllerSpec`): a linear-Gaussian controller
(K, k with the noise already folded in), a neural-network policy (`NetworkSpec`: the network
as a `PolicySpec` plus the exploration noise of this trial as a [T, dU] array, so seeded runs
stay reproducible) or MPC-GPS's teacher (`MPCSpec`: its receding-horizon problem plus the
trial's noise, gps_controllers.mpc_controller). A trial may also carry a disturbance plan (pushes
the simulator applies: gps_core.disturbance_plan), which goes to the reset with the start pose. Both agents hand the same descriptions to the same code: controller_node
decodes them from a RunTrial goal, the in-process agent gets them directly, and `plan_trial` turns
either into a `TrialPlan` the trial runner executes, or raises InvalidController saying why.
Nothing reaches the arm from a spec that did not pass `plan_trial`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence, Union

import numpy as np

from gps_controllers.controller import Controller
from gps_controllers.linear_gaussian_controller import InvalidController, LinearGaussianController
from gps_controllers.mpc_controller import MPCController, MPCSpec
from gps_controllers.state_encoder import StateEncoder
from gps_core.disturbance_plan import DisturbancePlan
from gps_core.policies.spec import PolicySpec


@dataclass(frozen=True)
class LinearGaussianSpec:
    """u_t = K_t x_t + k_t; K [T, dU, dX], k [T, dU] (noise folded into k)."""

    K: np.ndarray
    k: np.ndarray


@dataclass(frozen=True)
class NetworkSpec:
    """u_t = mu_theta(o_t) + noise_t; noise [T, dU] or None (the network alone, noiseless)."""

    policy: PolicySpec
    noise: np.ndarray | None = None


ControllerSpec = Union[LinearGaussianSpec, NetworkSpec, MPCSpec]


@dataclass(frozen=True)
class TrialSpec:
    """One trial as the trainer asks for it (unvalidated).

    joint_names [nj] order of q0 and of every joint array; q0 [nj]; targets [P, 3] end-effector
    point targets in the base frame (or flat [3P]); horizon T steps of dt seconds.
    """

    condition: str
    joint_names: tuple[str, ...]
    q0: np.ndarray
    targets: np.ndarray
    horizon: int
    dt: float
    controller: ControllerSpec
    record_images: bool = False
    # scene objects the reset places: name ('block', 'distractor', 'hole') -> centre [3] (base frame)
    objects: Mapping[str, np.ndarray] = field(default_factory=dict)
    disturbance: DisturbancePlan | None = None    # pushes during the trial (a simulator applies them)


@dataclass(frozen=True)
class TrialPlan:
    """A validated trial: q0 [nj], targets [P, 3], a controller of horizon T for this robot,
    the objects to place, the pushes (handed to the reset) and whether to record the camera's images."""

    condition: str
    horizon: int
    dt: float
    q0: np.ndarray
    targets: np.ndarray
    controller: Controller
    objects: Mapping[str, np.ndarray] = field(default_factory=dict)
    record_images: bool = False
    disturbance: DisturbancePlan | None = None


def plan_trial(spec: TrialSpec, encoder: StateEncoder) -> TrialPlan:
    """Validate a trial against the robot and build its controller.

    The goal must list exactly the robot's joints in its order; q0 finite and within the URDF
    position limits; targets finite, one per end-effector point; horizon >= 1; dt finite > 0; the
    controller sized for this robot (dX, dU) and this horizon, every value finite.
    Raises InvalidController naming what was expected and what arrived.
    """
    robot = tuple(encoder.joint_names)
    got = tuple(spec.joint_names)
    if got != robot:
        missing = [n for n in robot if n not in got]
        unknown = [n for n in got if n not in robot]
        if missing or unknown or len(got) != len(robot):
            raise InvalidController(f"goal joint_names {list(got)} must be the robot's joints "
                                    f"{list(robot)} (missing {missing}, unknown {unknown})")
        raise InvalidController(f"goal joint_names {list(got)} must list the robot's joints in "
                                f"its order {list(robot)}")
    T = int(spec.horizon)
    if T < 1:
        raise InvalidController(f"horizon T must be >= 1, got {T}")
    if not (math.isfinite(spec.dt) and spec.dt > 0.0):
        raise InvalidController(f"dt must be a finite number > 0, got {spec.dt}")
    q0 = _vector(spec.q0, len(robot), "initial_joint_positions")
    limits = encoder.position_limits
    outside = [robot[j] for j in np.flatnonzero((q0 < limits[:, 0]) | (q0 > limits[:, 1]))]
    if outside:
        raise InvalidController(f"initial_joint_positions outside the URDF limits for joints "
                                f"{outside}: {q0.tolist()}")
    targets = _vector(spec.targets, 3 * encoder.n_points, "ee_targets").reshape(encoder.n_points, 3)
    objects = {str(name): _vector(xyz, 3, f"object {name!r} position") for name, xyz in spec.objects.items()}
    offset = np.zeros(encoder.dX)   # x + offset: the end-effector points in the base frame
    offset[encoder.ee_slice] = targets.ravel()
    controller = build_controller(spec.controller, T, encoder.dX, len(robot), offset)
    if spec.disturbance is not None and not isinstance(spec.disturbance, DisturbancePlan):
        raise InvalidController(f"disturbance must be a DisturbancePlan, got {type(spec.disturbance).__name__}")
    return TrialPlan(spec.condition, T, float(spec.dt), q0, targets, controller, objects, bool(spec.record_images),
                     spec.disturbance)


def build_controller(spec: ControllerSpec, T: int, dX: int, dU: int,
                     state_offset: np.ndarray | None = None) -> Controller:
    """The runtime controller of a spec, checked against horizon T, state size dX, action size dU;
    state_offset [dX]: what a visuomotor policy adds to x to get the robot's own state."""
    if isinstance(spec, LinearGaussianSpec):
        K, k = np.asarray(spec.K), np.asarray(spec.k)
        if K.ndim != 3 or K.shape[0] != T:
            raise InvalidController(f"gains K must be [T={T}, dU, dX], got shape {list(K.shape)}")
        ctrl = LinearGaussianController.from_flat(K.ravel(), np.ravel(k), T=T, du=K.shape[1],
                                                  dx=K.shape[2], expected_dx=dX, expected_du=dU)
        return ctrl
    if isinstance(spec, NetworkSpec):
        from gps_controllers.network_controller import NetworkPolicyController  # torch
        return NetworkPolicyController(spec.policy, T, dX, dU, spec.noise, state_offset)
    if isinstance(spec, MPCSpec):
        return MPCController(spec, T, dX, dU)
    raise InvalidController(f"unknown controller description {type(spec).__name__}")


def _vector(values: Sequence[float] | np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.array(values, dtype=np.float64, copy=True).ravel()
    if arr.size != n:
        raise InvalidController(f"{what} must have {n} entries, got {arr.size}")
    if not np.isfinite(arr).all():
        raise InvalidController(f"{what} has non-finite values: {arr.tolist()}")
    return arr
