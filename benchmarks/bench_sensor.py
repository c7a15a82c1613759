"""Camera images in lockstep: sensor_node's image rate through the node graph against rendering the
same images in-process.

config/ur5e_visuomotor.yaml's scene (64 x 64 RGB camera) and its initial controllers with each
trial's smoothed noise (the first iteration's samples, `--samples` per condition on the first 4
conditions). In lockstep sim_node's sensor_node renders and publishes one image per state, before
its joint_states, and controller_node pairs each state with the image of the same stamp
(`record_images`: the images come back in the RunTrial result). Reported, medians over the batch
after one warm-up trial:

  graph_images_per_s      images a probe node received on camera/image_raw per second of trial
  graph_trial_ms          a graph trial of T steps with images, and without (`graph_trial_ms_no_images`:
                          sensor_node still renders, the controller does not wait for the images)
  inprocess_trial_ms      the in-process agent rendering the same images (and without)
  identical               every graph trial's states, actions and images equal the in-process ones
                          (when not, each differing trial is logged: which array, from which step, which arm)

    OPENBLAS_NUM_THREADS=1 ROS_DOMAIN_ID=94 python benchmarks/bench_sensor.py [--samples 2]
Human-readable lines on stderr; the last stdout line is JSON. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='bench_sensor_ros_log_'))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bench_parallel import requests  # noqa: E402  (the first iteration's batch, each trial's own noise)
from gps_agent_ros.bringup import Bringup  # noqa: E402
from gps_agent_ros.experiment import Experiment  # noqa: E402
from gps_agent_ros.inprocess_agent import InProcessAgent  # noqa: E402
from gps_agent_ros.ros_agent import RosAgent  # noqa: E402
from gps_core.config import load_experiment  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def per_trial(run, batch) -> tuple[list[float], list]:
    """Wall time [ms] of each trial run alone (after one warm-up), and the trials."""
    run(batch[:1])
    times, trials = [], []
    for request in batch:
        start = time.perf_counter()
        trials += run([request])
        times.append(1e3 * (time.perf_counter() - start))
    return times, trials


def first_differences(index: int, graph, reference) -> list[str]:
    """Which of a graph trial's arrays differ from the in-process trial's, and from which step on."""
    found = []
    for name in ('X', 'U', 'images'):
        a, b = getattr(graph, name), getattr(reference, name)
        if a is None or b is None or a.shape != b.shape:
            found.append(f'trial {index} {name}: shapes {getattr(a, "shape", None)} vs {getattr(b, "shape", None)}')
        elif not np.array_equal(a, b):
            steps = np.flatnonzero([not np.array_equal(x, y) for x, y in zip(a, b)])
            found.append(f'trial {index} {name}: {steps.size} steps differ, first at t = {steps[0]}, '
                         f'on {graph.arm}')
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--experiment', type=Path, default=REPO / 'config' / 'ur5e_visuomotor.yaml')
    p.add_argument('--samples', type=int, default=2, help='samples per condition (first 4 conditions)')
    args = p.parse_args()
    cfg = load_experiment(args.experiment)
    if cfg.scene is None:
        raise SystemExit(f'{args.experiment} has no scene: nothing renders images')
    exp = Experiment(cfg)
    plain = [r for r in requests(exp, args.samples, 1) if r.condition in exp.conditions[:4]]
    with_images = [dataclasses.replace(r, record_images=True) for r in plain]
    camera = cfg.scene.camera
    log(f'{len(plain)} trials of T={cfg.T}, camera {camera.width}x{camera.height}; '
        f'ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}, {os.cpu_count()} CPUs')

    local = InProcessAgent(exp)
    try:
        inproc_ms, reference = per_trial(local.run_many, with_images)
        inproc_plain_ms, _ = per_trial(local.run_many, plain)
    finally:
        local.close()

    ns = f'bench_sensor_{os.getpid()}'
    bringup = Bringup(cfg, ns, 'lockstep', Path(tempfile.mkdtemp(prefix='bench_sensor_'))).start()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f'bench_sensor_{os.getpid()}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: list[float] = []
    node.create_subscription(Image, f'/{ns}/camera/image_raw', lambda _m: received.append(time.perf_counter()), 100)
    try:
        agent = RosAgent(node, executor, exp, ns, arm_health=lambda _ns: bringup.dead())
        graph_ms, trials = per_trial(agent.run_many, with_images)
        received.clear()
        start = time.perf_counter()
        agent.run_many(with_images[:1])
        images_per_s = len(received) / (time.perf_counter() - start)
        graph_plain_ms, _ = per_trial(agent.run_many, plain)
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        bringup.stop()

    differences = [d for i, (a, b) in enumerate(zip(trials, reference)) for d in first_differences(i, a, b)]
    for d in differences:
        log(f'graph differs from in-process: {d}')
    identical = not differences
    med = statistics.median
    result = {'T': cfg.T, 'trials': len(plain), 'camera': [camera.width, camera.height],
              'graph_images_per_s': images_per_s, 'graph_trial_ms': med(graph_ms),
              'graph_trial_ms_no_images': med(graph_plain_ms), 'inprocess_trial_ms': med(inproc_ms),
              'inprocess_trial_ms_no_images': med(inproc_plain_ms), 'identical': identical}
    log(f"graph: {images_per_s:.0f} images/s received; trial {result['graph_trial_ms']:.0f} ms with images, "
        f"{result['graph_trial_ms_no_images']:.0f} ms without; in-process {result['inprocess_trial_ms']:.0f} ms "
        f"rendering, {result['inprocess_trial_ms_no_images']:.0f} ms without; identical to in-process: {identical}")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
