"""gps-train EXPERIMENT.yaml --agent inprocess --out DIR [--iterations N] [--seed S]."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gps_core.config import ConfigError, load_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='gps-train', description='Train GPS controllers on an experiment.')
    p.add_argument('experiment', type=Path, help='experiment YAML (e.g. config/ur5e_reach.yaml)')
    p.add_argument('--agent', choices=['inprocess'], default='inprocess',
                   help='where trials run: inprocess = PyBullet in this process')
    p.add_argument('--out', type=Path, default=None, help='output folder (default: runs/<experiment>)')
    p.add_argument('--iterations', type=int, default=None, help='override the YAML iteration count')
    p.add_argument('--seed', type=int, default=None, help='override the YAML seed')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_experiment(args.experiment, iterations=args.iterations, seed=args.seed)
    except ConfigError as err:
        print(f'gps-train: {err}', file=sys.stderr)
        return 2
    from gps_agent_ros.experiment import Experiment
    from gps_agent_ros.inprocess_agent import InProcessAgent
    from gps_agent_ros.trainer import train

    out = args.out or Path('runs') / cfg.experiment
    exp = Experiment(cfg)
    agent = InProcessAgent(exp)
    try:
        metrics = train(exp, agent, args.agent, out, cfg.iterations, progress=lambda s: print(s, flush=True))
    finally:
        agent.close()
    solved = metrics.solved_at_iteration
    print(f'{"solved at iteration " + str(solved) if solved else "not solved"}; '
          f'metrics: {out / "metrics.json"}, plot: {out / "training.png"}, checkpoints: {out / "checkpoints"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
