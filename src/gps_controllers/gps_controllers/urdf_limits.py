"""Joint limits read straight from a URDF's <limit> tags (xml.etree, no ROS, no pinocchio).

Pinocchio folds limits into its model too, but reports continuous joints in its (cos, sin)
configuration space; reading the XML keeps the limits in the units a controller commands.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

_LIMITED = ("revolute", "prismatic")
_UNBOUNDED = ("continuous",)


@dataclass(frozen=True)
class JointLimits:
    """Limits of one joint. Positions in rad (revolute) or m (prismatic);
    lower/upper are -inf/+inf for continuous joints."""

    lower: float
    upper: float
    effort: float
    velocity: float


def read_joint_limits(urdf_path: str | Path) -> dict[str, JointLimits]:
    """Limits of every revolute, prismatic and continuous joint of the URDF, by joint name.

    Raises ValueError if the file is not a URDF, or a joint lacks a <limit> with positive
    effort and velocity (the URDF spec requires them for these joint types).
    """
    try:
        root = ET.parse(str(urdf_path)).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"cannot read URDF {str(urdf_path)!r}: {exc}") from exc
    if root.tag != "robot":
        raise ValueError(f"{str(urdf_path)!r} is not a URDF: root element is <{root.tag}>")

    limits: dict[str, JointLimits] = {}
    for joint in root.iter("joint"):
        name, jtype = joint.get("name"), joint.get("type")
        if jtype not in _LIMITED + _UNBOUNDED:
            continue
        tag = joint.find("limit")
        if tag is None:
            raise ValueError(f"joint {name!r} ({jtype}) in {str(urdf_path)!r} has no <limit>")
        effort = _attr(tag, "effort", name)
        velocity = _attr(tag, "velocity", name)
        if not (effort > 0.0 and velocity > 0.0):
            raise ValueError(f"joint {name!r} needs positive effort and velocity limits, "
                             f"got effort={effort}, velocity={velocity}")
        if jtype in _UNBOUNDED:
            lower, upper = -math.inf, math.inf
        else:
            lower = _attr(tag, "lower", name, default=0.0)
            upper = _attr(tag, "upper", name, default=0.0)
            if not lower <= upper:
                raise ValueError(f"joint {name!r} has lower limit {lower} > upper {upper}")
        limits[name] = JointLimits(lower=lower, upper=upper, effort=effort, velocity=velocity)
    return limits


def _attr(tag: ET.Element, key: str, joint: str | None, default: float | None = None) -> float:
    raw = tag.get(key)
    if raw is None:
        if default is None:
            raise ValueError(f"joint {joint!r}: <limit> has no {key!r} attribute")
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"joint {joint!r}: <limit {key}={raw!r}> is not a number") from exc
    if not math.isfinite(value):
        raise ValueError(f"joint {joint!r}: <limit {key}={raw!r}> is not finite")
    return value
