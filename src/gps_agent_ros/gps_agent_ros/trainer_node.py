"""trainer_node: runs an experiment through the node graph (RosAgent -> controller_node).

Publishes each iteration's mean cost (gps/cost, std_msgs/Float64) and final end-effector
distances per condition (gps/final_distance, std_msgs/Float64MultiArray), and writes the same
metrics.json / checkpoints / plot as the in-process agent.

    ros2 run gps_agent_ros trainer_node --ros-args -p experiment:=config/ur5e_reach.yaml -p out:=runs/x
    gps-train config/ur5e_reach.yaml --agent ros      # also starts sim_node + controller_node
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64, Float64MultiArray

from gps_agent_ros.bringup import Bringup, BringupError
from gps_agent_ros.experiment import Experiment
from gps_agent_ros.ros_agent import RosAgent, TrialFailed
from gps_agent_ros.trainer import train
from gps_core.config import ConfigError, ExperimentConfig, load_experiment


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__('trainer_node')
        d = ParameterDescriptor
        self.declare_parameter('experiment', '', d(description='experiment YAML'))
        self.declare_parameter('out', 'runs/ros', d(description='output folder'))
        self.declare_parameter('iterations', 0, d(description='0: the YAML value'))
        self.declare_parameter('seed', -1, d(description='-1: the YAML value'))
        self.declare_parameter('namespaces', ['arm0'], d(description='arm namespaces (one RunTrial server each)'))
        self.declare_parameter('resume', False, d(description='continue the run in out after its last complete iteration'))
        self.declare_parameter('overwrite', False, d(description='clear a non-empty out first'))
        self.cost_pub = self.create_publisher(Float64, 'gps/cost', 10)
        self.distance_pub = self.create_publisher(Float64MultiArray, 'gps/final_distance', 10)

    def publish_iteration(self, record: dict, _batches=None) -> None:
        self.cost_pub.publish(Float64(data=float(record['mean_cost'])))
        self.distance_pub.publish(Float64MultiArray(data=[float(d) for d in record['final_ee_distance']]))


def run_ros_training(cfg: ExperimentConfig, out: Path, namespaces: list[str] | str = ('arm0',),
                     attach: bool = False, progress=print, resume_from: Path | None = None) -> int:
    """Train through the graph on the arms in `namespaces` (all busy at once); unless attach,
    start a sim_node + controller_node pair in each first (logs in OUT/logs/<namespace>).

    The caller's environment decides ROS_DOMAIN_ID; DDS discovery stays on this host unless
    ROS_AUTOMATIC_DISCOVERY_RANGE says otherwise.
    """
    namespaces = [namespaces] if isinstance(namespaces, str) else list(namespaces)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    bringups = {} if attach else {ns: Bringup(cfg, ns, log_dir=out / 'logs' / ns).start() for ns in namespaces}
    # the caller handles SIGINT/SIGTERM (gps-train: stop, zero the arms, one line); rclpy's own
    # handlers would shut the context down under the running trials first
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = TrainerNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    agent = None
    try:
        if bringups:
            progress(f'bringup: sim_node + controller_node in {", ".join("/" + ns for ns in namespaces)} '
                     f'(ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}, logs in {out / "logs"})')
        exp = Experiment(cfg)
        health = (lambda ns: bringups[ns].dead()) if bringups else None
        agent = RosAgent(node, executor, exp, namespaces, arm_health=health)
        train(exp, agent, 'ros', out, cfg.iterations, progress=progress, on_iteration=node.publish_iteration,
              resume_from=resume_from)
        return 0
    except (TrialFailed, BringupError) as err:
        progress(f'gps-train: {err}')
        return 1
    finally:
        if agent is not None:
            agent.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for bringup in bringups.values():
            bringup.stop()


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run gps_agent_ros trainer_node` (attaches to running nodes)."""
    rclpy.init(args=args)
    probe = TrainerNode()
    path = probe.get_parameter('experiment').value
    out = Path(probe.get_parameter('out').value)
    iterations = probe.get_parameter('iterations').value or None
    seed = probe.get_parameter('seed').value
    namespaces = list(probe.get_parameter('namespaces').value)
    resume, overwrite = probe.get_parameter('resume').value, probe.get_parameter('overwrite').value
    probe.destroy_node()
    rclpy.try_shutdown()
    try:
        cfg = load_experiment(path, iterations=iterations, seed=None if seed < 0 else seed)
        from gps_agent_ros.preflight import preflight
        from gps_agent_ros.validate import validate_experiment
        validate_experiment(cfg)
        for warning in preflight(Experiment(cfg)):
            print(f'trainer_node: warning: {warning}', file=sys.stderr, flush=True)
        from gps_agent_ros.run_dir import prepare_run_folder
        resume_from = prepare_run_folder(out, cfg, resume, overwrite)
    except ConfigError as err:
        print(f'trainer_node: {err}', file=sys.stderr)
        return 2
    return run_ros_training(cfg, out, namespaces, attach=True,
                            progress=lambda s: print(s, flush=True), resume_from=resume_from)


if __name__ == '__main__':
    sys.exit(main())
