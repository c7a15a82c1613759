"""Settings of the visuomotor policy, its per-iteration training schedule and the pose pretraining
of its vision layers (no torch here: the config loads without importing torch).

Built from YAML by gps_core.config.build (the type hints below are what it reads); every value is
checked in __post_init__.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gps_core.policies.policy_config import ACTIVATIONS, PolicyPriorConfig

DEVICES = ('auto', 'cpu', 'cuda')
INFERENCE_PRECISIONS = ('float32', 'bfloat16')   # how the controller runs the convolutions (visuomotor.StepInference)


def _positive(where: str, **values: float) -> None:
    bad = {k: v for k, v in values.items() if not v > 0}
    if bad:
        raise ValueError(f'{where}: {sorted(bad)} must be > 0, got {bad}')


@dataclass(frozen=True)
class PosePretrainConfig:
    """Levine et al. JMLR'16 Sec. 4.3: before GPS, the vision layers learn to predict the target's
    3-D position from images (a linear layer on the feature points, discarded afterwards).

    num_images: rendered with random block positions (and arm poses); holdout of them are kept
    out of training to report the error. iterations Adam steps on minibatches of batch_size.
    head_hidden: tanh hidden layers of the pose head on the feature points (() = linear).
    """

    num_images: int = 1200
    holdout: int = 200
    iterations: int = 1000
    batch_size: int = 32
    learning_rate: float = 3.0e-3
    weight_decay: float = 0.0
    head_hidden: tuple[int, ...] = (32,)

    def __post_init__(self) -> None:
        _positive('policy.pretrain', num_images=self.num_images, iterations=self.iterations,
                  batch_size=self.batch_size, learning_rate=self.learning_rate)
        if not 0 <= self.holdout < self.num_images:
            raise ValueError(f'policy.pretrain.holdout must be in [0, num_images), got {self.holdout}')
        if self.weight_decay < 0:
            raise ValueError(f'policy.pretrain.weight_decay must be >= 0, got {self.weight_decay}')
        if any(h < 1 for h in self.head_hidden):
            raise ValueError(f'policy.pretrain.head_hidden sizes must be >= 1, got {list(self.head_hidden)}')


@dataclass(frozen=True)
class VisuomotorPolicyConfig:
    """pi_theta(u|o) = N(mu_theta(image, robot state), Sigma_pi), a spatial-softmax CNN
    (gps_core.policies.visuomotor.VisuomotorNetwork).

    Each policy step (JMLR'16 Sec. 4.3, as the 2017 reference code schedules it): head_iterations
    Adam steps on the FC head alone, fed feature points precomputed once for all images, then
    full_iterations steps on the whole network; minibatches of batch_size (time step, sample)
    pairs. device: 'auto' (CUDA when present), 'cpu' or 'cuda'. inference_precision: how the
    controller runs the convolutions on the arm, 'float32' or 'bfloat16' (all but the last
    convolution; for CPUs with AMX / AVX512-BF16, where it is ~3x faster at 240x240).
    regularization and prior: the network's linearization, as in PolicyConfig.
    """

    kind: str = 'spatial_softmax'
    conv_channels: tuple[int, ...] = (16, 16, 16)
    conv_kernels: tuple[int, ...] = (5, 5, 5)
    conv_strides: tuple[int, ...] = (2, 1, 1)
    fc_hidden: tuple[int, ...] = (40, 40)
    activation: str = 'relu'
    fc_activation: str = 'relu'
    head_iterations: int = 1000
    full_iterations: int = 200
    batch_size: int = 64
    learning_rate: float = 1.0e-3
    weight_decay: float = 0.0
    device: str = 'auto'
    inference_precision: str = 'float32'
    regularization: float = 1.0e-6
    prior: PolicyPriorConfig = field(default_factory=PolicyPriorConfig)
    pretrain: PosePretrainConfig | None = field(default_factory=PosePretrainConfig)

    def __post_init__(self) -> None:
        if self.kind != 'spatial_softmax':
            raise ValueError(f"policy.kind of this policy is 'spatial_softmax', got {self.kind!r}")
        if not (len(self.conv_channels) == len(self.conv_kernels) == len(self.conv_strides) >= 1):
            raise ValueError(f'policy: conv_channels, conv_kernels, conv_strides need one entry per '
                             f'convolution; got {list(self.conv_channels)}, {list(self.conv_kernels)}, '
                             f'{list(self.conv_strides)}')
        if min(self.conv_channels + self.conv_kernels + self.conv_strides) < 1 or any(h < 1 for h in self.fc_hidden):
            raise ValueError('policy: convolution and fc_hidden sizes must be >= 1')
        for name in ('activation', 'fc_activation'):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f'policy.{name} must be one of {list(ACTIVATIONS)}, got {getattr(self, name)!r}')
        if self.head_iterations < 0 or self.full_iterations < 0 or self.head_iterations + self.full_iterations < 1:
            raise ValueError(f'policy.head_iterations and full_iterations must be >= 0 with a positive sum, '
                             f'got {self.head_iterations}, {self.full_iterations}')
        _positive('policy', batch_size=self.batch_size, learning_rate=self.learning_rate)
        if self.weight_decay < 0 or self.regularization < 0:
            raise ValueError('policy.weight_decay and policy.regularization must be >= 0')
        if self.device not in DEVICES:
            raise ValueError(f'policy.device must be one of {list(DEVICES)}, got {self.device!r}')
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise ValueError(f'policy.inference_precision must be one of {list(INFERENCE_PRECISIONS)}, '
                             f'got {self.inference_precision!r}')

    def network_kwargs(self) -> dict:
        """The architecture part, as VisuomotorNetwork keyword arguments."""
        return {'conv_channels': self.conv_channels, 'conv_kernels': self.conv_kernels,
                'conv_strides': self.conv_strides, 'fc_hidden': self.fc_hidden,
                'activation': self.activation, 'fc_activation': self.fc_activation,
                'inference_precision': self.inference_precision}
