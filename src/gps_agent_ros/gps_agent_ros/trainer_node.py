"""trainer_node: runs an experiment through the node graph (RosAgent -> controller_node).

Publishes each iteration's mean cost (gps/cost, std_msgs/Float64), final end-effector distances
per condition (gps/final_distance, std_msgs/Float64MultiArray), every number of the iteration
stamped (gps/metrics, diagnostic_msgs/DiagnosticArray) and rviz markers (gps/markers,
visualization_msgs/MarkerArray: targets, sampled paths coloured by cost, the network's path), and
writes the same metrics.json / checkpoints / recordings / report as the in-process agent.

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
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import Float64, Float64MultiArray
from visualization_msgs.msg import MarkerArray

from gps_agent_ros import markers
from gps_agent_ros.diagnostics import iteration_metrics
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
        self.metrics_pub = self.create_publisher(DiagnosticArray, 'gps/metrics', 10)
        self.markers_pub = self.create_publisher(MarkerArray, markers.TOPIC, markers.QOS)
        self._experiment: Experiment | None = None
        self._costs = None

    def watch(self, exp: Experiment) -> None:
        """The experiment whose iterations publish_iteration shows (targets, per-sample costs)."""
        self._experiment, self._costs = exp, exp.costs()

    def publish_iteration(self, record: dict, batches=None, policy_paths=None) -> None:
        """gps/cost, gps/final_distance (plain, for rqt_plot), gps/metrics (stamped, every number
        of the record) and gps/markers (targets, the samples' paths coloured by cost, the
        network's noiseless paths) for rviz."""
        stamp = self.get_clock().now().to_msg()
        self.cost_pub.publish(Float64(data=float(record['mean_cost'])))
        self.distance_pub.publish(Float64MultiArray(data=[float(d) for d in record['final_ee_distance']]))
        exp = self._experiment
        success = exp.config.algorithm.success_distance if exp is not None else None
        self.metrics_pub.publish(iteration_metrics(record, stamp, success_distance=success))
        if exp is None or batches is None:
            return
        paths = [exp.ee_path(c, b.X) for c, b in zip(exp.conditions, batches)]
        costs = [cost.eval(b.X, b.U).l.sum(axis=1) for cost, b in zip(self._costs, batches)]
        self.markers_pub.publish(markers.training_markers(
            [c.targets[0] for c in exp.conditions], paths, costs, [c.name for c in exp.conditions],
            policy_paths=policy_paths, target_radius=success, stamp=stamp))


def run_ros_training(cfg: ExperimentConfig, out: Path, namespaces: list[str] | str = ('arm0',),
                     attach: bool = False, progress=print, resume_from: Path | None = None,
                     composed: bool = False) -> int:
    """Train through the graph on the arms in `namespaces` (all busy at once); unless attach,
    start a sim_node + controller_node pair in each first (logs in OUT/logs/<namespace>; composed:
    the pair in one process, gps_agent_ros.composed_arm).

    The caller's environment decides ROS_DOMAIN_ID; DDS discovery stays on this host unless
    ROS_AUTOMATIC_DISCOVERY_RANGE says otherwise.
    """
    namespaces = [namespaces] if isinstance(namespaces, str) else list(namespaces)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    bringups = {} if attach else {ns: Bringup(cfg, ns, log_dir=out / 'logs' / ns, composed=composed).start()
                                 for ns in namespaces}
    # the caller handles SIGINT/SIGTERM (gps-train: stop, zero the arms, one line); rclpy's own
    # handlers would shut the context down under the running trials first
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = TrainerNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    agent = None
    try:
        if bringups:
            how = ' (composed, one process per arm)' if composed else ''
            progress(f'bringup: sim_node + controller_node{how} in {", ".join("/" + ns for ns in namespaces)} '
                     f'(ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}, logs in {out / "logs"})')
        exp = Experiment(cfg)
        node.watch(exp)
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
