"""Pose pretraining of the visuomotor network's vision layers, and a cache of the result.

Levine et al. JMLR'16 Sec. 4.3 ("pretraining"): before guided policy search, the convolutional
layers learn to predict the 3-D position of the target from images (here: the block's centre in
the base frame) through a layer on the feature points (here a small MLP, see PoseRegressor). That
head is discarded; the vision
weights initialize the policy and are fine-tuned by the policy steps. Feature points that already
track the block let the FC head work from the first GPS iteration.

Shapes: images [N, H, W, 3] uint8, positions [N, 3] (m, base frame).

The trained weights are plain data (a state_dict of tensors, saved with torch.save and read back
with weights_only=True), cached under a key hashed from everything that determines them (scene,
camera, vision architecture, pretraining settings, seed), so runs with the same settings reuse them.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from gps_core.policies.visuomotor import DTYPE, SpatialSoftmaxEncoder, VisuomotorNetwork
from gps_core.policies.visuomotor_config import PosePretrainConfig
from gps_core.policies.visuomotor_opt import compute_features, resolve_device

CACHE_FORMAT = 1


class PoseRegressor(nn.Module):
    """position = mean + scale * head(features(image)): the encoder (shared, not copied) and a
    small head on its feature points (`hidden` tanh layers, then linear; hidden = () is the
    linear pose layer). Feature points are image coordinates, and the block's position on the
    table is a projective, not linear, function of them (a linear read-out of this camera's
    view leaves 0.8 cm on average), hence a hidden layer by default. The position normalization
    is per axis (an axis that never varies, like a block's height on the table, keeps scale 1)."""

    def __init__(self, encoder: SpatialSoftmaxEncoder, positions: np.ndarray, hidden: tuple[int, ...] = (32,),
                 generator: torch.Generator | None = None):
        super().__init__()
        self.encoder = encoder
        device = next(encoder.parameters()).device
        layers, d = [], encoder.num_features
        for h in (*hidden, 3):
            layers.append(nn.Linear(d, h, dtype=DTYPE, device=device))
            d = h
        with torch.no_grad():
            for layer in layers:
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.zero_()
        self.layers = nn.ModuleList(layers)
        std = positions.std(axis=0)
        self.register_buffer('pos_mean', torch.tensor(positions.mean(axis=0), dtype=DTYPE, device=device))
        self.register_buffer('pos_scale', torch.tensor(np.where(std > 1e-8, std, 1.0), dtype=DTYPE, device=device))

    def normalized(self, image: torch.Tensor) -> torch.Tensor:
        x = self.encoder(image)
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pos_mean + self.pos_scale * self.normalized(image)

    def predict_np(self, images: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Positions [N, 3] (float64) of images [N, H, W, 3]."""
        device = self.pos_mean.device
        with torch.no_grad():
            out = [self(torch.from_numpy(np.ascontiguousarray(images[a:a + chunk])).to(device))
                   for a in range(0, len(images), chunk)]
        return torch.cat(out).double().cpu().numpy()


@dataclass(frozen=True)
class PretrainResult:
    vision_state: dict[str, torch.Tensor]   # SpatialSoftmaxEncoder state_dict (CPU tensors)
    regressor: PoseRegressor                # encoder + pose layer, to measure held-out error
    losses: tuple[float, ...]               # minibatch loss (normalized MSE) every step


def pretrain_vision(network: VisuomotorNetwork, images: np.ndarray, positions: np.ndarray,
                    config: PosePretrainConfig, generator: torch.Generator, device: str = 'auto') -> PretrainResult:
    """Train `network`'s vision layers (in place, on `device`) to regress positions [N, 3] from
    images [N, H, W, 3] uint8 by Adam on the per-axis normalized squared error, after fitting the
    image normalization to these images. Uses all images given: hold out data by passing less.
    Returns the trained vision weights (normalization buffers included)."""
    images, positions = _validate(network, images, positions)
    network.vision.fit_image_normalization(images)
    dev = resolve_device(device)
    network.to(dev)
    reg = PoseRegressor(network.vision, positions, config.head_hidden, generator)
    opt = torch.optim.Adam(reg.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    img = torch.from_numpy(images).to(dev)
    target = (torch.from_numpy(positions).to(dev, DTYPE) - reg.pos_mean) / reg.pos_scale
    N, B = img.shape[0], min(config.batch_size, img.shape[0])
    order, pos, losses = torch.randperm(N, generator=generator), 0, []
    reg.train()
    for _ in range(config.iterations):
        if pos + B > N:
            order, pos = torch.randperm(N, generator=generator), 0
        idx = order[pos:pos + B].to(dev)
        pos += B
        opt.zero_grad(set_to_none=True)
        loss = ((reg.normalized(img[idx]) - target[idx]) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    reg.eval()
    state = {k: v.detach().cpu().clone() for k, v in network.vision.state_dict().items()}
    return PretrainResult(state, reg, tuple(losses))


def pose_errors(regressor: PoseRegressor, images: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Euclidean error [N] (m) of the predicted positions."""
    return np.linalg.norm(regressor.predict_np(images) - np.asarray(positions, dtype=float), axis=1)


def feature_points(network: VisuomotorNetwork, images: np.ndarray) -> np.ndarray:
    """Feature points [N, 2C] (numpy) of images [N, H, W, 3], e.g. to look at what was learned."""
    dev = network.covar.device
    return compute_features(network, torch.from_numpy(np.ascontiguousarray(images)).to(dev)).double().cpu().numpy()


def _validate(network: VisuomotorNetwork, images, positions) -> tuple[np.ndarray, np.ndarray]:
    images, positions = np.asarray(images), np.asarray(positions, dtype=float)
    H, W = network.image_shape
    if images.ndim != 4 or images.shape[1:] != (H, W, 3) or positions.shape != (images.shape[0], 3):
        raise ValueError(f'pose pretraining expects images [N, {H}, {W}, 3] and positions [N, 3]; '
                         f'got {images.shape}, {positions.shape}')
    if images.dtype != np.uint8 or images.shape[0] < 2:
        raise ValueError(f'pose pretraining needs >= 2 uint8 images, got {images.shape[0]} of {images.dtype}')
    if not np.all(np.isfinite(positions)):
        raise ValueError('pose pretraining: non-finite positions')
    return np.ascontiguousarray(images), positions


# ----------------------------------------------------------------- cache
def settings_json(settings: Mapping[str, Any]) -> str:
    """Canonical JSON of the settings (dataclasses become dicts, tuples lists, keys sorted)."""
    def plain(v: Any) -> Any:
        if is_dataclass(v) and not isinstance(v, type):
            return plain(asdict(v))
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray)):
            return [plain(x) for x in v]
        if isinstance(v, (np.integer, np.floating)):
            return v.item()
        return v
    return json.dumps(plain(dict(settings)), sort_keys=True, allow_nan=False)


