"""Start the node graph of one arm as separate processes, for machines without launch_ros.

sim_node (PyBullet, lockstep by default) and controller_node run as child processes sharing
this process's ROS_DOMAIN_ID, with DDS discovery kept on this host. Every child is stopped
(SIGINT, then SIGTERM, then SIGKILL) when the bringup exits, whether by Ctrl-C or by failure,
and gets SIGTERM from the kernel when this process dies without a word (SIGKILL, a crash:
PR_SET_PDEATHSIG), so no node outlives the run that started it.
On a ROS 2 install, `ros2 launch gps_agent_ros sim.launch.py` starts the same nodes.
`composed=True` (--compose) runs the two nodes of each arm in one composed_arm process instead:
the same graph with less CPU per lockstep trial (gps_agent_ros.composed_arm).

    gps-bringup config/ur5e_reach.yaml [--namespace arm0 ...] [--arms K] [--mode lockstep|realtime]
                [--compose] [--domain-id N]

From Python, `parameters` overrides or adds node parameters on top of those derived from the
experiment, e.g. Bringup(cfg, mode='realtime', parameters={'sim_node': {'publish_rate_hz': 20.0}}).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from gps_agent_ros.node_params import controller_parameters, params_file, sim_parameters
from gps_core.config import ConfigError, ExperimentConfig, load_experiment


class BringupError(RuntimeError):
    pass


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int):
    """preexec_fn of a node: SIGTERM when the parent dies (Linux); if it already has, exit."""
    def setup() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: the parent's stop() is all there is
            return
        if os.getppid() != parent_pid:   # the parent died before prctl took effect
            os._exit(1)
    return setup


def ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """This process's environment with DDS on localhost and the chosen domain."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if domain_id is not None:
        if not 0 <= domain_id <= 232:
            raise ValueError(f'ROS_DOMAIN_ID must be in 0..232, got {domain_id}')
        env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('OPENBLAS_NUM_THREADS', '1')
    return env


def node_executable(name: str) -> str:
    """The console script installed beside this interpreter (venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise BringupError(f'cannot find the {name} executable next to {sys.executable} or on PATH')
    return found


class Bringup:
    """Context manager running sim_node + controller_node for one arm namespace."""

    def __init__(self, cfg: ExperimentConfig, namespace: str = 'arm0', mode: str = 'lockstep',
                 log_dir: Path | None = None, domain_id: int | None = None,
                 nodes: tuple[str, ...] = ('sim_node', 'controller_node'),
                 parameters: Mapping[str, Mapping[str, Any]] | None = None, composed: bool = False):
        if composed and set(nodes) != {'sim_node', 'controller_node'}:
            raise ValueError(f'a composed arm runs sim_node and controller_node together, not {list(nodes)}')
        self.composed = composed
        self.namespace = namespace.strip('/')
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix='gps_bringup_'))
        self.env = ros_environment(domain_id)
        self.env.setdefault('ROS_LOG_DIR', str(self.log_dir / 'ros'))
        all_params = {'sim_node': sim_parameters(cfg, mode),
                      'controller_node': controller_parameters(cfg, use_sim_time=mode == 'lockstep')}
        unknown = sorted(set(parameters or {}) - set(nodes))
        if unknown:
            raise ValueError(f'parameters given for nodes {unknown} that this bringup does not start {list(nodes)}')
        for name, extra in (parameters or {}).items():
            all_params[name].update(extra)
        self.params = {name: all_params[name] for name in nodes}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self) -> Bringup:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        pfile = self.log_dir / 'params.yaml'
        pfile.write_text(yaml.safe_dump(params_file(self.params, self.namespace)))
        for name in ['composed_arm'] if self.composed else self.params:
            # a lockstep simulator's /clock stays in its namespace: several arms share a domain
            cmd = [node_executable(name), '--ros-args', '--params-file', str(pfile),
                   '-r', f'__ns:=/{self.namespace}', '-r', f'/clock:=/{self.namespace}/clock']
            log = open(self.log_dir / f'{name}.log', 'wb')
            self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                preexec_fn=_die_with_parent(os.getpid()))
            log.close()
        return self

    def check(self) -> None:
        """Raise if a node died (with the tail of its log)."""
        if (why := self.dead()) is not None:
            raise BringupError(why)

    def dead(self) -> str | None:
        """Why this arm's nodes are not all running (a node exited: which, its code, its log's
        tail), or None."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f'{name}.log').read_text(errors='replace')[-1500:]
                return (f'{name} in /{self.namespace} exited with code {proc.returncode}; log '
                        f'{self.log_dir / name}.log:\n{tail}')
        return None

    def stop(self, timeout_s: float = 5.0) -> None:
        for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            alive = [p for p in self.procs.values() if p.poll() is None]
            if not alive:
                return
            for p in alive:
                p.send_signal(sig)
            deadline = time.monotonic() + wait
            for p in alive:
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass

    def __enter__(self) -> Bringup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def arm_namespaces(arms: int | None, namespaces: list[str] | None) -> list[str]:
    """--arms K -> arm0 .. arm{K-1}; else the --namespace values given (default: arm0)."""
    if arms is not None:
        if namespaces:
            raise ValueError('give --arms or --namespace, not both')
        if arms < 1:
            raise ValueError(f'--arms must be >= 1, got {arms}')
        return [f'arm{i}' for i in range(arms)]
    names = [n.strip('/') for n in (namespaces or ['arm0'])]
    if len(set(names)) != len(names):
        raise ValueError(f'--namespace values repeat: {names}')
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='gps-bringup', description='Run sim_node + controller_node per arm.')
    p.add_argument('experiment', type=Path)
    p.add_argument('--namespace', action='append', help='arm namespace (repeat for several arms; default arm0)')
    p.add_argument('--arms', type=int, default=None, help='K arms: namespaces arm0 .. arm{K-1}')
    p.add_argument('--mode', choices=['lockstep', 'realtime'], default='lockstep')
    p.add_argument('--compose', action='store_true',
                   help="each arm's two nodes in one process (faster lockstep; simulated arms only)")
    p.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: inherited)')
    p.add_argument('--log-dir', type=Path, default=None)
    args = p.parse_args(argv)
    try:
        namespaces = arm_namespaces(args.arms, args.namespace)
        cfg = load_experiment(args.experiment)
        from gps_agent_ros.validate import validate_experiment
        validate_experiment(cfg)
    except (ConfigError, ValueError) as err:
        print(f'gps-bringup: {err}', file=sys.stderr)
        return 2
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix='gps_bringup_'))
    bringups = [Bringup(cfg, ns, args.mode, log_dir / ns, args.domain_id, composed=args.compose).start()
                for ns in namespaces]
    how = ' (one process per arm)' if args.compose else ''
    print(f'gps-bringup: sim_node + controller_node{how} running in {", ".join("/" + ns for ns in namespaces)} '
          f'(ROS_DOMAIN_ID={bringups[0].env.get("ROS_DOMAIN_ID", "0")}, logs in {log_dir}); Ctrl-C stops',
          flush=True)
    try:
        while True:
            for bringup in bringups:
                bringup.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print('gps-bringup: stopping', flush=True)
    except BringupError as err:
        print(f'gps-bringup: {err}', file=sys.stderr)
        return 1
    finally:
        for bringup in bringups:
            bringup.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
