"""Pose pretraining of a visuomotor policy's vision layers, on images of the experiment's scene
(Levine, Finn, Darrell, Abbeel, JMLR'16, Sec. 4.3): before GPS, the convolutional layers learn
to predict the block's 3-D position from images of the arm in random poses with the block (and
the distractor, if the scene has one) at random places in the scene's area.

The result is cached across runs (gps_core.policies.pose_pretrain.VisionCache), keyed by
everything it depends on: the scene and camera, the robot, the start poses, the vision
architecture, the pretraining settings and the seed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gps_agent_ros.experiment import Experiment
from gps_core.config import to_dict

ARM_NOISE_RAD = 0.3       # the arm's poses: a start pose + N(0, this^2) per joint, within the limits
MIN_SEPARATION_M = 0.08   # between the block and the distractor
_PRETRAIN_KEY = 7         # spawn_key of the images' seed (apart from the trials' noise)


def pretraining_settings(exp: Experiment, network) -> dict[str, Any]:
    cfg = exp.config
    return {'scene': to_dict(cfg.scene), 'urdf_sha256': hashlib.sha256(Path(exp.urdf_path).read_bytes()).hexdigest(),
            'joints': list(cfg.robot.joints), 'start_poses': [c.q0.tolist() for c in exp.conditions],
            'vision': network.vision_architecture(), 'pretrain': to_dict(cfg.policy.pretrain), 'seed': cfg.seed,
            'arm_noise_rad': ARM_NOISE_RAD}


def render_pretraining_images(exp: Experiment, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n images [n, H, W, 3] uint8 of the scene and the block centres [n, 3] they show."""
    from gps_agent_ros.pybullet_arm import PyBulletArm
    from gps_agent_ros.scene import Camera, Scene, render_block_images
    cfg = exp.config
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_PRETRAIN_KEY,)))
    (x0, x1), (y0, y1) = cfg.scene.area_x, cfg.scene.area_y
    block = np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])
    distractor = None
    if cfg.scene.distractor is not None:
        distractor = np.empty_like(block)
        for i in range(n):
            while True:
                xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
                if np.linalg.norm(xy - block[i]) >= MIN_SEPARATION_M:
                    distractor[i] = xy
                    break
    with PyBulletArm(exp.urdf_path, list(cfg.robot.joints), dt=cfg.dt, substeps=1) as arm:
        limits = arm.position_limits
        starts = np.stack([c.q0 for c in exp.conditions])
        q = starts[rng.integers(len(starts), size=n)] + rng.normal(0.0, ARM_NOISE_RAD, (n, exp.dU))
        q = np.clip(q, limits[:, 0], limits[:, 1])
        scene, camera = Scene(arm.client_id, cfg.scene), Camera(arm.client_id, cfg.scene.camera)
        return render_block_images(scene, camera, block, distractor, arm, q)


def pretrained_vision(exp: Experiment, network, cache_dir: Path,
                      progress: Callable[[str], None] = print) -> tuple[dict, dict]:
    """(vision state_dict, stats): from the cache, or rendered and trained now (on `network`'s
    vision layers; load the result with VisuomotorPolicyOpt.load_vision)."""
    import time

    import torch

    from gps_core.policies.pose_pretrain import VisionCache
    cfg = exp.config
    pre = cfg.policy.pretrain
    cache = VisionCache(cache_dir)
    settings = pretraining_settings(exp, network)
    if cache.load(settings) is not None:
        progress(f'pretraining: vision layers from the cache ({cache.path(settings)})')
    t0 = time.perf_counter()

    def make_data() -> tuple[np.ndarray, np.ndarray]:
        progress(f'pretraining: rendering {pre.num_images} images, then {pre.iterations} steps '
                 f'(held out: {pre.holdout})')
        return render_pretraining_images(exp, pre.num_images)

    vision, stats = cache.load_or_pretrain(settings, network, make_data, pre,
                                           torch.Generator().manual_seed(cfg.seed), cfg.policy.device)
    stats = {**stats, 'seconds': time.perf_counter() - t0, 'cache': str(cache.path(settings))}
    if 'holdout_mean_error' in stats:
        progress(f"pretraining: held-out block position error {100 * stats['holdout_mean_error']:.2f} cm "
                 f"(predicting the mean: {100 * stats['holdout_mean_baseline']:.1f} cm)")
    return vision, stats
