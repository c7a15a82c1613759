"""The supervised policy step for the visuomotor network: precision-weighted regression of
mu_theta(image, robot state) onto the local controllers, in two phases per GPS iteration.

Shapes (M = all conditions' (sample, time step) pairs, flattened):
  image [M, H, W, 3] uint8, state [M, dS] robot states (what the network sees; never the full x),
  tgt_mu [M, dU] controller mean actions at the sampled x, tgt_prc [M, dU, dU] their precisions,
  tgt_wt [M] per-pair weights.

Levine et al. JMLR'16 Sec. 4.2-4.3: the same objective as the MLP's policy step (policy_opt.py:
the mean by Adam on (1/M) sum_i w_i d_i^T P_i d_i, Sigma_pi^-1 = the weighted mean precision);
what differs is the schedule. As the 2017 reference code does it, each update first computes the
feature points of every image once and trains the fully connected head alone on them
(head_iterations cheap steps: no convolution runs), then trains the whole network end to end for
full_iterations steps. Each phase has its own Adam state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gps_core.policies.policy_opt import PolicyUpdate, normalize_weights, precision_weighted_loss
from gps_core.policies.visuomotor import DTYPE, VisuomotorNetwork
from gps_core.policies.visuomotor_config import VisuomotorPolicyConfig

FEATURE_CHUNK = 256              # images per forward pass when no gradient is needed


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU raises."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError("policy.device is 'cuda' but torch sees no CUDA device")
    if device not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device(device)


@dataclass(frozen=True)
class VisuomotorUpdate(PolicyUpdate):
    loss_after_head: float = float('nan')     # after the head-only phase (features fixed)


def compute_features(network: VisuomotorNetwork, image: torch.Tensor, chunk: int = FEATURE_CHUNK) -> torch.Tensor:
    """Feature points [M, 2C] of images [M, H, W, 3] (on the network's device), without gradient."""
    with torch.no_grad():
        return torch.cat([network.features(image[a:a + chunk]) for a in range(0, image.shape[0], chunk)])


class VisuomotorPolicyOpt:
    """Owns the visuomotor network, its two Adam optimizers and the minibatch generator."""

    def __init__(self, config: VisuomotorPolicyConfig, image_shape: tuple[int, int], dS: int, dU: int,
                 generator: torch.Generator):
        self.config, self.generator = config, generator
        self.device = resolve_device(config.device)
        self.network = VisuomotorNetwork(image_shape, dS, dU, generator=generator,
                                         **config.network_kwargs()).to(self.device)
        kw = {'lr': config.learning_rate, 'weight_decay': config.weight_decay}
        self.head_optimizer = torch.optim.Adam(self.network.head_parameters(), **kw)
        self.optimizer = torch.optim.Adam(self.network.parameters(), **kw)
        self.normalization_fitted = False            # robot-state normalization
        self.image_normalization_fitted = False      # set by load_vision (pretrained weights)

    def load_vision(self, vision_state: dict[str, torch.Tensor]) -> None:
        """Start from pretrained vision layers (their image normalization included)."""
        self.network.vision.load_state_dict(vision_state)
        self.image_normalization_fitted = True

    # ------------------------------------------------------------ the policy step
    def update(self, image: np.ndarray, state: np.ndarray, tgt_mu: np.ndarray, tgt_prc: np.ndarray,
               tgt_wt: np.ndarray) -> VisuomotorUpdate:
        net, cfg = self.network, self.config
        image, state, tgt_mu, tgt_prc, tgt_wt = _validate(net, image, state, tgt_mu, tgt_prc, tgt_wt)
        if not self.normalization_fitted:             # once: the head's input scale stays fixed
            net.fit_normalization(state)
            self.normalization_fitted = True
        if not self.image_normalization_fitted:       # once, unless pretrained vision brought one
            net.vision.fit_image_normalization(image)
            self.image_normalization_fitted = True
        wt = normalize_weights(tgt_wt)
        mean_prc = np.einsum('m,mij->ij', wt, tgt_prc) / wt.sum()
        covar = np.linalg.inv(0.5 * (mean_prc + mean_prc.T))
        net.set_covar(covar)
        dev = self.device
        img = torch.from_numpy(image).to(dev)          # uint8 on the device: a quarter of float32
        st, mu, prc, w = (torch.from_numpy(np.ascontiguousarray(a)).to(dev, DTYPE)
                          for a in (state, tgt_mu, tgt_prc, wt))
        net.eval()
        feats = compute_features(net, img)
        before = self._loss(net.head(feats, st), mu, prc, w)
        net.train()
        for idx in self._batches(img.shape[0], cfg.head_iterations):
            self._step(self.head_optimizer, net.head(feats[idx], st[idx]), mu[idx], prc[idx], w[idx])
        net.eval()
        after_head = self._loss(net.head(feats, st), mu, prc, w)
        if cfg.full_iterations:
            net.train()
            for idx in self._batches(img.shape[0], cfg.full_iterations):
                self._step(self.optimizer, net(img[idx], st[idx]), mu[idx], prc[idx], w[idx])
            net.eval()
            after = self._loss(net.head(compute_features(net, img), st), mu, prc, w)
        else:
            after = after_head
        return VisuomotorUpdate(before, after, covar, after_head)

    def _batches(self, M: int, iterations: int):
        """Minibatch indices (on the device): epochs of a fresh permutation from the generator."""
        B = min(self.config.batch_size, M)
        order, pos = torch.randperm(M, generator=self.generator), 0
        for _ in range(iterations):
            if pos + B > M:
                order, pos = torch.randperm(M, generator=self.generator), 0
            yield order[pos:pos + B].to(self.device)
            pos += B

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, pred: torch.Tensor, mu: torch.Tensor, prc: torch.Tensor,
              w: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        precision_weighted_loss(pred, mu, prc, w).backward()
        optimizer.step()

    @staticmethod
    def _loss(pred: torch.Tensor, mu: torch.Tensor, prc: torch.Tensor, w: torch.Tensor) -> float:
        with torch.no_grad():
            return float(precision_weighted_loss(pred, mu, prc, w))

    # ------------------------------------------------------------ checkpoints (plain data)
    def state_dict(self) -> dict:
        """Everything `update` depends on, as PolicyOpt.state_dict lays it out: the architecture,
        network weights and buffers, both Adam states (torch tensors), whether the state and image
        normalizations are fitted, the train/eval mode and the minibatch generator's state [n]
        uint8 (numpy). Copies: later updates do not change it."""
        net = self.network
        return {'architecture': net.architecture(),
                'network': {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                'head_optimizer': _clone(self.head_optimizer.state_dict()),
                'optimizer': _clone(self.optimizer.state_dict()),
                'normalization_fitted': bool(self.normalization_fitted),
                'image_normalization_fitted': bool(self.image_normalization_fitted),
                'training': bool(net.training),
                'generator': self.generator.get_state().numpy().copy()}

    def load_state_dict(self, state: dict) -> None:
        """Refuses a state of another architecture, naming both."""
        arch = self.network.architecture()
        if state['architecture'] != arch:
            raise ValueError(f'training state: the network is {state["architecture"]}, this run builds {arch}')
        gen, current = state['generator'], self.generator.get_state()
        if not isinstance(gen, np.ndarray) or gen.dtype != np.uint8 or gen.shape != tuple(current.shape):
            raise ValueError(f'training state: the minibatch generator state must be uint8 {tuple(current.shape)}')
        self.network.load_state_dict(_clone(state['network']))
        # cloned: Adam keeps the loaded tensors as its state and updates them in place
        self.head_optimizer.load_state_dict(_clone(state['head_optimizer']))
        self.optimizer.load_state_dict(_clone(state['optimizer']))
        self.normalization_fitted = bool(state['normalization_fitted'])
        self.image_normalization_fitted = bool(state['image_normalization_fitted'])
        self.network.train(bool(state['training']))
        self.generator.set_state(torch.from_numpy(gen.copy()))


def _clone(tree):
    """Deep copy of a torch state_dict (nested dicts, lists, tuples; tensors cloned). The same
    helper as policy_opt's private _clone: one of them should become public."""
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree.detach().clone() if isinstance(tree, torch.Tensor) else tree


def _validate(net: VisuomotorNetwork, image, state, tgt_mu, tgt_prc, tgt_wt) -> tuple[np.ndarray, ...]:
    image = np.asarray(image)
    state, tgt_mu, tgt_prc, tgt_wt = (np.asarray(a, dtype=float) for a in (state, tgt_mu, tgt_prc, tgt_wt))
    M, (H, W), dS, dU = image.shape[0] if image.ndim else 0, net.image_shape, net.dS, net.dU
    if (image.shape != (M, H, W, 3) or state.shape != (M, dS) or tgt_mu.shape != (M, dU)
            or tgt_prc.shape != (M, dU, dU) or tgt_wt.shape != (M,) or M < 1):
        raise ValueError(f'visuomotor policy update expects image [M, {H}, {W}, 3], state [M, {dS}], '
                         f'tgt_mu [M, {dU}], tgt_prc [M, {dU}, {dU}], tgt_wt [M] with M >= 1; got '
                         f'{image.shape}, {state.shape}, {tgt_mu.shape}, {tgt_prc.shape}, {tgt_wt.shape}')
    if image.dtype != np.uint8:
        raise ValueError(f'images must be uint8 (as observations hold them), got {image.dtype}')
    if not all(np.all(np.isfinite(a)) for a in (state, tgt_mu, tgt_prc, tgt_wt)):
        raise ValueError('visuomotor policy update: non-finite states, targets, precisions or weights')
    if np.any(tgt_wt < 0) or not np.sum(tgt_wt) > 0:
        raise ValueError('visuomotor policy update: weights must be >= 0 with a positive sum')
    return np.ascontiguousarray(image), state, tgt_mu, tgt_prc, tgt_wt
