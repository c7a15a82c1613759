"""What the trainer needs from an agent: run one trial of a controller described as data.

A controller is a gps_controllers.trial_spec.ControllerSpec: a linear-Gaussian controller (K, k
with the noise folded in) or a neural-network policy (its spec plus the trial's noise). Never a
Python callable: the same description runs in this process (InProcessAgent) or on an arm behind
controller_node (RosAgent), through the same trial runner and safety filter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gps_agent_ros.experiment import Condition, Experiment
from gps_controllers.trial_spec import ControllerSpec, TrialSpec


class TrialFailed(RuntimeError):
    """A trial could not be run or did not complete; the message says why."""


@dataclass(frozen=True)
class Trial:
    """One recorded trajectory: X [T, dX] states, U [T, dU] the actions actually applied."""

    X: np.ndarray
    U: np.ndarray


class Agent(Protocol):
    def run(self, condition: Condition, controller: ControllerSpec) -> Trial:
        """Run the controller for the experiment's T steps from the condition's initial pose."""
        ...

    def close(self) -> None: ...


def trial_spec(exp: Experiment, condition: Condition, controller: ControllerSpec) -> TrialSpec:
    """The trial an agent runs: the condition's start pose and targets, the experiment's T, dt."""
    cfg = exp.config
    return TrialSpec(condition=condition.name, joint_names=tuple(cfg.robot.joints), q0=condition.q0,
                     targets=condition.targets, horizon=cfg.T, dt=cfg.dt, controller=controller)
