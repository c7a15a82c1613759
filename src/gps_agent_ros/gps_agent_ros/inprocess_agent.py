"""The in-process agent: the simulated arm and the trial runner in this process, no DDS.

For fast research, tests and benchmarks. It runs exactly what the node graph runs: sim_node's
SimArm, the trial validation of controller_node (gps_controllers.trial_spec.plan_trial), its
TrialRunner and its safety filter (URDF limits, velocity abort), so an unstable simulation aborts
here as it does through the graph, and seeded trials are bit-identical either way.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gps_agent_ros.agent import Trial, TrialFailed, TrialRequest, trial_spec
from gps_agent_ros.experiment import Condition, Experiment
from gps_agent_ros.sim_arm import CommandKind, SimArm, SimArmConfig
from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.safety import DEFAULT_VELOCITY_MARGIN, SafetyFilter
from gps_controllers.trial_runner import TrialRunner, TrialStatus
from gps_controllers.trial_spec import ControllerSpec, plan_trial


class InProcessAgent:
    def __init__(self, experiment: Experiment):
        cfg = experiment.config
        self.experiment = experiment
        self.joints = tuple(cfg.robot.joints)
        self.sim = SimArm(SimArmConfig(
            urdf_path=experiment.urdf_path, joint_names=self.joints, period=cfg.dt, substeps=cfg.sim.substeps,
            gravity_compensation=cfg.sim.gravity_compensation, armature=cfg.sim.armature, damping=cfg.sim.damping))
        # what controller_node uses with its default parameters (node_params.controller_parameters)
        self.safety = SafetyFilter.from_urdf(experiment.urdf_path, self.joints,
                                             velocity_margin=DEFAULT_VELOCITY_MARGIN, command_interface='effort')

    def run_many(self, requests: Sequence[TrialRequest]) -> list[Trial]:
        return [self.run(r.condition, r.controller) for r in requests]

    def run(self, condition: Condition, controller: ControllerSpec) -> Trial:
        exp = self.experiment
        try:
            plan = plan_trial(trial_spec(exp, condition, controller), exp.encoder)
        except InvalidController as exc:
            raise TrialFailed(f'{condition.name}: controller rejected: {exc}') from exc
        self.sim.reset(self.joints, plan.q0)
        runner = TrialRunner(exp.encoder, plan.controller, self.safety, plan.targets, plan.horizon, plan.dt)
        step = 0
        while True:
            q, qd = self.sim.joint_state()
            u = runner.on_state(q, qd, step * plan.dt, step * plan.dt)   # stamps in sim time
            if runner.done:
                break
            self.sim.set_command(CommandKind.EFFORT, u)
            self.sim.step()
            step += 1
        if runner.status != TrialStatus.COMPLETED:
            raise TrialFailed(f'{condition.name}: trial ended {runner.status.name}: {runner.reason}')
        return Trial(runner.X.copy(), runner.U.copy(), np.arange(plan.horizon) * plan.dt, 'inprocess')

    def close(self) -> None:
        self.sim.close()