def cache_key(settings: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of settings_json (e.g. scene, camera, vision architecture,
    pretraining config, seed, the sampling ranges of the images)."""
    return hashlib.sha256(settings_json(settings).encode()).hexdigest()[:16]


class VisionCache:
    """Pretrained vision weights in `directory`, one file per cache key: vision_<key>.pt holding
    {'format', 'settings' (the JSON the key was hashed from), 'vision' (state_dict), 'stats'}."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, settings: Mapping[str, Any]) -> Path:
        return self.directory / f'vision_{cache_key(settings)}.pt'

    def load(self, settings: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict] | None:
        """(vision state_dict, stats) saved for these settings, or None. A file whose stored
        settings differ from these (a hash collision, a stale format) is not used."""
        path = self.path(settings)
        if not path.exists():
            return None
        data = torch.load(path, weights_only=True, map_location='cpu')
        if data.get('format') != CACHE_FORMAT or data.get('settings') != settings_json(settings):
            return None
        return dict(data['vision']), dict(data['stats'])

    def save(self, settings: Mapping[str, Any], vision_state: Mapping[str, torch.Tensor],
             stats: Mapping[str, float] | None = None) -> Path:
        """Write atomically (a reader never sees half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(settings)
        tmp = path.with_name(path.name + '.tmp')
        torch.save({'format': CACHE_FORMAT, 'settings': settings_json(settings),
                    'vision': {k: v.detach().cpu().clone() for k, v in vision_state.items()},
                    'stats': {k: float(v) for k, v in (stats or {}).items()}}, tmp)
        tmp.replace(path)
        return path

    def load_or_pretrain(self, settings: Mapping[str, Any], network: VisuomotorNetwork,
                         make_data: Callable[[], tuple[np.ndarray, np.ndarray]], config: PosePretrainConfig,
                         generator: torch.Generator, device: str = 'auto') -> tuple[dict[str, torch.Tensor], dict]:
        """(vision state_dict, stats) for `settings`: from the cache, or by rendering
        (make_data() -> images, positions), pretraining `network`'s vision layers on all but the
        last config.holdout images and saving. stats: the final loss and the held-out mean and
        median error next to the predict-the-mean baseline (m). Load the state into the policy
        with VisuomotorPolicyOpt.load_vision."""
        cached = self.load(settings)
        if cached is not None:
            return cached
        images, positions = make_data()
        n_train = len(images) - config.holdout
        result = pretrain_vision(network, images[:n_train], positions[:n_train], config, generator, device)
        stats = {'final_loss': result.losses[-1]}
        if config.holdout:
            err = pose_errors(result.regressor, images[n_train:], positions[n_train:])
            base = np.linalg.norm(positions[n_train:] - positions[:n_train].mean(axis=0), axis=1)
            stats.update(holdout_mean_error=float(err.mean()), holdout_median_error=float(np.median(err)),
                         holdout_mean_baseline=float(base.mean()))
        self.save(settings, result.vision_state, stats)
        return result.vision_state, stats
