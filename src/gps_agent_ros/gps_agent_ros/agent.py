"""What the trainer needs from an agent: run trials of controllers described as data.

A controller is a gps_controllers.trial_spec.ControllerSpec: a linear-Gaussian controller (K, k
with the noise folded in), a neural-network policy (its spec plus the trial's noise) or MPC-GPS's
teacher (its problem plus the trial's noise); a trial may carry the pushes a simulator applies
during it (a gps_core.disturbance_plan.DisturbancePlan, drawn by the trainer). Never a Python callable: the same description runs in this process (InProcessAgent) or on the arms behind
controller_node (RosAgent), through the same trial runner and safety filter.

An agent runs a batch of trials (`run_many`) in any order, on any of its arms, and returns them
in the order asked: a trial's result does not depend on where or when it ran, since each trial's
noise is drawn by the trainer from the trial's own seed and every trial starts with a reset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from gps_agent_ros.experiment import Condition, Experiment
from gps_controllers.trial_spec import ControllerSpec, TrialSpec
from gps_core.disturbance_plan import DisturbancePlan


class TrialFailed(RuntimeError):
    """A trial could not be run or did not complete; the message says why."""


class SafetyStopped(TrialFailed):
    """The safety filter stopped the trial (a joint past its velocity or effort limit): the
    controller's doing, not the arm's, so running the same controller again would stop again."""


@dataclass(frozen=True)
class SafetyStop:
    """What `run_many(..., safety_stops=True)` returns for a trial the safety filter stopped:
    the request's condition name and sample, and the filter's reason."""

    condition: str
    sample: int
    reason: str


@dataclass(frozen=True)
class TrialRequest:
    """One trial to run: the condition, the controller, and a label for logs and recordings."""

    condition: Condition
    controller: ControllerSpec
    sample: int = 0
    record_images: bool = False    # bring back the camera's image of every step
    disturbance: DisturbancePlan | None = None   # pushes during the trial (simulated arms)


@dataclass(frozen=True)
class Trial:
    """One recorded trajectory: X [T, dX] states, U [T, dU] the actions actually applied,
    stamps [T] the state stamps [s] (the arm's clock), arm: where it ran; images [T, H, W, 3]
    uint8 the camera's image at each state, when recorded."""

    X: np.ndarray
    U: np.ndarray
    stamps: np.ndarray
    arm: str
    images: np.ndarray | None = None


class Agent(Protocol):
    def run_many(self, requests: Sequence[TrialRequest], safety_stops: bool = False) -> list[Trial | SafetyStop]:
        """Run every request (the experiment's T steps from its condition's initial pose);
        the trials come back in the order of the requests. Raises TrialFailed; a trial the
        safety filter stopped raises SafetyStopped, or with `safety_stops` comes back as a
        SafetyStop in its place (not run again: the same controller would stop again)."""
        ...

    def close(self) -> None: ...


def run_one(agent: Agent, condition: Condition, controller: ControllerSpec) -> Trial:
    return agent.run_many([TrialRequest(condition, controller)])[0]


def trial_spec(exp: Experiment, condition: Condition, controller: ControllerSpec,
               record_images: bool = False, disturbance: DisturbancePlan | None = None) -> TrialSpec:
    """The trial an agent runs: the condition's start pose, targets and objects, the experiment's T, dt,
    and the pushes during it, if any."""
    cfg = exp.config
    return TrialSpec(condition=condition.name, joint_names=tuple(cfg.robot.joints), q0=condition.q0,
                     targets=condition.targets, horizon=cfg.T, dt=cfg.dt, controller=controller,
                     record_images=record_images, objects=dict(condition.objects), disturbance=disturbance)
