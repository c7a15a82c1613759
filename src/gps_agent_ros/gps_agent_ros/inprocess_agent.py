"""The in-process agent: the simulated arm and the trial runner in this process, no DDS.

For fast research, tests and benchmarks. It runs exactly what the node graph runs: sim_node's
SimArm, the trial validation of controller_node (gps_controllers.trial_spec.plan_trial), its
TrialRunner and its safety filter (URDF limits, velocity abort), so an unstable simulation aborts
here as it does through the graph, and seeded trials are bit-identical either way. A peg task
simulates the arm with the peg (its URDF written at start, as sim_node does) and the block with the
hole; a trial's disturbance plan goes to the arm's reset, as sim_node's reset request carries it.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np

from gps_agent_ros.agent import SafetyStop, SafetyStopped, Trial, TrialFailed, TrialRequest, trial_spec
from gps_agent_ros.experiment import Condition, Experiment
from gps_agent_ros.sim_arm import CommandKind, SimArm, SimArmConfig
from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.safety import DEFAULT_VELOCITY_MARGIN, SafetyFilter
from gps_controllers.trial_runner import TrialRunner, TrialStatus
from gps_controllers.trial_spec import ControllerSpec, NetworkSpec, plan_trial
from gps_core.disturbance_plan import DisturbancePlan


class InProcessAgent:
    def __init__(self, experiment: Experiment):
        cfg = experiment.config
        self.experiment = experiment
        self.joints = tuple(cfg.robot.joints)
        self._peg_arm = None
        sim_urdf = experiment.urdf_path
        if cfg.peg_task is not None:      # the arm with the peg at its flange
            from gps_agent_ros.peg_task import PegArm
            self._peg_arm = PegArm(experiment.urdf_path, cfg.peg_task.peg)
            sim_urdf = self._peg_arm.urdf_path
        self.sim = SimArm(SimArmConfig(
            urdf_path=sim_urdf, joint_names=self.joints, period=cfg.dt, substeps=cfg.sim.substeps,
            gravity_compensation=cfg.sim.gravity_compensation, armature=cfg.sim.armature, damping=cfg.sim.damping))
        # what controller_node uses with its default parameters (node_params.controller_parameters)
        self.safety = SafetyFilter.from_urdf(experiment.urdf_path, self.joints,
                                             velocity_margin=DEFAULT_VELOCITY_MARGIN, command_interface='effort')
        self.scene = self.camera = None
        if cfg.scene is not None:   # the table, blocks and camera in the arm's world, as sim_node's sensor
            from gps_agent_ros.scene import Camera, Scene
            self.scene, self.camera = Scene(self.sim.client_id, cfg.scene), Camera(self.sim.client_id, cfg.scene.camera)
        elif cfg.peg_task is not None:    # the block with the hole, moved to each trial's
            from gps_agent_ros.peg_task import PegScene
            self.scene = PegScene(self.sim.client_id, cfg.peg_task)

    def run_many(self, requests: Sequence[TrialRequest], safety_stops: bool = False) -> list[Trial | SafetyStop]:
        out: list[Trial | SafetyStop] = []
        for r in requests:
            try:
                out.append(self.run(r.condition, r.controller, r.record_images, r.disturbance))
            except SafetyStopped as exc:
                if not safety_stops:
                    raise
                out.append(SafetyStop(r.condition.name, r.sample, str(exc)))
        return out

    def run(self, condition: Condition, controller: ControllerSpec, record_images: bool = False,
            disturbance: DisturbancePlan | None = None) -> Trial:
        exp = self.experiment
        try:
            plan = plan_trial(trial_spec(exp, condition, controller, record_images, disturbance), exp.encoder)
            if (plan.controller.image_shape is not None or record_images) and self.camera is None:
                raise InvalidController('the trial needs camera images but the experiment has no scene')
        except InvalidController as exc:
            raise TrialFailed(f'{condition.name}: controller rejected: {exc}') from exc
        try:
            self.sim.reset(self.joints, plan.q0, plan.disturbance)
            if self.scene is not None:
                self.scene.place(plan.objects)
        except ValueError as exc:         # what sim_node's reset answers as a failure
            raise TrialFailed(f'{condition.name}: reset refused: {exc}') from exc
        runner = TrialRunner(exp.encoder, plan.controller, self.safety, plan.targets, plan.horizon, plan.dt,
                             record_images=plan.record_images)
        with _one_thread(isinstance(controller, NetworkSpec)):
            self._run(runner, plan)
        if runner.status != TrialStatus.COMPLETED:
            error = SafetyStopped if runner.status == TrialStatus.ABORTED_LIMIT else TrialFailed
            raise error(f'{condition.name}: trial ended {runner.status.name}: {runner.reason}')
        return Trial(runner.X.copy(), runner.U.copy(), np.arange(plan.horizon) * plan.dt, 'inprocess', runner.images)

    def _run(self, runner: TrialRunner, plan) -> None:
        step = 0
        while True:
            q, qd = self.sim.joint_state()
            image = self.camera.render() if runner.needs_image else None
            u = runner.on_state(q, qd, step * plan.dt, step * plan.dt, image)   # stamps in sim time
            if runner.done:
                break
            self.sim.set_command(CommandKind.EFFORT, u)
            self.sim.step()
            step += 1

    def close(self) -> None:
        self.sim.close()
        if self._peg_arm is not None:
            self._peg_arm.close()


@contextlib.contextmanager
def _one_thread(network: bool):
    """A network runs on one torch thread, as controller_node runs it (its sums in the same
    order: the same numbers as through the graph), whatever this process trains with."""
    if not network:
        yield
        return
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
