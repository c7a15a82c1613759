"""Visuomotor GPS end to end, small (40 x 40 images, 4 block positions, 2 iterations): pose
pretraining, MDGPS with a spatial-softmax policy on images + the robot's own state, evaluation on
test and distractor positions; the target reaches the policy only through the pixels; the network
runs on the arm through sim_node + its sensor_node + controller_node with the same numbers."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from gps_agent_ros.agent import TrialRequest
from gps_agent_ros.experiment import Experiment
from gps_agent_ros.inprocess_agent import InProcessAgent
from gps_agent_ros.train_cli import main as gps_train
from gps_controllers.trial_spec import NetworkSpec
from gps_core.config import load_experiment
from gps_core.policies.spec import PolicySpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> Path:
    """A short visuomotor run on a small copy of config/ur5e_visuomotor.yaml."""
    cfg = yaml.safe_load((REPO / 'config' / 'ur5e_visuomotor.yaml').read_text())
    cfg['robot']['urdf'] = str(REPO / 'urdf' / 'ur5e.urdf')
    cfg.update(iterations=2, samples_per_condition=3)
    cfg['conditions'] = [cfg['conditions'][i] for i in (0, 2, 6, 8)]
    cfg['test_conditions'] = cfg['test_conditions'][5:7]
    cfg['distractor_conditions'] = cfg['distractor_conditions'][:1]
    cfg['scene']['camera'].update(width=40, height=40)
    cfg['policy'].update(conv_channels=[8, 8, 8], head_iterations=100, full_iterations=20)
    cfg['policy']['pretrain'] = {'num_images': 240, 'holdout': 40, 'iterations': 150, 'batch_size': 32,
                                 'learning_rate': 3.0e-3}
    tmp = tmp_path_factory.mktemp('visuomotor')
    path = tmp / 'experiment.yaml'
    path.write_text(yaml.safe_dump(cfg))
    os.environ['GPS_CACHE_DIR'] = str(tmp / 'cache')
    assert gps_train([str(path), '--out', str(tmp / 'run')]) == 0
    return tmp


def _network_spec(run: Path) -> PolicySpec:
    ckpt = run / 'checkpoints'
    import torch
    arch = json.loads((ckpt / 'policy_iteration_002.json').read_text())
    state = torch.load(ckpt / 'policy_iteration_002.state.pt', weights_only=True)
    return PolicySpec(arch, {k: v.double().numpy() for k, v in state.items()})


def test_pipeline_pretrains_trains_and_evaluates_on_images(small):
    metrics = json.loads((small / 'run' / 'metrics.json').read_text())
    pre = metrics['pretraining']
    assert pre['holdout_mean_error'] * 3 < pre['holdout_mean_baseline']    # it found the block
    last = metrics['iterations'][-1]
    assert len(last['policy_test_final_ee_distance']) == 2 and len(last['policy_distractor_final_ee_distance']) == 1
    assert 0.0 <= last['policy_test_success_rate'] <= 1.0 and 'policy_distractor_success_rate' in last
    assert metrics['iterations'][-1]['mean_cost'] < metrics['iterations'][0]['mean_cost']
    # the images went into the recordings too (camera/image_raw per arm)
    from rosbags.highlevel import AnyReader
    with AnyReader([small / 'run' / 'trials' / 'iteration_001.mcap']) as reader:
        assert any(c.topic.endswith('camera/image_raw') for c in reader.connections)
    arch = json.loads((small / 'run' / 'checkpoints' / 'policy_iteration_002.json').read_text())
    assert arch['kind'] == 'spatial_softmax' and arch['image_shape'] == [40, 40, 3]


def test_the_target_reaches_the_policy_only_through_the_pixels(small):
    """With the real images the network's trajectories differ per block position; with one
    constant image they are identical for every condition (all start from the same pose): the
    network sees nothing else that names the target."""
    exp = Experiment(load_experiment(small / 'experiment.yaml'))
    spec = NetworkSpec(_network_spec(small / 'run'))
    agent = InProcessAgent(exp)
    try:
        real = [agent.run(c, spec).X for c in exp.conditions]
        constant = agent.camera.render()           # the last condition's first image, for all
        agent.camera.render = lambda: constant
        blind = [agent.run(c, spec).X for c in exp.conditions]
    finally:
        agent.close()
    q = exp.dU
    assert max(np.abs(real[0][:, :q] - r[:, :q]).max() for r in real[1:]) > 1e-3
    for b in blind[1:]:
        np.testing.assert_array_equal(b[:, :q], blind[0][:, :q])


def test_the_network_runs_through_the_graph_with_its_camera(small, tmp_path):
    """The final network's noiseless trials through sim_node (+ sensor_node) and controller_node
    equal the in-process ones bit for bit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from gps_agent_ros.bringup import Bringup
    from gps_agent_ros.ros_agent import RosAgent
    cfg = load_experiment(small / 'experiment.yaml')
    exp = Experiment(cfg)
    spec = NetworkSpec(_network_spec(small / 'run'))
    requests = [TrialRequest(c, spec) for c in (exp.conditions[1], exp.test_conditions[0], exp.distractor_conditions[0])]
    local = InProcessAgent(exp)
    try:
        expected = local.run_many(requests)
    finally:
        local.close()
    ns = f'visuomotor_{os.getpid()}'
    bringup = Bringup(cfg, ns, log_dir=tmp_path).start()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('visuomotor_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        agent = RosAgent(node, executor, exp, ns, arm_health=lambda _ns: bringup.dead())
        got = agent.run_many(requests)
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        bringup.stop()
    for a, b in zip(got, expected):
        assert np.array_equal(a.X, b.X) and np.array_equal(a.U, b.U)
    assert 'camera/image_raw' in (tmp_path / 'sim_node.log').read_text()


def test_gps_evaluate_reproduces_the_recorded_evaluation(small, tmp_path):
    from gps_agent_ros.evaluate_cli import main as gps_evaluate
    out = tmp_path / 'eval.json'
    stem = small / 'run' / 'checkpoints' / 'policy_iteration_002'
    assert gps_evaluate([str(small / 'experiment.yaml'), str(stem), '--json', str(out)]) == 0
    got = json.loads(out.read_text())
    last = json.loads((small / 'run' / 'metrics.json').read_text())['iterations'][-1]
    assert got['test']['final_ee_distance'] == last['policy_test_final_ee_distance']
    assert got['distractor']['final_ee_distance'] == last['policy_distractor_final_ee_distance']
    assert gps_evaluate([str(small / 'experiment.yaml'), str(stem), '--agent', 'ros', '--constant-image']) == 2
