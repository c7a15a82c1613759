"""The visuomotor policy pi_theta(u|o) = N(mu_theta(o), Sigma_pi): a spatial-softmax CNN.

Levine, Finn, Darrell, Abbeel, "End-to-End Training of Deep Visuomotor Policies", JMLR 2016,
Sec. 4.1 and Fig. 3: RGB image -> convolutions (ReLU, no pooling) -> spatial softmax per channel
-> the expected image coordinates of each channel (the "feature points") -> concatenated with the
robot configuration -> fully connected layers -> mean action. The observation o is the image plus
the robot's own state (joint angles, velocities, end-effector points in the base frame); nothing
in o names the target except the pixels.

Shapes and conventions (documented once):
  image     [B, H, W, 3] RGB, uint8, or floating point holding the same 0..255 values (channel
            last, row 0 = top of the image); normalized inside per colour channel by the buffers
            image_mean / image_scale (fitted to the pretraining or first training images)
  state     [B, dS] robot state, normalized inside by the buffers state_mean / state_scale
  features  [B, 2C], C = channels of the last convolution, ordered (x_0, y_0, x_1, y_1, ...):
            channel c's expected column x_c and row y_c, each in [-1, 1]; -1 is the centre of the
            first column (row), +1 the centre of the last one
  action    [B, dU]
  flat observation (what a policy spec's dO counts and what `mean_np` takes)
            obs [B, dO], dO = H*W*3 + dS: the image's H*W*3 values flattened row-major in
            (row, column, channel) order, then the dS state values

The image and state normalizations and Sigma_pi (`covar`) are buffers: they travel with the state_dict and
with a policy spec (spec.py). The network is float32 (convolutions in float64 would be ~2x slower
for no benefit; the MLP policy is float64); spec.py's float64 transport of float32 values is exact
both ways.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gps_core.policies.visuomotor_config import INFERENCE_PRECISIONS

DTYPE = torch.float32
IMAGE_CHANNELS = 3
_ACTIVATIONS = ('relu', 'tanh')
# inference_precision (INFERENCE_PRECISIONS): how StepInference runs the convolutions, 'float32' (the module's
# function to float32 rounding) or 'bfloat16' (every convolution but the last in bfloat16,
# accumulated in float32 by oneDNN; the last one, whose outputs are the spatial softmax's logits,
# in float32). bfloat16 pays only on CPUs with native bfloat16 matrix units (Intel AMX, AVX512-BF16):
# ~3x faster there for the 240x240 network (benchmarks/bench_visuomotor.py), slower elsewhere.
_ARCH_KEYS = ('kind', 'dO', 'dU', 'dS', 'image_shape', 'conv_channels', 'conv_kernels',
              'conv_strides', 'fc_hidden', 'activation', 'fc_activation')
_OPTIONAL_ARCH_KEYS = ('inference_precision',)     # absent in policies saved before it existed: float32


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    return torch.relu(x) if name == 'relu' else torch.tanh(x)


def conv_output_size(size: int, kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Side length after the 'valid' (unpadded) convolutions."""
    for k, s in zip(kernels, strides):
        size = (size - k) // s + 1
    return size


