"""gps-evaluate EXPERIMENT.yaml CHECKPOINT [--agent inprocess|ros] [--constant-image] [--json FILE]

Runs a saved network policy alone and without noise (checkpoints/policy_iteration_NNN.state.pt
and .json, plain data) on the experiment's training, test and distractor conditions, in-process
or on an arm through controller_node (a simulated one started here, or --attach), and prints the
final end-effector distance per condition and the success rates.

--constant-image (in-process, visuomotor policies): the policy sees one fixed image, the
camera's view of the first training condition at its start, at every step of every condition: a
policy that finds the target in the pixels collapses onto that condition's target.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gps_core.config import ConfigError, load_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='gps-evaluate', description='Evaluate a saved network policy alone.')
    p.add_argument('experiment', type=Path)
    p.add_argument('checkpoint', type=Path, help='checkpoints/policy_iteration_NNN (without suffix)')
    p.add_argument('--agent', choices=['inprocess', 'ros'], default='inprocess')
    p.add_argument('--attach', action='store_true', help='(--agent ros) use nodes already running')
    p.add_argument('--namespace', default='arm0', help='(--agent ros) arm namespace')
    p.add_argument('--constant-image', action='store_true', help='(inprocess) one fixed image for every step')
    p.add_argument('--json', type=Path, default=None, help='also write the numbers here')
    return p.parse_args(argv)


def load_spec(stem: Path):
    """The policy of checkpoints/policy_iteration_NNN as a spec (weights loaded with weights_only)."""
    import torch

    from gps_core.policies.spec import PolicySpec
    arch = json.loads(stem.with_suffix('.json').read_text())
    state = torch.load(stem.with_name(stem.name + '.state.pt'), weights_only=True)
    return PolicySpec(arch, {k: v.double().numpy() for k, v in state.items()})


def evaluate(exp, agent, spec) -> dict:
    from gps_agent_ros.agent import TrialRequest
    from gps_controllers.trial_spec import NetworkSpec
    threshold, out = exp.config.algorithm.success_distance, {}
    for name, conditions in (('train', exp.conditions), ('test', exp.test_conditions),
                             ('distractor', exp.distractor_conditions)):
        if conditions:
            trials = agent.run_many([TrialRequest(c, NetworkSpec(spec)) for c in conditions])
            d = [float(exp.final_distance(t.X[None])[0]) for t in trials]
            out[name] = {'final_ee_distance': d, 'success_rate': float(np.mean([v <= threshold for v in d]))}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_experiment(args.experiment)
        from gps_agent_ros.validate import validate_experiment
        validate_experiment(cfg)
        if args.constant_image and args.agent != 'inprocess':
            raise ConfigError('works with --agent inprocess only', '--constant-image')
    except ConfigError as err:
        print(f'gps-evaluate: {" ".join(str(err).split())}', file=sys.stderr)
        return 2
    from gps_agent_ros.experiment import Experiment
    exp = Experiment(cfg)
    spec = load_spec(args.checkpoint)
    if args.agent == 'ros':
        results = _on_the_graph(exp, spec, args)
    else:
        from gps_agent_ros.inprocess_agent import InProcessAgent
        agent = InProcessAgent(exp)
        try:
            if args.constant_image:
                agent.sim.reset(list(cfg.robot.joints), exp.conditions[0].q0)
                agent.scene.place(exp.conditions[0].objects)
                image = agent.camera.render()
                agent.camera.render = lambda: image
            results = evaluate(exp, agent, spec)
        finally:
            agent.close()
    threshold = cfg.algorithm.success_distance
    for name, r in results.items():
        print(f'{name}: {sum(d <= threshold for d in r["final_ee_distance"])}/{len(r["final_ee_distance"])} '
              f'within {threshold} m; final distances [cm] '
              + ' '.join(f'{100 * d:.1f}' for d in r['final_ee_distance']))
    if args.json is not None:
        args.json.write_text(json.dumps({'agent': args.agent, 'constant_image': args.constant_image, **results}, indent=2))
    return 0


def _on_the_graph(exp, spec, args) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from gps_agent_ros.bringup import Bringup
    from gps_agent_ros.ros_agent import RosAgent
    bringup = None if args.attach else Bringup(exp.config, args.namespace).start()
    rclpy.init()
    node = rclpy.create_node('gps_evaluate')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        agent = RosAgent(node, executor, exp, args.namespace,
                         arm_health=(lambda _ns: bringup.dead()) if bringup else None)
        return evaluate(exp, agent, spec)
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
        if bringup is not None:
            bringup.stop()


if __name__ == '__main__':
    sys.exit(main())
