"""gps-train EXPERIMENT.yaml [--agent inprocess|ros] [--out DIR] [--iterations N] [--seed S] [--algorithm NAME].

--agent ros trains through the ROS 2 node graph: it starts sim_node + controller_node as separate
processes (or, with --attach, uses nodes already running, e.g. on a real arm) and runs the trainer
as a ROS 2 node in this process.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path

from gps_core.config import ALGORITHMS, ConfigError, load_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='gps-train', description='Train GPS controllers on an experiment.')
    p.add_argument('experiment', type=Path, help='experiment YAML (e.g. config/ur5e_reach.yaml)')
    p.add_argument('--agent', choices=['inprocess', 'ros'], default='inprocess',
                   help='inprocess: PyBullet in this process; ros: through sim_node + controller_node over DDS')
    p.add_argument('--attach', action='store_true',
                   help='(--agent ros) use nodes already running instead of starting them')
    p.add_argument('--namespace', action='append', default=None,
                   help='(--agent ros) arm namespace; repeat for several arms (default arm0)')
    p.add_argument('--arms', type=int, default=None,
                   help='(--agent ros) K arms sampling in parallel: namespaces arm0 .. arm{K-1}')
    p.add_argument('--compose', action='store_true',
                   help="(--agent ros) run each simulated arm's sim_node and controller_node in one process "
                        "(the same topics; less CPU per lockstep trial)")
    p.add_argument('--domain-id', type=int, default=None, help='(--agent ros) ROS_DOMAIN_ID for this run')
    p.add_argument('--out', type=Path, default=None, help='output folder (default: runs/<experiment>)')
    p.add_argument('--iterations', type=int, default=None, help='override the YAML iteration count')
    p.add_argument('--seed', type=int, default=None, help='override the YAML seed')
    p.add_argument('--algorithm', choices=ALGORITHMS, default=None, help="override the YAML's algorithm.type")
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default=None,
                   help="where a visuomotor policy trains (override policy.device; auto: CUDA when present). "
                        "The small MLP policies train on the CPU")
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --out after its last complete iteration (bit-identical to not stopping)')
    p.add_argument('--overwrite', action='store_true', help='clear a non-empty --out and start again')
    p.add_argument('--allow-unreachable', action='store_true',
                   help='train even if the pre-flight IK finds a target out of reach (a warning instead of an error)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    namespaces: list[str] = []
    if args.compose and args.agent != 'ros':
        print('gps-train: --compose is an option of --agent ros (it starts the simulated arms composed)',
              file=sys.stderr)
        return 2
    if args.agent == 'ros':   # the options first: nothing is read or cleared for a mistyped command
        from gps_agent_ros.bringup import arm_namespaces
        try:
            namespaces = arm_namespaces(args.arms, args.namespace)
            if args.compose and args.attach:
                raise ValueError('--compose starts the arms and --attach uses arms already running: give one')
            if args.domain_id is not None and not 0 <= args.domain_id <= 232:
                raise ValueError(f'--domain-id must be in 0..232, got {args.domain_id}')
        except ValueError as err:
            print(f'gps-train: {err}', file=sys.stderr)
            return 2
    # Everything that can be checked is checked here, before --out is created or a node starts:
    # a mistake is one line `gps-train: FILE: KEY: what is wrong (expected ...)` and exit code 2.
    try:
        cfg = load_experiment(args.experiment, iterations=args.iterations, seed=args.seed)
        if args.algorithm is not None:
            cfg = dataclasses.replace(cfg, algorithm=dataclasses.replace(cfg.algorithm, type=args.algorithm))
        if args.device is not None:
            if getattr(cfg.policy, 'kind', 'mlp') != 'spatial_softmax':
                raise ConfigError(f'{args.device!r} given, but the MLP policy of {cfg.experiment} trains on the CPU '
                                  f'(expected --device only with policy.kind spatial_softmax)', '--device')
            cfg = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, device=args.device))
        from gps_agent_ros.validate import check_output_folder, validate_experiment
        validate_experiment(cfg)
        out = args.out or Path('runs') / cfg.experiment
        check_output_folder(out)
        from gps_agent_ros.run_dir import prepare_run_folder
        resume_from = prepare_run_folder(out, cfg, args.resume, args.overwrite)
        from gps_agent_ros.experiment import Experiment
        from gps_agent_ros.preflight import preflight
        exp = Experiment(cfg)
        for warning in preflight(exp, allow_unreachable=args.allow_unreachable):
            print(f'gps-train: warning: {warning}', file=sys.stderr, flush=True)
    except ConfigError as err:
        print(f'gps-train: {" ".join(str(err).split())}', file=sys.stderr)
        return 2
    with signals_as_exceptions():
        try:
            rc = (_train_ros(cfg, out, args, namespaces, resume_from) if args.agent == 'ros'
                  else _train_inprocess(exp, out, resume_from))
        except Interrupted as stop:
            print(f'gps-train: {stop.name}: stopped{_kept(out)}', file=sys.stderr)
            return 128 + stop.signum
    if rc == 0:
        _summary(out)
    return rc


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt: no `except Exception`
    swallows it on its way out, and every `finally` on the way stops nodes and zeroes the arm)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum, self.name = signum, signal.Signals(signum).name


@contextlib.contextmanager
def signals_as_exceptions():
    def handler(signum, _frame):
        raise Interrupted(signum)
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _kept(out: Path) -> str:
    """', iterations 1..N are complete in OUT' (or nothing)."""
    import json
    try:
        n = len(json.loads((out / 'metrics.json').read_text())['iterations'])
    except (OSError, ValueError, KeyError):
        return '; no iteration was complete'
    return f'; iterations 1..{n} are complete in {out}' if n else '; no iteration was complete'


def _train_inprocess(exp, out: Path, resume_from: Path | None) -> int:
    from gps_agent_ros.agent import TrialFailed
    from gps_agent_ros.inprocess_agent import InProcessAgent
    from gps_agent_ros.trainer import train

    agent = InProcessAgent(exp)
    try:
        train(exp, agent, 'inprocess', out, exp.config.iterations, progress=lambda s: print(s, flush=True),
              resume_from=resume_from)
    except TrialFailed as err:   # e.g. the safety filter aborted an unstable simulation
        print(f'gps-train: {err}', file=sys.stderr)
        return 1
    finally:
        agent.close()
    return 0


def _train_ros(cfg, out: Path, args: argparse.Namespace, namespaces: list[str], resume_from: Path | None) -> int:
    if args.domain_id is not None:
        os.environ['ROS_DOMAIN_ID'] = str(args.domain_id)
    from gps_agent_ros.trainer_node import run_ros_training   # rclpy only for this agent
    return run_ros_training(cfg, out, namespaces, attach=args.attach, progress=lambda s: print(s, flush=True),
                            resume_from=resume_from, composed=args.compose)


def _summary(out: Path) -> None:
    import json
    metrics = json.loads((out / 'metrics.json').read_text())
    solved = metrics['solved_at_iteration']
    print(f'{"solved at iteration " + str(solved) if solved else "not solved"}; '
          f'metrics: {out / "metrics.json"}, plot: {out / "training.png"}, checkpoints: {out / "checkpoints"}')


if __name__ == '__main__':
    sys.exit(main())