class SpatialSoftmax(nn.Module):
    """Per channel c: s_cij = softmax_ij(a_cij / alpha), feature = (sum_ij s_cij x_j, sum_ij s_cij y_i)
    (JMLR'16 Sec. 4.1, alpha a learned temperature). [B, C, h, w] -> [B, 2C] as documented above."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, dtype=DTYPE))
        xs = torch.linspace(-1.0, 1.0, width, dtype=DTYPE) if width > 1 else torch.zeros(1, dtype=DTYPE)
        ys = torch.linspace(-1.0, 1.0, height, dtype=DTYPE) if height > 1 else torch.zeros(1, dtype=DTYPE)
        grid = torch.stack([xs.repeat(height), ys.repeat_interleave(width)], dim=1)   # [h*w, 2]
        self.register_buffer('grid', grid, persistent=False)     # derived from the sizes: not in the spec

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        B, C = a.shape[:2]
        s = torch.softmax(a.reshape(B, C, -1) / self.temperature, dim=-1)
        return torch.matmul(s, self.grid).reshape(B, 2 * C)


class SpatialSoftmaxEncoder(nn.Module):
    """The vision layers: image [B, H, W, 3] -> feature points [B, 2C]. What pose pretraining trains."""

    def __init__(self, image_shape: tuple[int, int], channels: Sequence[int], kernels: Sequence[int],
                 strides: Sequence[int], activation: str):
        super().__init__()
        self.image_shape, self.activation = (int(image_shape[0]), int(image_shape[1])), activation
        layers, c_in = [], IMAGE_CHANNELS
        for c, k, s in zip(channels, kernels, strides):
            layers.append(nn.Conv2d(c_in, c, k, s, dtype=DTYPE))
            c_in = c
        self.convs = nn.ModuleList(layers)
        h = conv_output_size(self.image_shape[0], kernels, strides)
        w = conv_output_size(self.image_shape[1], kernels, strides)
        self.softmax = SpatialSoftmax(h, w)
        self.num_features = 2 * c_in
        # per colour channel: pixel -> (pixel - image_mean) / image_scale; the default is [0, 1]
        self.register_buffer('image_mean', torch.zeros(IMAGE_CHANNELS, dtype=DTYPE))
        self.register_buffer('image_scale', torch.full((IMAGE_CHANNELS,), 255.0, dtype=DTYPE))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.image_tensor(image)
        for conv in self.convs:
            x = _activate(conv(x), self.activation)
        return self.softmax(x)

    def image_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """[B, H, W, 3] (uint8 or 0..255 float) -> [B, 3, H, W] normalized float. The permuted
        view is channels-last in memory, the layout oneDNN's CPU convolutions are fastest in."""
        H, W = self.image_shape
        if image.ndim != 4 or tuple(image.shape[1:]) != (H, W, IMAGE_CHANNELS):
            raise ValueError(f'images must be [B, {H}, {W}, {IMAGE_CHANNELS}]; got {list(image.shape)}')
        x = image.permute(0, 3, 1, 2).to(self.image_mean.dtype)
        return (x - self.image_mean[:, None, None]) / self.image_scale[:, None, None]

    def fit_image_normalization(self, images: np.ndarray) -> None:
        """Per colour channel mean and standard deviation (at least 1 grey level) of images
        [N, H, W, 3]. Without it a scene's uniform background feeds every first-layer filter a
        constant: half the ReLU channels start dead and the spatial softmax starts flat."""
        px = np.asarray(images).reshape(-1, IMAGE_CHANNELS).astype(np.float64)
        with torch.no_grad():
            self.image_mean.copy_(torch.from_numpy(px.mean(axis=0)))
            self.image_scale.copy_(torch.from_numpy(np.maximum(px.std(axis=0), 1.0)))


