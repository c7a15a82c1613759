"""Watching a run as rviz and rqt_robot_monitor do: subscribers on the real sim graph of a short
gps-train --agent ros run see /diagnostics from controller_node and sim_node, the trainer's
gps/markers (targets, sampled paths, the network's paths) and its stamped gps/metrics."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from visualization_msgs.msg import Marker, MarkerArray

from gps_agent_ros import markers

REPO = Path(__file__).resolve().parents[2]


def test_diagnostics_markers_and_metrics_of_a_run(tmp_path):
    cfg = yaml.safe_load((REPO / 'config' / 'ur5e_reach_mdgps.yaml').read_text())
    cfg['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')
    cfg.update(samples_per_condition=2, iterations=1)
    cfg['test_conditions'] = cfg['test_conditions'][:2]
    path = tmp_path / 'experiment.yaml'
    path.write_text(yaml.safe_dump(cfg))
    domain = 101 + (os.getpid() + 53) % 100
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node('watcher', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    statuses: dict[str, object] = {}
    got_markers: list[MarkerArray] = []
    metrics: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: statuses.update({s.name: s for s in m.status}), 50)
    node.create_subscription(MarkerArray, '/' + markers.TOPIC, got_markers.append, markers.QOS)
    node.create_subscription(DiagnosticArray, '/gps/metrics', metrics.append, 10)
    trainer = subprocess.Popen([sys.executable, '-m', 'gps_agent_ros.train_cli', str(path), '--agent', 'ros',
                                '--out', str(tmp_path / 'run'), '--namespace', 'arm_w'],
                               env=dict(os.environ, ROS_DOMAIN_ID=str(domain)), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240.0
        while trainer.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        output = trainer.communicate(timeout=30)[0]
        assert trainer.returncode == 0, output
        end = time.monotonic() + 3.0          # the latched markers reach a late subscriber too
        while not got_markers and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        if trainer.poll() is None:
            trainer.kill()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)

    loop, trials = statuses['arm_w/controller_node: control loop'], statuses['arm_w/controller_node: trials']
    assert loop.hardware_id == '/arm_w' and trials.level == DiagnosticStatus.OK, trials.message
    values = {kv.key: kv.value for kv in loop.values}
    assert any('latency' in k for k in values) and any('skipped' in k for k in values), values
    assert {'arm_w/sim_node: simulation', 'arm_w/sim_node: commands'} <= set(statuses)

    assert got_markers, 'no gps/markers'
    last = got_markers[-1].markers
    assert last[0].action == Marker.DELETEALL
    targets = [m for m in last if m.ns == 'targets']
    assert len(targets) == 4 and all(m.type == Marker.SPHERE for m in targets)
    samples = [m for m in last if m.ns.startswith('samples/')]
    assert len(samples) == 4 * 2 and all(m.type == Marker.LINE_STRIP and len(m.points) == cfg['T'] for m in samples)
    policy = [m for m in last if m.ns == 'policy']
    assert len(policy) == 4

    assert metrics and metrics[-1].header.stamp.sec > 0
    record = {kv.key: kv.value for s in metrics[-1].status for kv in s.values}
    assert 'mean_cost' in record and any(k.startswith('final_ee_distance') for k in record), record
