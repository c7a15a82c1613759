"""controller_node's parameters (declared with descriptors, validated before the node starts) and
the robot model they describe."""
from __future__ import annotations

import math
import os
import tempfile

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node

import numpy as np

from gps_controllers.safety import COMMAND_INTERFACES, DEFAULT_VELOCITY_MARGIN, SafetyFilter
from gps_controllers.state_encoder import StateEncoder
from gps_controllers.trial_lifecycle import LifecycleTimeouts

UR_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
             "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
UR_EE_POINTS = [0.0, 0.0, 0.0, 0.05, 0.0, 0.05, -0.05, 0.0, 0.05]


def declare_controller_parameters(node: Node) -> dict:
    """Declare controller_node's parameters (read-only, with descriptors) and return their
    validated values; raises ValueError naming a bad parameter."""
    def d(ptype: int, description: str) -> ParameterDescriptor:
        # read-only: the robot model and wiring are fixed for the node's lifetime
        return ParameterDescriptor(type=ptype, description=description, read_only=True)

    S, D, SA, DA = (ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
                    ParameterType.PARAMETER_STRING_ARRAY, ParameterType.PARAMETER_DOUBLE_ARRAY)
    params = [
        node.declare_parameter("urdf_path", "", d(
            S, "URDF file (or package:// URI); empty: read the robot_description topic")),
        node.declare_parameter("joints", UR_JOINTS, d(
            SA, "controlled joints, in the order of the state and command arrays")),
        node.declare_parameter("ee_link", "tool0", d(
            S, "link the end-effector points are attached to")),
        node.declare_parameter("base_link", "base_link", d(
            S, "frame of the end-effector points (empty: the URDF root)")),
        node.declare_parameter("ee_points", UR_EE_POINTS, d(
            DA, "end-effector point offsets in ee_link's frame, flat, 3 per point [m]")),
        node.declare_parameter("command_interface", "effort", d(
            S, "'effort' or 'velocity' (the forward command controller's interface)")),
        node.declare_parameter("controller_name", "forward_effort_controller", d(
            S, "commands go to <controller_name>/commands")),
        node.declare_parameter("reset_service", "reset", d(
            S, "gps_interfaces/srv/ResetArm service moving the arm to a trial's start")),
        node.declare_parameter("reset_timeout_s", 10.0, d(
            D, "reset service timeout [s]")),
        node.declare_parameter("stale_timeout_s", 0.5, d(
            D, "abort a trial when joint_states stop for this long [s] (steady clock)")),
        node.declare_parameter("robot_program_topic", "", d(
            S, "std_msgs/Bool saying the robot accepts commands (a UR: io_and_status_controller/"
               "robot_program_running); trials run only while it is true. Empty: not watched")),
        node.declare_parameter("camera_topic", "", d(
            S, "sensor_msgs/Image (rgb8) the visuomotor policies see, e.g. camera/image_raw (a camera "
               "driver or the simulator's sensor_node); empty: no camera")),
        node.declare_parameter("image_timeout_s", 0.5, d(
            D, "a step waits at most this long for its camera image, then the trial aborts [s]")),
        node.declare_parameter("image_max_age_s", 0.0, d(
            D, "a step's image may be stamped this much before its joint_states [s] (0: the same "
               "stamp, as a lockstep simulator's sensor publishes)")),
        node.declare_parameter("velocity_margin", DEFAULT_VELOCITY_MARGIN, d(
            D, "abort a trial when a joint speed exceeds this times its URDF limit")),
    ]
    p = {param.name: param.value for param in params}
    p["joints"], p["ee_points"] = list(p["joints"]), list(p["ee_points"])
    if not p["joints"]:
        raise ValueError("parameter 'joints' is empty")
    if len(p["ee_points"]) == 0 or len(p["ee_points"]) % 3:
        raise ValueError(f"parameter 'ee_points' needs 3 values per point, got "
                         f"{len(p['ee_points'])}")
    if p["command_interface"] not in COMMAND_INTERFACES:
        raise ValueError(f"parameter 'command_interface' must be one of "
                         f"{COMMAND_INTERFACES}, got {p['command_interface']!r}")
    if not (math.isfinite(p["image_max_age_s"]) and p["image_max_age_s"] >= 0.0):
        raise ValueError(f"parameter 'image_max_age_s' must be >= 0, got {p['image_max_age_s']}")
    for name in ("reset_timeout_s", "stale_timeout_s", "velocity_margin", "image_timeout_s"):
        if not (math.isfinite(p[name]) and p[name] > 0.0):
            raise ValueError(f"parameter {name!r} must be > 0, got {p[name]}")
    return p


def resolve_path(path: str) -> str:
    """A file path, or package://<package>/<relative path> through the ament index."""
    prefix = "package://"
    if not path.startswith(prefix):
        return path
    from ament_index_python.packages import get_package_share_directory
    package, _, relative = path[len(prefix):].partition("/")
    return os.path.join(get_package_share_directory(package), relative)


def robot_model(p: dict, urdf_path: str | None = None, urdf_text: str | None = None
                ) -> tuple[StateEncoder, SafetyFilter]:
    """The state encoder and safety filter of a URDF (a file, or its text as robot_description
    carries it) for controller_node's parameters p; raises ValueError on a bad URDF or joints."""
    if urdf_text is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "robot_description.urdf")
            with open(path, "w") as f:
                f.write(urdf_text)
            return robot_model(p, path)
    encoder = StateEncoder(urdf_path, p["joints"], p["ee_link"], np.reshape(p["ee_points"], (-1, 3)),
                           p["base_link"] or None)
    safety = SafetyFilter.from_urdf(urdf_path, p["joints"], velocity_margin=p["velocity_margin"],
                                    command_interface=p["command_interface"])
    return encoder, safety


def lifecycle_timeouts(p: dict) -> LifecycleTimeouts:
    return LifecycleTimeouts(stale_s=p["stale_timeout_s"], reset_s=p["reset_timeout_s"],
                             image_s=p["image_timeout_s"], image_max_age_s=p["image_max_age_s"])