class VisuomotorNetwork(nn.Module):
    """mu_theta(image, state) = FC([features(image), (state - state_mean) / state_scale]).

    Args:
        image_shape: (H, W) of the RGB images.
        dS: robot-state size; dU: action size.
        conv_channels, conv_kernels, conv_strides: one entry per convolution ('valid', no pooling);
            the feature points are the last layer's channels (2 values each).
        fc_hidden: sizes of the fully connected hidden layers after the concatenation.
        activation: after every convolution; fc_activation: after every hidden FC layer.
        inference_precision: how StepInference runs the convolutions (INFERENCE_PRECISIONS);
            training and `forward` are float32 either way.
        generator: seeds the initialization (a seeded experiment gives the same network).
    """

    KIND = 'spatial_softmax'

    def __init__(self, image_shape: Sequence[int], dS: int, dU: int,
                 conv_channels: Sequence[int] = (32, 32, 32), conv_kernels: Sequence[int] = (5, 5, 5),
                 conv_strides: Sequence[int] = (2, 1, 1), fc_hidden: Sequence[int] = (40, 40),
                 activation: str = 'relu', fc_activation: str = 'relu',
                 generator: torch.Generator | None = None, inference_precision: str = 'float32'):
        super().__init__()
        if inference_precision not in INFERENCE_PRECISIONS:
            raise ValueError(f'inference_precision must be one of {list(INFERENCE_PRECISIONS)}, '
                             f'got {inference_precision!r}')
        self.inference_precision = inference_precision
        image_shape = tuple(int(v) for v in image_shape)
        channels, kernels = tuple(int(v) for v in conv_channels), tuple(int(v) for v in conv_kernels)
        strides, hidden = tuple(int(v) for v in conv_strides), tuple(int(v) for v in fc_hidden)
        _check_sizes(image_shape, int(dS), int(dU), channels, kernels, strides, hidden, activation, fc_activation)
        self.image_shape, self.dS, self.dU = image_shape, int(dS), int(dU)
        self.conv_channels, self.conv_kernels, self.conv_strides = channels, kernels, strides
        self.fc_hidden, self.activation, self.fc_activation = hidden, activation, fc_activation
        self.image_size = image_shape[0] * image_shape[1] * IMAGE_CHANNELS
        self.dO = self.image_size + self.dS
        self.vision = SpatialSoftmaxEncoder(image_shape, channels, kernels, strides, activation)
        layers, d = [], self.vision.num_features + self.dS
        for h in hidden:
            layers.append(nn.Linear(d, h, dtype=DTYPE))
            d = h
        layers.append(nn.Linear(d, self.dU, dtype=DTYPE))
        self.fc = nn.ModuleList(layers)
        self.register_buffer('state_mean', torch.zeros(self.dS, dtype=DTYPE))
        self.register_buffer('state_scale', torch.ones(self.dS, dtype=DTYPE))
        self.register_buffer('covar', torch.eye(self.dU, dtype=DTYPE))
        self.reset_parameters(generator)

    # ------------------------------------------------------------ init
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Convolutions: He-uniform weights U(+-sqrt(6 / fan_in)) for ReLU (Glorot for tanh), zero
        biases, so the last layer's responses are not flat and the spatial softmax starts with
        gradient; FC layers: PyTorch's default U(+-1/sqrt(fan_in)). All drawn from `generator`."""
        with torch.no_grad():
            for conv in self.vision.convs:
                fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
                fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
                bound = (math.sqrt(6.0 / fan_in) if self.activation == 'relu'
                         else math.sqrt(6.0 / (fan_in + fan_out)))
                conv.weight.uniform_(-bound, bound, generator=generator)
                conv.bias.zero_()
            self.vision.softmax.temperature.fill_(1.0)
            for layer in self.fc:
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)

    # ------------------------------------------------------------ forward
    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Feature points [B, 2C] of images [B, H, W, 3]."""
        return self.vision(image)

    def head(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The FC part on precomputed feature points [B, 2C] and raw robot states [B, dS] -> [B, dU]
        (what the first phase of each policy step trains, JMLR'16 Sec. 4.3)."""
        if features.shape[-1] != self.vision.num_features or state.shape[-1] != self.dS:
            raise ValueError(f'head expects features [B, {self.vision.num_features}] and state [B, {self.dS}]; '
                             f'got {list(features.shape)}, {list(state.shape)}')
        x = torch.cat([features, (state.to(features.dtype) - self.state_mean) / self.state_scale], dim=-1)
        for layer in self.fc[:-1]:
            x = _activate(layer(x), self.fc_activation)
        return self.fc[-1](x)

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image), state)

    def forward_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """mu_theta of flat observations [B, dO] (layout in the module docstring)."""
        image, state = self.split_obs(obs)
        return self(image, state)

    # ------------------------------------------------------------ observation layout
    def split_obs(self, obs: torch.Tensor | np.ndarray):
        """Flat obs [B, dO] -> (image [B, H, W, 3], state [B, dS]) as views (torch or numpy)."""
        if obs.ndim != 2 or obs.shape[1] != self.dO:
            raise ValueError(f'flat observations must be [B, {self.dO}] (image {self.image_shape[0]}x'
                             f'{self.image_shape[1]}x3 then dS={self.dS}); got {list(obs.shape)}')
        H, W = self.image_shape
        return obs[:, :self.image_size].reshape(-1, H, W, IMAGE_CHANNELS), obs[:, self.image_size:]

    def pack_obs(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        """(image [..., H, W, 3], state [..., dS]) -> flat obs [..., dO] float64 (inverse of split_obs)."""
        image, state = np.asarray(image), np.asarray(state, dtype=float)
        lead = image.shape[:-3]
        if tuple(image.shape[-3:]) != (*self.image_shape, IMAGE_CHANNELS) or state.shape != (*lead, self.dS):
            raise ValueError(f'expected image [..., {self.image_shape[0]}, {self.image_shape[1]}, 3] and state '
                             f'[..., {self.dS}] with the same leading shape; got {image.shape}, {state.shape}')
        return np.concatenate([image.reshape(*lead, self.image_size).astype(float), state], axis=-1)

    # ------------------------------------------------------------ numpy interface
    def mean_np(self, obs: np.ndarray, chunk: int = 256) -> np.ndarray:
        """mu_theta for flat obs [..., dO] as numpy float64 [..., dU] (no gradient; in chunks so a
        trajectory window does not hold every image as float at once)."""
        obs = np.asarray(obs)
        if obs.shape[-1] != self.dO:
            raise ValueError(f'observations must end in dO={self.dO}; got shape {obs.shape}')
        flat = obs.reshape(-1, self.dO)
        image, state = self.split_obs(flat)
        return self.act_np(image, state, chunk).reshape(*obs.shape[:-1], self.dU)

    def act_np(self, image: np.ndarray, state: np.ndarray, chunk: int = 256) -> np.ndarray:
        """mu_theta(image [M, H, W, 3], state [M, dS]) as numpy float64 [M, dU], evaluated in chunks
        on the network's device."""
        image, state = np.asarray(image), np.asarray(state, dtype=float)
        if image.shape[0] != state.shape[0]:
            raise ValueError(f'{image.shape[0]} images for {state.shape[0]} states')
        device = self.covar.device
        out = np.empty((image.shape[0], self.dU))
        with torch.no_grad():
            for a in range(0, image.shape[0], chunk):
                img = torch.from_numpy(np.ascontiguousarray(image[a:a + chunk])).to(device)
                st = torch.from_numpy(np.ascontiguousarray(state[a:a + chunk])).to(device, DTYPE)
                out[a:a + chunk] = self(img, st).double().cpu().numpy()
        return out

    # ------------------------------------------------------------ normalization, Sigma_pi
    def fit_normalization(self, state: np.ndarray) -> None:
        """Per-dimension mean and standard deviation of robot states [M, dS]; constant dimensions
        keep scale 1. (Feature points lie in [-1, 1] and need none.)"""
        state = np.asarray(state, dtype=float).reshape(-1, self.dS)
        std = state.std(axis=0)
        with torch.no_grad():
            self.state_mean.copy_(torch.from_numpy(state.mean(axis=0)))
            self.state_scale.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0)))

    def set_covar(self, covar: np.ndarray) -> None:
        covar = np.asarray(covar, dtype=float)
        if covar.shape != (self.dU, self.dU) or not np.all(np.isfinite(covar)):
            raise ValueError(f'policy covariance must be a finite [{self.dU}, {self.dU}] matrix; got {covar.shape}')
        np.linalg.cholesky(covar)                                   # raises if not positive definite
        with torch.no_grad():
            self.covar.copy_(torch.from_numpy(0.5 * (covar + covar.T)))

    def covar_np(self) -> np.ndarray:
        return self.covar.detach().double().cpu().numpy().copy()

    # ------------------------------------------------------------ parameter groups
    def vision_parameters(self) -> list[nn.Parameter]:
        return list(self.vision.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())

    def vision_architecture(self) -> dict:
        """What determines the vision layers' weights' shapes (part of the pretraining cache key)."""
        return {'image_shape': list(self.image_shape), 'conv_channels': list(self.conv_channels),
                'conv_kernels': list(self.conv_kernels), 'conv_strides': list(self.conv_strides),
                'activation': self.activation}

    # ------------------------------------------------------------ policy as data
    def architecture(self) -> dict:
        """JSON-able description `from_architecture` rebuilds the module from (spec.py). dO is the
        flat observation size H*W*3 + dS (layout in the module docstring)."""
        return {'kind': self.KIND, 'dO': self.dO, 'dU': self.dU, 'dS': self.dS,
                'image_shape': [*self.image_shape, IMAGE_CHANNELS],
                'conv_channels': list(self.conv_channels), 'conv_kernels': list(self.conv_kernels),
                'conv_strides': list(self.conv_strides), 'fc_hidden': list(self.fc_hidden),
                'activation': self.activation, 'fc_activation': self.fc_activation,
                'inference_precision': self.inference_precision}

    @staticmethod
    def from_architecture(arch: Mapping[str, Any]) -> VisuomotorNetwork:
        """Inverse of `architecture()`; raises KeyError / ValueError naming a missing, unknown or
        inconsistent entry (spec.py turns these into InvalidPolicy)."""
        unknown = sorted(set(arch) - set(_ARCH_KEYS) - set(_OPTIONAL_ARCH_KEYS))
        if unknown:
            raise ValueError(f'unknown spatial_softmax architecture key(s) {unknown}; known: '
                             f'{list(_ARCH_KEYS + _OPTIONAL_ARCH_KEYS)}')
        missing = [k for k in _ARCH_KEYS if k not in arch]
        if missing:
            raise KeyError(f'spatial_softmax architecture lacks {missing}')
        if arch['kind'] != VisuomotorNetwork.KIND:
            raise ValueError(f"architecture kind {arch['kind']!r} is not {VisuomotorNetwork.KIND!r}")
        shape = [int(v) for v in arch['image_shape']]
        if len(shape) != 3 or shape[2] != IMAGE_CHANNELS:
            raise ValueError(f'image_shape must be [H, W, {IMAGE_CHANNELS}], got {arch["image_shape"]}')
        net = VisuomotorNetwork(shape[:2], int(arch['dS']), int(arch['dU']), arch['conv_channels'],
                                arch['conv_kernels'], arch['conv_strides'], arch['fc_hidden'],
                                str(arch['activation']), str(arch['fc_activation']),
                                inference_precision=str(arch.get('inference_precision', 'float32')))
        if int(arch['dO']) != net.dO:
            raise ValueError(f"dO={arch['dO']} does not match image_shape {shape} and dS={arch['dS']} "
                             f'(H*W*3 + dS = {net.dO})')
        return net


