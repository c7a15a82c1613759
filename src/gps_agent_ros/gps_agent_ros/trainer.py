"""The GPS training loop: sample every condition with its controller, update, report.

Agent-agnostic: the in-process PyBullet agent and the ROS 2 arms both plug in here, so both
produce the same metrics.json, checkpoints, recordings and report. The algorithm is the YAML's
algorithm.type: traj_opt (local controllers only), mdgps, badmm, pigps or mpcgps (plus a
neural-network policy, evaluated alone and noiseless on the training and test conditions every
iteration, and exported with the checkpoints). MPC-GPS's samples are run by its MPC teacher (sent as
data, gps_controllers.mpc_controller.MPCSpec) from the second iteration on.

Each iteration's trials (conditions x samples, then the network's evaluation) go to the agent
as one batch, which may run them on several arms in any order. A trial's exploration noise is
drawn from its own seed, SeedSequence(seed, spawn_key=(iteration, kind, condition, sample)), so
its result does not depend on which arm ran it or when: one arm and four give the same numbers.

Disturbances (the experiment's `disturbance:` section): the last disturbed_samples of each
condition's samples get a push plan drawn from their own seed (kind NOISE_DISTURBANCE), and the
algorithm is told which trials were pushed; with `evaluation`, every evaluation trial of the network
is pushed by a plan fixed per condition for the whole run (iteration 0, kind NOISE_EVALUATION), so
iterations are judged under the same pushes. The plans travel with the trials (gps_core.
disturbance_plan), so every agent pushes alike.

Success: a condition's samples succeed by the task's rule (Experiment.success): within
algorithm.success_distance of the target, or, for a peg task, the peg in the hole at the last step;
a peg experiment's record adds `success` (the fraction of each condition's samples inserted; a
condition counts as solved when at least half are) and `policy_success` (the network's trials).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gps_agent_ros.agent import Agent, SafetyStop, Trial, TrialFailed, TrialRequest
from gps_agent_ros.experiment import Condition, Experiment
from gps_agent_ros.recording import TrialRecorder
from gps_agent_ros.report import write_plot
from gps_agent_ros.report_html import write_report
from gps_controllers.mpc_controller import MPCSpec
from gps_controllers.trial_spec import ControllerSpec, LinearGaussianSpec, NetworkSpec
from gps_core.algorithms import GPSAlgorithm, make_algorithm
from gps_core.algorithms.base import TeacherAlgorithm
from gps_core.checkpoint import load_training_state, save_checkpoint, save_training_state
from gps_core.config import to_dict
from gps_core.disturbance_plan import DisturbancePlan, draw_plan
from gps_core.policies import smoothed_noise
from gps_core.samples import SampleBatch

# spawn_key[1] of a trial's seed: its exploration noise (controller or teacher, network), its pushes
NOISE_CONTROLLER, NOISE_NETWORK, NOISE_DISTURBANCE, NOISE_EVALUATION = 0, 1, 2, 3
SAFETY_REDRAWS = 3          # a sample stopped by the safety filter is drawn again at most this often
SOLVED_FRACTION = 0.5       # a peg condition counts as solved when at least this fraction of its samples inserts


@dataclass
class Metrics:
    experiment: str
    agent: str
    iterations: list[dict] = field(default_factory=list)
    solved_at_iteration: int | None = None         # all training conditions' samples within success_distance
    policy_solved_at_iteration: int | None = None  # the network alone on all training conditions
    policy_evaluation_agent: str | None = None     # where the network's trials ran: 'ros' | 'inprocess'
    pretraining: dict | None = None                # visuomotor: the vision layers' held-out pose error
    policy_device: str | None = None               # where the network trained: 'cpu' | 'cuda'

    def write(self, path: Path) -> None:
        tmp = path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(path)


def write_experiment(out: Path, cfg) -> None:
    """OUT/checkpoints/experiment.yaml: the resolved experiment, written when the run starts
    (what --resume compares against)."""
    import yaml
    path = Path(out) / 'checkpoints' / 'experiment.yaml'
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.yaml.tmp')
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        tmp.replace(path)


def trial_rng(seed: int, iteration: int, kind: int, condition: int, sample: int,
              attempt: int = 0) -> np.random.Generator:
    """The generator of one trial's noise: a function of the trial's identity only (and, for a
    sample drawn again after a safety stop, of the attempt)."""
    key = (iteration, kind, condition, sample) + ((attempt,) if attempt else ())
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class Trainer:
    """Runs an experiment's iterations on an agent and writes everything to `out`."""

    def __init__(self, exp: Experiment, agent: Agent, agent_name: str, out: Path,
                 progress: Callable[[str], None] = print,
                 on_iteration: Callable[[dict, list[SampleBatch], list[np.ndarray] | None], None] | None = None):
        """on_iteration(record, batches, policy_paths): after each iteration (policy_paths: the
        network's noiseless end-effector path [T, 3] per training condition, or None)."""
        cfg = exp.config
        self.exp, self.agent, self.out = exp, agent, Path(out)
        self.progress, self.on_iteration = progress, on_iteration
        self.safety_redraws: list[int] = []    # per condition, this iteration's samples drawn again
        self.costs = exp.costs()
        # the algorithm's own randomness (GMM initialization, minibatches): not the trials' noise
        self.algorithm: GPSAlgorithm = make_algorithm(
            cfg, self.costs, exp.init_policies(), np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(0,))))
        self.network = self.algorithm.network
        if self.network is not None:
            import torch
            # minibatches of a small MLP: one thread measured ~6x faster than two (thread hand-off
            # dominates); convolutions on images use both cores
            torch.set_num_threads(min(2, os.cpu_count() or 1) if exp.visuomotor else 1)
        self.metrics = Metrics(cfg.experiment, agent_name,
                               policy_evaluation_agent=agent_name if self.network is not None else None,
                               policy_device=str(getattr(self.algorithm.policy_opt, 'device', 'cpu'))
                               if self.network is not None else None)
        self.first_paths: list[np.ndarray] | None = None
        self.policy_paths: list[np.ndarray] | None = None   # the network alone, last evaluation
        self.next_iteration = 1

    def pretrain(self, cache_dir: Path) -> None:
        """Visuomotor policies: the vision layers pretrained to find the block (cached)."""
        from gps_agent_ros.pretraining import pretrained_vision
        vision, stats = pretrained_vision(self.exp, self.network, cache_dir, self.progress)
        self.algorithm.policy_opt.load_vision(vision)
        self.metrics.pretraining = stats

    def resume(self, state_path: Path) -> None:
        """Continue after the iteration a training state (checkpoints/state_NNN) was saved at:
        the algorithm's full state, the metrics so far, the report's first paths."""
        loaded = load_training_state(state_path)
        self.algorithm.load_state_dict(loaded['state'])
        extra = loaded['extra']
        self.metrics = Metrics(**{**extra['metrics'], 'agent': self.metrics.agent,
                                  'policy_evaluation_agent': self.metrics.policy_evaluation_agent,
                                  'policy_device': self.metrics.policy_device})
        self.first_paths = [np.asarray(p) for p in extra['first_paths']]
        self.next_iteration = loaded['iteration'] + 1

    # --------------------------------------------------------------- the loop
    def train(self, iterations: int) -> Metrics:
        exp, cfg = self.exp, self.exp.config
        self.out.mkdir(parents=True, exist_ok=True)
        write_experiment(self.out, cfg)
        resumed = f', resuming at iteration {self.next_iteration}' if self.next_iteration > 1 else ''
        self.progress(f'{cfg.experiment} ({cfg.algorithm.type}): {len(exp.conditions)} conditions'
                      f'{f" + {len(exp.test_conditions)} test" if self.network is not None else ""}, T={cfg.T}, '
                      f'dX={exp.dX}, dU={exp.dU}, {cfg.samples_per_condition} samples/condition, {iterations} '
                      f'iterations -> {self.out}{resumed}')
        for it in range(self.next_iteration, iterations + 1):
            self.iteration(it, iterations)
        return self.metrics

    def iteration(self, it: int, iterations: int) -> dict:
        exp, cfg, algorithm = self.exp, self.exp.config, self.algorithm
        threshold = cfg.algorithm.success_distance
        recorder = TrialRecorder(self.out, it, overwrite=True)
        try:
            t0 = time.perf_counter()
            batches, disturbed = self._sample(it, recorder)
            sampling = time.perf_counter() - t0
            dist = [float(np.mean(exp.final_distance(b.X))) for b in batches]
            cost = float(np.mean([self.costs[m].eval(b.X, b.U).l.sum(axis=1).mean() for m, b in enumerate(batches)]))
            if isinstance(algorithm, TeacherAlgorithm):
                stats = algorithm.iteration(batches, disturbed)
            else:
                stats = algorithm.iteration(batches)
            record = {'iteration': it, 'samples': sum(b.N for b in batches), 'mean_cost': cost,
                      'final_ee_distance': dist, 'seconds': {'sampling': sampling, **stats.seconds},
                      'kl': stats.kl, 'kl_step': stats.kl_step, 'eta': stats.eta, 'step_mult': stats.step_mult,
                      **stats.extra}
            if any(self.safety_redraws):
                record['safety_redraws'] = list(self.safety_redraws)
            if disturbed is not None:
                record['disturbed_samples'] = [int(np.sum(d)) for d in disturbed]
            if exp.config.peg_task is not None:
                record['success'] = [float(np.mean(exp.success(c, b.X))) for c, b in zip(exp.conditions, batches)]
            line = self._evaluate_policy(it, record, recorder) if self.network is not None else ''
            recorder.close()
        except BaseException:
            recorder.discard()
            raise
        if exp.config.peg_task is not None:
            solved = all(f >= SOLVED_FRACTION for f in record['success'])
        else:
            solved = all(d <= threshold for d in dist)
        if solved and self.metrics.solved_at_iteration is None:
            self.metrics.solved_at_iteration = it
        self.metrics.iterations.append(record)
        self._save(it, stats, batches)
        if self.on_iteration is not None:
            self.on_iteration(record, batches, self.policy_paths)
        inserted = ('  inserted ' + ' '.join(f'{f:.1f}' for f in record['success'])) if 'success' in record else ''
        self.progress(f'iter {it:2d}/{iterations}  cost {cost:9.2f}  final distance [m] '
                      + ' '.join(f'{d:.3f}' for d in dist) + inserted + ('  SOLVED' if solved else '') + line
                      + f'  (sampling {sampling:.1f} s, ' + ', '.join(f'{k} {v:.2f} s' for k, v in stats.seconds.items()) + ')')
        return record

    # --------------------------------------------------------------- sampling
    def _sample(self, it: int, recorder: TrialRecorder) -> tuple[list[SampleBatch], list[np.ndarray] | None]:
        """Every condition's samples, from its controller, (on-policy) from the network, or from the
        algorithm's teacher; and per condition which trials were pushed ([N] bool; None when the
        experiment disturbs no samples).

        A sample the safety filter stops (a joint past its limit: the noise drove the controller too
        hard, or a contact spun a joint) is drawn again from the seed of its next attempt, up to
        SAFETY_REDRAWS times; how many were redrawn goes into the iteration's record."""
        exp, cfg = self.exp, self.exp.config
        n = cfg.samples_per_condition
        on_policy = self.algorithm.samples_from_network
        teacher = isinstance(self.algorithm, TeacherAlgorithm) and self.algorithm.samples_from_teacher
        pushed = cfg.disturbance.disturbed_samples if cfg.disturbance is not None else 0
        make = self._sample_request(it, on_policy, teacher, pushed)
        requests = [make(m, i, 0) for m in range(len(exp.conditions)) for i in range(n)]
        trials = self.agent.run_many(requests, safety_stops=True)
        self.safety_redraws = [0] * len(exp.conditions)
        for attempt in range(1, SAFETY_REDRAWS + 2):
            stopped = [j for j, t in enumerate(trials) if isinstance(t, SafetyStop)]
            if not stopped:
                break
            if attempt > SAFETY_REDRAWS:
                raise TrialFailed(f'{trials[stopped[0]].reason} ({attempt} draws of its noise all stopped '
                                  f'by the safety filter)')
            self.progress(f'  {len(stopped)} sample(s) stopped by the safety filter, drawn again (attempt {attempt + 1}): '
                          + trials[stopped[0]].reason)
            for j in stopped:
                self.safety_redraws[j // n] += 1
                requests[j] = make(j // n, j % n, attempt)
            for j, trial in zip(stopped, self.agent.run_many([requests[j] for j in stopped], safety_stops=True)):
                trials[j] = trial
        self._record(recorder, requests, trials, 'network' if on_policy else 'teacher' if teacher else 'controller')
        batches = [self._batch(m, trials[m * n:(m + 1) * n]) for m in range(len(exp.conditions))]
        if not pushed:
            return batches, None
        disturbed = [np.array([r.disturbance is not None and r.disturbance.disturbed
                               for r in requests[m * n:(m + 1) * n]]) for m in range(len(exp.conditions))]
        return batches, disturbed

    def _sample_request(self, it: int, on_policy: bool, teacher: bool, pushed: int
                        ) -> Callable[[int, int, int], TrialRequest]:
        """(condition m, sample i, attempt) -> the trial request, its noise and pushes from that
        attempt's own seed (attempt 0: the sample's seed)."""
        exp, cfg, algorithm = self.exp, self.exp.config, self.algorithm
        n, T, dU = cfg.samples_per_condition, cfg.T, exp.dU
        sigma = cfg.algorithm.init.smooth_noise_sigma
        if on_policy:
            from gps_core.policies.spec import policy_spec
            spec, chol = policy_spec(self.network), np.linalg.cholesky(self.network.covar_np())

        def make(m: int, i: int, attempt: int) -> TrialRequest:
            if on_policy:   # u = mu(o) + chol(Sigma_pi) eps, eps smoothed
                eps = smoothed_noise(trial_rng(cfg.seed, it, NOISE_NETWORK, m, i, attempt), T, dU, sigma) @ chol.T
                controller: ControllerSpec = NetworkSpec(spec, eps)
            else:
                eps = smoothed_noise(trial_rng(cfg.seed, it, NOISE_CONTROLLER, m, i, attempt), T, dU, sigma)
                pol = algorithm.policies[m]
                if teacher:   # the MPC teacher with the tracked controller's exploration noise
                    controller = MPCSpec(algorithm.teacher_problem(m), algorithm.teacher_noise(m, eps))
                else:
                    controller = LinearGaussianSpec(pol.K, pol.fold_noise(eps))
            plan = (self._disturbance(trial_rng(cfg.seed, it, NOISE_DISTURBANCE, m, i, attempt))
                    if i >= n - pushed else None)
            return TrialRequest(exp.conditions[m], controller, i, record_images=exp.visuomotor, disturbance=plan)
        return make

    def _disturbance(self, rng: np.random.Generator) -> DisturbancePlan:
        """A trial's pushes, drawn from its own generator (the physics step is the simulator's)."""
        cfg = self.exp.config
        return draw_plan(cfg.disturbance, rng, cfg.dt / cfg.sim.substeps)

    def _batch(self, m: int, trials: list[Trial]) -> SampleBatch:
        """Condition m's samples; for a visuomotor policy with its observations: the images and
        the robot's own state (the end-effector points in the base frame, not minus the target)."""
        X, U = np.stack([t.X for t in trials]), np.stack([t.U for t in trials])
        if not self.exp.visuomotor:
            return SampleBatch(X, U)
        if any(t.images is None for t in trials):
            raise RuntimeError(f'{self.exp.conditions[m].name}: a trial came back without its images')
        return SampleBatch(X, U, self.exp.policy_state(X, self.exp.conditions[m]), np.stack([t.images for t in trials]))

    def _evaluate_policy(self, it: int, record: dict, recorder: TrialRecorder) -> str:
        """Noiseless trials of the network alone on the training and test conditions; adds their
        final distances to the record; returns a progress-line fragment."""
        from gps_core.policies.spec import policy_spec
        exp, threshold = self.exp, self.exp.config.algorithm.success_distance
        t0 = time.perf_counter()
        spec = NetworkSpec(policy_spec(self.network))
        conditions: list[Condition] = exp.conditions + exp.test_conditions + exp.distractor_conditions
        dist = exp.config.disturbance
        pushed = dist is not None and dist.evaluation
        # under disturbances: one plan per evaluation condition, the same every iteration
        requests = [TrialRequest(c, spec, disturbance=self._disturbance(trial_rng(exp.config.seed, 0, NOISE_EVALUATION,
                                                                                  j, 0)) if pushed else None)
                    for j, c in enumerate(conditions)]
        trials = self.agent.run_many(requests)
        self._record(recorder, requests, trials, 'network alone')
        d = [float(exp.final_distance(t.X[None])[0]) for t in trials]
        ok = [bool(exp.success(c, t.X[None])[0]) for c, t in zip(conditions, trials)]
        self.policy_paths = [exp.ee_path(c, t.X) for c, t in zip(exp.conditions, trials)]
        n_train, n_test = len(exp.conditions), len(exp.test_conditions)
        train_d, test_d, distractor_d = d[:n_train], d[n_train:n_train + n_test], d[n_train + n_test:]
        train_ok, test_ok, distractor_ok = ok[:n_train], ok[n_train:n_train + n_test], ok[n_train + n_test:]
        record['policy_final_ee_distance'] = train_d
        rule = 'inserted' if exp.config.peg_task is not None else f'within {threshold} m'
        if exp.config.peg_task is not None:
            record['policy_success'] = train_ok
        line = '  | policy ' + ' '.join(f'{v:.3f}' for v in train_d)
        for name, values, success in (('test', test_d, test_ok), ('distractor', distractor_d, distractor_ok)):
            if values:
                record[f'policy_{name}_final_ee_distance'] = values
                record[f'policy_{name}_success_rate'] = float(np.mean(success))
                line += f'  {name} {sum(success)}/{len(values)} {rule}'
        if pushed:
            line += ' (pushed)'
        if all(train_ok) and self.metrics.policy_solved_at_iteration is None:
            self.metrics.policy_solved_at_iteration = it
        record['seconds']['policy_eval'] = time.perf_counter() - t0
        return line

    def _record(self, recorder: TrialRecorder, requests: list[TrialRequest], trials: list[Trial], kind: str) -> None:
        joints, nj = self.exp.config.robot.joints, self.exp.dU
        for r, t in zip(requests, trials):
            extra = {'controller': kind}
            if r.disturbance is not None:
                extra['pushes'] = len(r.disturbance.impulses)
            recorder.write_trial(arm=t.arm, condition=r.condition.name, sample=r.sample, joint_names=joints,
                                 q=t.X[:, :nj], qd=t.X[:, nj:2 * nj], U=t.U, stamps=t.stamps, images=t.images,
                                 extra=extra)

    # ---------------------------------------------------------------- outputs
    def _save(self, it: int, stats: Any, batches: list[SampleBatch]) -> None:
        """Everything of iteration `it`; the training state is the commit point (written whole,
        atomically: --resume continues after the last one there is)."""
        cfg, out = self.exp.config, self.out
        paths = [self.exp.ee_path(c, b.X) for c, b in zip(self.exp.conditions, batches)]
        if self.first_paths is None:
            self.first_paths = paths
        if self.network is not None:
            from gps_core.policies.export import export_policy   # torch: only for network algorithms
            export_policy(self.network, out / 'checkpoints', f'policy_iteration_{it:03d}')
        save_checkpoint(out / 'checkpoints', it, self.algorithm.policies,
                        {'eta': stats.eta, 'step_mult': stats.step_mult}, to_dict(cfg))
        save_training_state(out / 'checkpoints', it, self.algorithm.state_dict(),
                            {'metrics': dict(self.metrics.__dict__), 'first_paths': self.first_paths})
        self.next_iteration = it + 1
        self.metrics.write(out / 'metrics.json')
        threshold = cfg.algorithm.success_distance
        write_plot(self.metrics.iterations, threshold, out / 'training.png')
        write_report(out / 'report.html', self.metrics.__dict__, threshold=threshold,
                     targets=[c.targets[0] for c in self.exp.conditions],
                     paths={self.metrics.iterations[0]['iteration']: self.first_paths, it: paths},
                     condition_names=[c.name for c in self.exp.conditions], algorithm=cfg.algorithm.type)



def train(exp: Experiment, agent: Agent, agent_name: str, out: Path, iterations: int,
          progress: Callable[[str], None] = print,
          on_iteration: Callable[[dict, list[SampleBatch], list[np.ndarray] | None], None] | None = None,
          resume_from: Path | None = None) -> Metrics:
    """Train up to iteration `iterations` (see Trainer), from scratch or after the iteration of
    the training state `resume_from`."""
    trainer = Trainer(exp, agent, agent_name, out, progress, on_iteration)
    if resume_from is not None:
        trainer.resume(resume_from)
    elif exp.visuomotor and exp.config.policy.pretrain is not None:
        trainer.pretrain(vision_cache_dir())
    return trainer.train(iterations)


def vision_cache_dir() -> Path:
    """Where pretrained vision layers are kept across runs: $GPS_CACHE_DIR, else ~/.cache/gps_ros2."""
    return Path(os.environ.get('GPS_CACHE_DIR') or Path.home() / '.cache' / 'gps_ros2') / 'vision'

