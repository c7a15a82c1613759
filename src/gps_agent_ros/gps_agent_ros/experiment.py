"""An experiment YAML turned into the objects training needs (ROS-free).

Shared by the in-process agent and the ROS 2 trainer: the state encoder of the robot named in
the YAML, each condition's end-effector targets, costs and initial controllers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from gps_controllers.state_encoder import StateEncoder
from gps_core.config import ConditionConfig, CostConfig, ExperimentConfig
from gps_core.costs import ActionCost, EEPointCost, StateCost, WeightedSumCost
from gps_core.costs.base import Cost
from gps_core.policies import LinearGaussianPolicy, hold_pose_controller


@dataclass(frozen=True)
class Condition:
    name: str               # 'train/0', 'test/3', 'distractor/1', ...
    q0: np.ndarray          # [nj] initial joint positions
    targets: np.ndarray     # [P, 3] end-effector point targets in the base frame
    # scene objects placed at the reset: name ('block', 'distractor', 'hole') -> centre [3] (base frame)
    objects: Mapping[str, np.ndarray] = field(default_factory=dict)


class Experiment:
    def __init__(self, config: ExperimentConfig):
        self.config = config
        robot = config.robot
        self.encoder = StateEncoder(str(config.resolve(robot.urdf)), list(robot.joints), robot.ee_link,
                                    np.asarray(robot.ee_points, dtype=float), base_link=robot.base_link)
        self.conditions = [self._condition(f'train/{i}', c) for i, c in enumerate(config.conditions)]
        self.test_conditions = [self._condition(f'test/{i}', c) for i, c in enumerate(config.test_conditions)]
        self.distractor_conditions = [self._condition(f'distractor/{i}', c)
                                      for i, c in enumerate(config.distractor_conditions)]

    @property
    def dX(self) -> int:
        return self.encoder.dX

    @property
    def dU(self) -> int:
        return len(self.config.robot.joints)

    @property
    def urdf_path(self) -> str:
        return str(self.config.resolve(self.config.robot.urdf))

    def _condition(self, name: str, c: ConditionConfig) -> Condition:
        rpy = c.target_rpy if c.target_rpy is not None else self.config.target_rpy
        R = Rotation.from_euler('xyz', rpy).as_matrix()
        offsets = np.asarray(self.config.robot.ee_points, dtype=float)
        # target_position is where the FIRST end-effector point must go; the others follow the pose.
        origin = np.asarray(self.config.target(c), dtype=float) - R @ offsets[0]
        scene, objects = self.config.scene, {}
        if c.block is not None:
            objects['block'] = scene.block_center(c.block)
        if c.distractor is not None:
            objects['distractor'] = scene.block_center(c.distractor, scene.distractor)
        if c.hole is not None:
            objects['hole'] = np.asarray(c.hole, dtype=float)
        return Condition(name, np.asarray(c.initial_joint_positions, dtype=float),
                         self.encoder.targets_from_pose(origin, R), objects)

    @property
    def visuomotor(self) -> bool:
        """The policy sees camera images (and the robot's own state), not the target."""
        return getattr(self.config.policy, 'kind', 'mlp') == 'spatial_softmax'

    def policy_state(self, X: np.ndarray, condition: Condition) -> np.ndarray:
        """What a visuomotor policy sees besides the image: the state with the end-effector points
        in the base frame instead of relative to the target (nothing that names the target).
        X [..., dX] -> [..., dX]."""
        return X + self.state_offset(condition)

    def state_offset(self, condition: Condition) -> np.ndarray:
        """[dX]: zero but for the end-effector points, where the targets (x + offset = the robot's own state)."""
        offset = np.zeros(self.dX)
        offset[self.encoder.ee_slice] = condition.targets.ravel()
        return offset

    def ee_path(self, condition: Condition, X: np.ndarray) -> np.ndarray:
        """[..., T, 3] positions of the first end-effector point (base frame) in states X [..., T, dX]."""
        return X[..., self.encoder.ee_slice][..., :3] + condition.targets[0]

    def final_distance(self, X: np.ndarray) -> np.ndarray:
        """Distance of the first end-effector point to its target at the last step, per sample. X [N, T, dX]."""
        rel = X[:, -1, self.encoder.ee_slice]          # point positions minus targets, [N, 3P]
        return np.linalg.norm(rel[:, :3], axis=1)

    def success(self, condition: Condition, X: np.ndarray) -> np.ndarray:
        """[N] bool: each trial X [N, T, dX] succeeded by the task's rule. A peg task: the peg is in the
        hole at the last step (gps_core.peg_config.inserted; the first end-effector point is the tip);
        otherwise the first point ends within algorithm.success_distance of its target."""
        task = self.config.peg_task
        if task is None:
            return self.final_distance(X) <= self.config.algorithm.success_distance
        from gps_core.peg_config import inserted
        return inserted(self.ee_path(condition, X[:, -1]), condition.objects['hole'], task)

    def costs(self) -> list[Cost]:
        """One cost per condition; targets live in the state (points are relative), so they are equal."""
        cost = build_cost(self.config.cost, self.config.T, self.dX, self.dU,
                          np.arange(self.dX)[self.encoder.ee_slice])
        return [cost for _ in self.conditions]

    def init_policies(self) -> list[LinearGaussianPolicy]:
        init = self.config.algorithm.init
        idx = np.arange(self.dX)
        return [hold_pose_controller(self.config.T, self.dX, c.q0, idx[:self.dU], idx[self.dU:2 * self.dU],
                                     np.asarray(init.kp), np.asarray(init.kd), np.asarray(init.init_var))
                for c in self.conditions]


def build_cost(cfg: CostConfig, T: int, dX: int, dU: int, ee_index: np.ndarray) -> Cost:
    """The weighted sum of the costs the YAML enables."""
    costs: list[Cost] = []
    weights: list[float] = []
    if cfg.action is not None:
        costs.append(ActionCost(np.broadcast_to(np.asarray(cfg.action.wu, dtype=float), (dU,))))
        weights.append(cfg.action.weight)
    if cfg.ee_point is not None:
        e = cfg.ee_point
        costs.append(EEPointCost(ee_index, np.zeros(len(ee_index)),
                                 np.broadcast_to(np.asarray(e.wp, dtype=float), (len(ee_index),)),
                                 l1=e.l1, l2=e.l2, alpha=e.alpha, ramp=e.ramp, final_multiplier=e.final_multiplier))
        weights.append(e.weight)
    if cfg.state is not None:
        s = cfg.state
        idx = np.asarray(s.indices, dtype=int)
        costs.append(StateCost(idx, np.asarray(s.target, dtype=float),
                               np.broadcast_to(np.asarray(s.wp, dtype=float), idx.shape),
                               ramp=s.ramp, final_multiplier=s.final_multiplier))
        weights.append(s.weight)
    if not costs:
        raise ValueError('the experiment enables no cost term (cost: action / ee_point / state)')
    return WeightedSumCost(costs, weights)
