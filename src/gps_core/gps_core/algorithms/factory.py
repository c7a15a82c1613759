"""The algorithm an experiment names (algorithm.type), built from its config.

torch is imported only for the neural-network algorithms, so trajectory-centric runs stay light.
"""
from __future__ import annotations

import numpy as np

from gps_core.algorithms.base import GPSAlgorithm
from gps_core.algorithms.traj_opt import TrajOptAlgorithm
from gps_core.config import ExperimentConfig
from gps_core.costs.base import Cost
from gps_core.policies.linear_gaussian import LinearGaussianPolicy


def make_algorithm(cfg: ExperimentConfig, costs: list[Cost], init_policies: list[LinearGaussianPolicy],
                   rng: np.random.Generator) -> GPSAlgorithm:
    """TrajOptAlgorithm, MDGPSAlgorithm, BADMMAlgorithm, PIGPSAlgorithm or MPCGPSAlgorithm. The network's
    initial weights and minibatches come from a torch.Generator seeded with the experiment seed."""
    kind = cfg.algorithm.type
    if kind == 'traj_opt':
        return TrajOptAlgorithm(cfg.algorithm, cfg.dynamics, cfg.traj_opt, costs, init_policies, rng)
    import torch

    from gps_core.algorithms.badmm import BADMMAlgorithm
    from gps_core.algorithms.mdgps import MDGPSAlgorithm
    from gps_core.algorithms.mpcgps import MPCGPSAlgorithm
    from gps_core.algorithms.pigps import PIGPSAlgorithm
    classes = {'mdgps': MDGPSAlgorithm, 'badmm': BADMMAlgorithm, 'pigps': PIGPSAlgorithm, 'mpcgps': MPCGPSAlgorithm}
    if kind not in classes:
        raise ValueError(f'unknown algorithm type {kind!r}')
    generator = torch.Generator().manual_seed(cfg.seed)
    extra = {'pi2': cfg.algorithm.pi2} if kind == 'pigps' else {'mpc': cfg.algorithm.mpc} if kind == 'mpcgps' else {}
    if getattr(cfg.policy, 'kind', 'mlp') == 'spatial_softmax':   # a visuomotor policy: the camera's images
        extra['image_shape'] = (cfg.scene.camera.height, cfg.scene.camera.width)
    return classes[kind](cfg.algorithm, cfg.dynamics, cfg.traj_opt, cfg.policy, costs, init_policies, rng,
                         generator, **extra)