def _check_sizes(image_shape, dS, dU, channels, kernels, strides, hidden, activation, fc_activation) -> None:
    if len(image_shape) != 2 or min(image_shape) < 1:
        raise ValueError(f'image_shape must be (H, W) with positive sizes, got {list(image_shape)}')
    if dS < 0 or dU < 1:
        raise ValueError(f'need dS >= 0 and dU >= 1, got dS={dS}, dU={dU}')
    if not channels or not (len(channels) == len(kernels) == len(strides)):
        raise ValueError(f'conv_channels, conv_kernels, conv_strides need one entry per convolution (>= 1); '
                         f'got {list(channels)}, {list(kernels)}, {list(strides)}')
    if min(channels) < 1 or min(kernels) < 1 or min(strides) < 1 or (hidden and min(hidden) < 1):
        raise ValueError('convolution channels, kernels, strides and fc_hidden sizes must be >= 1')
    for name, value in (('activation', activation), ('fc_activation', fc_activation)):
        if value not in _ACTIVATIONS:
            raise ValueError(f'{name} must be one of {list(_ACTIVATIONS)}, got {value!r}')
    size = list(image_shape)
    for i, (k, s) in enumerate(zip(kernels, strides)):
        size = [(v - k) // s + 1 for v in size]
        if min(size) < 1:
            raise ValueError(f'convolution {i} (kernel {k}, stride {s}) leaves no pixels of a '
                             f'{image_shape[0]}x{image_shape[1]} image')


class StepInference:
    """Batch-1 evaluation for a control loop: u = mu_theta(image [H, W, 3] uint8, state [dS]) -> [dU].

    The same function as `network(image, state)` (to float32 rounding), rearranged for one
    observation at a time in plain eager PyTorch (no TorchScript, deprecated in torch 2.13; no
    torch.compile): the image normalization is folded into the first convolution, the softmax
    temperature into the last one (ReLU only: relu(z) / alpha = relu(z / alpha)), the state
    normalization into the first FC layer (no concatenation); weights are stored channels-last (the
    layout a channel-last image already has, so no transpose per step) and the spatial softmax
    runs on that layout; inputs are preallocated, activations in place, no autograd. Set the
    thread count (torch.set_num_threads) where the loop runs. Weights are copied: later training
    of `network` does not change a StepInference built before.

    With network.inference_precision 'bfloat16' the image (uint8: exact in bfloat16) and every
    convolution but the last run in bfloat16; the last convolution and everything after it in
    float32, so the spatial softmax sees float32 logits (error against `network`: see
    tests/core/test_visuomotor_network.py and benchmarks/bench_visuomotor.py).
    """

    def __init__(self, network: VisuomotorNetwork):
        net = copy.deepcopy(network).cpu().eval()
        enc = net.vision
        self._relu = net.activation == 'relu'
        self._fc_relu = net.fc_activation == 'relu'
        with torch.no_grad():
            convs = [(c.weight.clone(), c.bias.clone(), c.stride) for c in enc.convs]
            w, b, stride = convs[0]         # conv(w, (x - m) / s) = conv(w / s, x) - sum w m / s
            w = w / enc.image_scale[None, :, None, None]
            convs[0] = (w, b - (w * enc.image_mean[None, :, None, None]).sum(dim=(1, 2, 3)), stride)
            self._temperature = enc.softmax.temperature.clone()
            if self._relu and float(self._temperature) > 0:
                w, b, stride = convs[-1]
                convs[-1] = (w / self._temperature, b / self._temperature, stride)
                self._temperature = None
            reduced = torch.bfloat16 if net.inference_precision == 'bfloat16' else DTYPE
            dtypes = [reduced] * (len(convs) - 1) + [DTYPE]
            self._convs = [(w.to(dt).contiguous(memory_format=torch.channels_last), b.to(dt), s, dt)
                           for (w, b, s), dt in zip(convs, dtypes)]
            self._grid_t = enc.softmax.grid.t().contiguous()                      # [2, h*w]
            first = net.fc[0]
            nf = enc.num_features
            w_state = first.weight[:, nf:] / net.state_scale                     # W (s - m) / k
            self._fc0 = (first.bias - w_state @ net.state_mean, first.weight[:, :nf].t().contiguous(),
                         w_state.t().contiguous())
            self._fc = [(layer.bias.clone(), layer.weight.t().contiguous()) for layer in net.fc[1:]]
        self.image_shape, self.dS, self.dU = net.image_shape, net.dS, net.dU
        H, W = net.image_shape
        self._image = torch.empty(1, IMAGE_CHANNELS, H, W, dtype=dtypes[0]).contiguous(memory_format=torch.channels_last)
        self._state = torch.empty(1, net.dS, dtype=DTYPE)

    def __call__(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        H, W = self.image_shape
        if image.shape != (H, W, IMAGE_CHANNELS) or np.shape(state) != (self.dS,):
            raise ValueError(f'expected image [{H}, {W}, 3] and state [{self.dS}]; got {image.shape}, {np.shape(state)}')
        with torch.inference_mode():
            self._image.copy_(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])
            self._state.copy_(torch.from_numpy(np.asarray(state, dtype=np.float64))[None])
            x = self._image
            for weight, bias, stride, dtype in self._convs:
                x = F.conv2d(x.to(dtype), weight, bias, stride)      # .to: a no-op but at the last
                x = x.relu_() if self._relu else x.tanh_()
            C = x.shape[1]
            a = x.permute(0, 2, 3, 1).reshape(-1, C)                 # [h*w, C]: a view in channels-last
            if self._temperature is not None:
                a = a / self._temperature
            feats = (self._grid_t @ torch.softmax(a, dim=0)).t().reshape(1, 2 * C)   # (x_0, y_0, x_1, ...)
            b0, w_feat, w_state = self._fc0
            h = torch.addmm(b0, feats, w_feat).addmm_(self._state, w_state)
            for bias, weight in self._fc:
                h = h.relu_() if self._fc_relu else h.tanh_()
                h = torch.addmm(bias, h, weight)
            return h[0].double().numpy()
