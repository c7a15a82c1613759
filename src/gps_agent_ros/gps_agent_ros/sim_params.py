"""sim_node's parameters: declared read-only on the node, checked before anything is simulated.

Every check raises ValueError naming the parameter and the value it got, so a bad launch file
fails at start with that message instead of simulating the wrong arm.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from gps_core.peg_config import PegTask
from gps_core.scene_config import SceneConfig

MODES = ('lockstep', 'realtime')


def declare_sim_parameters(node: Node) -> dict[str, Any]:
    """Declare sim_node's parameters (all read-only) and return them validated; ValueError naming
    the parameter that is wrong."""
    def declare(name: str, default: Any, description: str, **kw: Any) -> Any:
        node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True, **kw))
        try:
            return node.get_parameter(name).value
        except ParameterUninitializedException:  # typed, no default, not given
            return None

    prm = {
        'urdf_path': declare('urdf_path', '', 'URDF file of the arm (required)'),
        'joints': declare('joints', Parameter.Type.STRING_ARRAY,
                          'controlled joints, in the order of every command and joint_states array (required)'),
        'dt': declare('dt', 0.05, 'lockstep: control period [s] simulated per command'),
        'substeps': declare('substeps', 20, 'physics steps per dt; sets the physics step dt/substeps'),
        'gravity_compensation': declare('gravity_compensation', True,
                                        'add g(q) to the commanded torque, as a UR does'),
        'armature': declare('armature', 0.0, 'reflected rotor inertia [kg m^2]: one value or one per joint',
                            dynamic_typing=True),
        'damping': declare('damping', 0.0, 'viscous joint friction [N m s/rad]: one value or one per joint',
                           dynamic_typing=True),
        'mode': declare('mode', 'lockstep', "'lockstep' (one dt per command, publishes /clock) or "
                        "'realtime' (timer at publish_rate_hz, wall-clock stamps)"),
        'publish_rate_hz': declare('publish_rate_hz', 500.0, 'realtime: physics tick and joint_states rate [Hz]'),
        'command_timeout_s': declare('command_timeout_s', 0.25,
                                     'a command not refreshed for this long is zeroed [s]'),
        'initial_positions': declare('initial_positions', Parameter.Type.DOUBLE_ARRAY,
                                     'joint positions at start [rad]; default all zero'),
        'velocity_bandwidth': declare('velocity_bandwidth', 50.0,
                                      'bandwidth of the joint velocity servo behind velocity commands [rad/s]'),
        'scene': declare('scene', '', 'JSON of the scene (gps_core.scene_config.SceneConfig: table, blocks, '
                         'camera): placed in the world, its camera served by a sensor_node; empty: none'),
        'peg_task': declare('peg_task', '', 'JSON of a peg task (gps_core.peg_config.PegTask: peg, block): the '
                            'peg added to the arm, the block placed by each reset; empty: none'),
    }
    return validate_sim_parameters(prm)

def validate_sim_parameters(prm: dict[str, Any]) -> dict[str, Any]:
    if not prm['urdf_path'] or not Path(prm['urdf_path']).is_file():
        raise ValueError(f"parameter urdf_path must name a URDF file, got {prm['urdf_path']!r}")
    if not prm['joints']:
        raise ValueError('parameter joints (string array) is required')
    if prm['mode'] not in MODES:
        raise ValueError(f"parameter mode must be one of {MODES}, got {prm['mode']!r}")
    rate = float(prm['publish_rate_hz'])
    if not (math.isfinite(rate) and rate > 0.0):
        raise ValueError(f'parameter publish_rate_hz must be positive, got {rate}')
    nj = len(prm['joints'])
    for key in ('armature', 'damping'):
        value = prm[key]
        try:
            per_joint = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            per_joint = np.array([])
        if isinstance(value, (bool, str)) or per_joint.size not in (1, nj):
            raise ValueError(f'parameter {key} must be one number or {nj} (one per joint), got {value!r}')
        prm[key] = float(per_joint) if per_joint.ndim == 0 else tuple(per_joint.tolist())
    q0 = [] if prm['initial_positions'] is None else list(prm['initial_positions'])
    if q0 and len(q0) != nj:
        raise ValueError(f'parameter initial_positions has {len(q0)} values for {nj} joints')
    prm.update(initial_positions=q0, dt=float(prm['dt']), publish_rate_hz=rate)
    if prm['scene']:
        try:
            prm['scene'] = SceneConfig.from_dict(json.loads(prm['scene']))
        except (ValueError, TypeError) as err:
            raise ValueError(f'parameter scene: {err}') from err
    else:
        prm['scene'] = None
    if prm['peg_task']:
        if prm['scene'] is not None:
            raise ValueError('parameters scene and peg_task: give one of them')
        prm['peg_task'] = peg_task_from_json(prm['peg_task'])
    else:
        prm['peg_task'] = None
    return prm


def peg_task_from_json(text: str) -> PegTask:
    """The `peg_task` parameter: JSON of PegTask's fields ({'peg': {...}, 'block': {...}}); ValueError
    naming what is wrong."""
    from gps_core.config import build
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f'parameter peg_task: not JSON: {err}') from err
    return build(PegTask, data, 'parameter peg_task')     # a ConfigError (a ValueError) naming the key
