"""visualization_msgs/MarkerArray of a training run, from arrays, for rviz (config/gps.rviz) and
Foxglove: each condition's target, the last iteration's sampled end-effector paths coloured by
their cost, and the network's noiseless path per condition when there is one.

Shapes (M conditions, N_m samples of condition m, T steps):
    targets        [M, 3]              target of each condition's first end-effector point [m]
    sample_paths   M arrays [N_m, T, 3]  that point's path in each sample (base frame) [m]
    sample_costs   M arrays [N_m]      each sample's total cost (sum over t of l(x_t, u_t))
    policy_paths   [M, T, 3] or None   the network's noiseless path per condition

Every array publishes as one message that replaces the previous one in rviz: it starts with a
DELETEALL (paths of an iteration with fewer samples do not linger) and gives each marker a
namespace and id that depend only on what it shows, never on the iteration:

    ns 'targets'            id m   SPHERE, diameter 2 * target_radius (the success distance:
                                   a path ending inside the sphere solved its condition)
    ns 'samples/<name>'     id i   LINE_STRIP of sample i of condition <name> (e.g. 'train/0')
    ns 'policy'             id m   LINE_STRIP of the network alone on condition m

so rviz's Marker display lists the namespaces and each can be hidden on its own. Published on
TOPIC with QOS (transient local, depth 1: the latest iteration reaches an rviz started later).
Colours: `cost_colour` maps costs onto a green -> yellow -> red ramp (lowest cost of the batch
green, highest red; `cost_range` fixes the range, e.g. to compare iterations).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

TOPIC = 'gps/markers'
# latched: an rviz started mid-run shows the latest iteration at once (config/gps.rviz subscribes so)
QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
FRAME = 'base_link'
TARGET_NS, POLICY_NS, SAMPLES_NS = 'targets', 'policy', 'samples'
# the ramp's stops, low cost -> high cost: a light green, yellow, red (readable on rviz's dark grey)
_RAMP = np.array([[0.10, 0.80, 0.35], [0.95, 0.85, 0.10], [0.90, 0.15, 0.10]])
TARGET_RGBA = (0.20, 0.55, 1.00, 0.35)      # translucent blue: the path's end shows through
POLICY_RGBA = (1.00, 1.00, 1.00, 1.00)      # white, drawn wider than the samples
SAMPLE_ALPHA = 0.8


def cost_colour(costs: np.ndarray, cost_range: tuple[float, float] | None = None) -> np.ndarray:
    """RGB [n, 3] in [0, 1] of costs [n]: linear in the cost between the ramp's stops, the low
    end of `cost_range` (default: the lowest of `costs`) green, the high end red; costs outside
    the range take its end colours, a range of zero width is all green."""
    costs = np.asarray(costs, dtype=float).reshape(-1)
    if not np.all(np.isfinite(costs)):
        raise ValueError(f'costs must be finite, got {costs.tolist()}')
    if costs.size == 0:
        return np.zeros((0, 3))
    lo, hi = (float(costs.min()), float(costs.max())) if cost_range is None else map(float, cost_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f'cost_range must be finite with low <= high, got {(lo, hi)}')
    s = np.zeros_like(costs) if hi == lo else np.clip((costs - lo) / (hi - lo), 0.0, 1.0)
    position = s * (len(_RAMP) - 1)                       # where on the ramp, in stops
    k = np.minimum(position.astype(int), len(_RAMP) - 2)  # the segment's first stop
    w = (position - k)[:, None]
    return (1.0 - w) * _RAMP[k] + w * _RAMP[k + 1]


def training_markers(targets: np.ndarray, sample_paths: Sequence[np.ndarray], sample_costs: Sequence[np.ndarray],
                     condition_names: Sequence[str] | None = None, policy_paths: np.ndarray | None = None, *,
                     target_radius: float = 0.05, cost_range: tuple[float, float] | None = None,
                     frame_id: str = FRAME, stamp: Time | None = None, line_width: float = 0.004
                     ) -> MarkerArray:
    """The run's MarkerArray (see the module docstring for shapes, namespaces and ids).

    stamp: the markers' header stamp; default zero, which rviz reads as "the latest transform".
    """
    targets = _points(targets, 'targets')
    M = targets.shape[0]
    names = [f'condition_{m}' for m in range(M)] if condition_names is None else [str(n) for n in condition_names]
    if len(sample_paths) != M or len(sample_costs) != M or len(names) != M:
        raise ValueError(f'{M} targets but {len(sample_paths)} sample path sets, {len(sample_costs)} cost sets '
                         f'and {len(names)} condition names')
    paths = [_paths(p, f'sample_paths[{m}]') for m, p in enumerate(sample_paths)]
    costs = [np.asarray(c, dtype=float).reshape(-1) for c in sample_costs]
    for m, (p, c) in enumerate(zip(paths, costs)):
        if c.shape != (p.shape[0],):
            raise ValueError(f'sample_costs[{m}] has {c.size} costs for {p.shape[0]} sampled paths')
    all_costs = np.concatenate(costs) if costs else np.zeros(0)
    if cost_range is None and all_costs.size:
        cost_range = (float(all_costs.min()), float(all_costs.max()))
    if not (np.isfinite(target_radius) and target_radius > 0.0):
        raise ValueError(f'target_radius must be a positive number [m], got {target_radius}')

    stamp = stamp if stamp is not None else Time()
    out = MarkerArray()
    out.markers.append(Marker(action=Marker.DELETEALL))     # ns '': every namespace of this topic
    for m, target in enumerate(targets):
        sphere = _marker(frame_id, stamp, TARGET_NS, m, Marker.SPHERE, TARGET_RGBA)
        sphere.pose.position = Point(x=float(target[0]), y=float(target[1]), z=float(target[2]))
        sphere.scale.x = sphere.scale.y = sphere.scale.z = 2.0 * float(target_radius)
        out.markers.append(sphere)
    for m, (p, c) in enumerate(zip(paths, costs)):
        for i, (path, rgb) in enumerate(zip(p, cost_colour(c, cost_range))):
            out.markers.append(_strip(frame_id, stamp, f'{SAMPLES_NS}/{names[m]}', i, path,
                                      (*rgb.tolist(), SAMPLE_ALPHA), line_width))
    if policy_paths is not None:
        policy = _paths(policy_paths, 'policy_paths')
        if policy.shape[0] != M:
            raise ValueError(f'policy_paths holds {policy.shape[0]} paths for {M} conditions')
        for m, path in enumerate(policy):
            out.markers.append(_strip(frame_id, stamp, POLICY_NS, m, path, POLICY_RGBA, 2.5 * line_width))
    return out


# ----------------------------------------------------------------------------- helpers
def _marker(frame_id: str, stamp: Time, ns: str, marker_id: int, kind: int, rgba) -> Marker:
    marker = Marker(ns=ns, id=int(marker_id), type=kind, action=Marker.ADD)
    marker.header.frame_id, marker.header.stamp = frame_id, stamp
    marker.pose.orientation.w = 1.0
    marker.color = ColorRGBA(r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))
    return marker                                           # lifetime 0: until replaced


def _strip(frame_id: str, stamp: Time, ns: str, marker_id: int, path: np.ndarray, rgba, width: float) -> Marker:
    strip = _marker(frame_id, stamp, ns, marker_id, Marker.LINE_STRIP, rgba)
    strip.scale.x = float(width)                            # LINE_STRIP: only x, the line width [m]
    strip.points = [Point(x=x, y=y, z=z) for x, y, z in path.tolist()]
    return strip


def _points(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[1] != 3 or not np.all(np.isfinite(a)):
        raise ValueError(f'{what} must be finite [M, 3], got shape {list(a.shape)}')
    return a


def _paths(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[1] < 2 or not np.all(np.isfinite(a)):
        raise ValueError(f'{what} must be finite [n, T >= 2, 3] paths, got shape {list(a.shape)}')
    return a
