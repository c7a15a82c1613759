"""Node parameters derived from an experiment YAML: one source of truth for the bringup, the
launch files and the trainer, so the sim, the controller and the trainer agree on the robot."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from gps_core.config import ExperimentConfig, to_dict


def _per_joint(value: Any, n: int) -> list[float]:
    return [float(v) for v in np.broadcast_to(np.asarray(value, dtype=float), (n,))]


def controller_parameters(cfg: ExperimentConfig, command_interface: str = 'effort',
                          urdf_from_topic: bool = False, use_sim_time: bool = False) -> dict[str, Any]:
    """controller_node parameters. urdf_from_topic: read /robot_description (real arms);
    use_sim_time: follow the lockstep simulator's /clock (stamps and latencies in sim time)."""
    robot = cfg.robot
    return {
        'use_sim_time': use_sim_time,
        'urdf_path': '' if urdf_from_topic else str(cfg.resolve(robot.urdf)),
        'joints': list(robot.joints),
        'ee_link': robot.ee_link,
        'base_link': robot.base_link,
        'ee_points': [float(v) for p in robot.ee_points for v in p],
        'command_interface': command_interface,
        'controller_name': f'forward_{command_interface}_controller',
        # a simulator resets at once: a reset not answered within 1 s means the sim is gone
        # (a real arm's launch sets the time its trajectory takes instead)
        'reset_timeout_s': 1.0,
        # a visuomotor policy's images: the simulator's sensor_node, each step's image stamped as
        # that step's joint_states in lockstep, the newest of the last 0.1 s when free-running
        'camera_topic': 'camera/image_raw' if cfg.scene is not None else '',
        'image_max_age_s': 0.0 if use_sim_time else 0.1,
    }


def sim_parameters(cfg: ExperimentConfig, mode: str = 'lockstep') -> dict[str, Any]:
    nj = len(cfg.robot.joints)
    return {
        'urdf_path': str(cfg.resolve(cfg.robot.urdf)),
        'joints': list(cfg.robot.joints),
        'dt': float(cfg.dt),
        'substeps': int(cfg.sim.substeps),
        'gravity_compensation': bool(cfg.sim.gravity_compensation),
        'armature': _per_joint(cfg.sim.armature, nj),
        'damping': _per_joint(cfg.sim.damping, nj),
        'mode': mode,
        'initial_positions': [float(v) for v in cfg.conditions[0].initial_joint_positions],
        'scene': json.dumps(to_dict(cfg.scene)) if cfg.scene is not None else '',
        'peg_task': json.dumps(to_dict(cfg.peg_task)) if cfg.peg_task is not None else '',
    }


def params_file(nodes: dict[str, dict[str, Any]], namespace: str) -> dict[str, Any]:
    """The ROS 2 --params-file layout: {'/ns/node': {'ros__parameters': {...}}}."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return {f'{ns}/{name}': {'ros__parameters': params} for name, params in nodes.items()}
