"""The in-process agent: PyBullet arm + state encoder in this process, no DDS.

For fast research, tests and benchmarks; the ROS 2 graph runs the same controllers through the
controller node.
"""
from __future__ import annotations

import numpy as np

from gps_agent_ros.agent import PolicyFn, Trial
from gps_agent_ros.experiment import Condition, Experiment
from gps_agent_ros.pybullet_arm import PyBulletArm


class InProcessAgent:
    def __init__(self, experiment: Experiment):
        cfg = experiment.config
        self.experiment = experiment
        self.arm = PyBulletArm(experiment.urdf_path, list(cfg.robot.joints), dt=cfg.dt,
                               substeps=cfg.sim.substeps, gravity_compensation=cfg.sim.gravity_compensation,
                               armature=cfg.sim.armature, damping=cfg.sim.damping)
        self.effort_limits = np.asarray(experiment.encoder.effort_limits, dtype=float)

    def run_trial(self, cond: Condition, K: np.ndarray, k: np.ndarray) -> Trial:
        T, dU, _ = K.shape
        return self._rollout(cond, T, dU, lambda t, x: K[t] @ x + k[t])

    def run_policy_trial(self, cond: Condition, policy_fn: PolicyFn) -> Trial:
        return self._rollout(cond, self.experiment.config.T, self.experiment.dU, policy_fn)

    def _rollout(self, cond: Condition, T: int, dU: int, act: PolicyFn) -> Trial:
        exp = self.experiment
        X, U = np.empty((T, exp.dX)), np.empty((T, dU))
        self.arm.reset(cond.q0)
        for t in range(T):
            q, qd = self.arm.joint_state()
            X[t] = exp.encoder.encode(q, qd, cond.targets)
            # record what the arm actually receives: the dynamics fit must see the clipped torque
            U[t] = np.clip(act(t, X[t]), -self.effort_limits, self.effort_limits)
            self.arm.step(U[t])
        return Trial(X, U)

    def close(self) -> None:
        self.arm.close()
