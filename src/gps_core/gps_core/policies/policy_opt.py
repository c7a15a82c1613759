"""The supervised policy step: precision-weighted regression of mu_theta onto the controllers.

Shapes (M = all conditions' (sample, time step) pairs, flattened):
  obs [M, dO], tgt_mu [M, dU] controller mean actions at the sampled states,
  tgt_prc [M, dU, dU] controller precisions Sigma_p^-1, tgt_wt [M] per-pair weights.

Levine et al. JMLR'16, Sec. 4.2 / Montgomery & Levine NIPS'16, eq. (4): with a state-independent
Sigma_pi, minimizing sum_i w_i KL(pi_theta(.|o_i) || p_i(.|x_i)) splits into
  - the mean: (1/M) sum_i w_i (mu_theta(o_i) - mu_i)^T P_i (mu_theta(o_i) - mu_i), by Adam;
  - the covariance in closed form: Sigma_pi^-1 = sum_i w_i P_i / sum_i w_i.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gps_core.policies.nn_policy import DTYPE, PolicyNetwork
from gps_core.policies.policy_config import PolicyConfig


def precision_weighted_loss(pred: torch.Tensor, tgt_mu: torch.Tensor, tgt_prc: torch.Tensor,
                            tgt_wt: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_i w_i d_i^T P_i d_i with d_i = pred_i - tgt_mu_i. pred, tgt_mu [B, dU]; tgt_prc [B, dU, dU]; tgt_wt [B]."""
    d = pred - tgt_mu
    dP = torch.bmm(d.unsqueeze(1), tgt_prc).squeeze(1)             # bmm: ~2x faster than einsum here
    return (tgt_wt * (dP * d).sum(dim=1)).mean()


def normalize_weights(wt: np.ndarray) -> np.ndarray:
    """Robust weight normalization of the reference GPS policy optimizer: weights are capped at
    twice the median of the non-negligible ones, then divided by that median (so typical weights
    are ~1 and one heavy time step cannot dominate the regression)."""
    wt = np.asarray(wt, dtype=float) * (wt.size / max(float(np.sum(wt)), 1e-300))
    significant = wt[wt > 1e-2]
    median = float(np.median(significant)) if significant.size else 1.0
    return np.minimum(wt, 2.0 * median) / median


@dataclass(frozen=True)
class PolicyUpdate:
    loss_before: float            # weighted loss on all data before the Adam steps
    loss_after: float
    covar: np.ndarray             # Sigma_pi [dU, dU]


class PolicyOpt:
    """Owns the network and its Adam state; `update` runs config.iterations minibatch steps."""

    def __init__(self, config: PolicyConfig, dO: int, dU: int, generator: torch.Generator):
        self.config = config
        self.generator = generator
        self.network = PolicyNetwork(dO, dU, config.hidden, config.activation, generator)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        self.normalization_fitted = False

    def update(self, obs: np.ndarray, tgt_mu: np.ndarray, tgt_prc: np.ndarray, tgt_wt: np.ndarray) -> PolicyUpdate:
        net = self.network
        obs, tgt_mu, tgt_prc, tgt_wt = _validate(net.dO, net.dU, obs, tgt_mu, tgt_prc, tgt_wt)
        if not self.normalization_fitted:               # once: the network's input scale stays fixed
            net.fit_normalization(obs)
            self.normalization_fitted = True
        wt = normalize_weights(tgt_wt)
        mean_prc = np.einsum('m,mij->ij', wt, tgt_prc) / wt.sum()
        covar = np.linalg.inv(0.5 * (mean_prc + mean_prc.T))
        net.set_covar(covar)
        o, mu, prc, w = (torch.from_numpy(np.ascontiguousarray(a)).to(DTYPE) for a in (obs, tgt_mu, tgt_prc, wt))
        before = self._full_loss(o, mu, prc, w)
        M, B = o.shape[0], min(self.config.batch_size, o.shape[0])
        order, pos = torch.randperm(M, generator=self.generator), 0
        net.train()
        for _ in range(self.config.iterations):
            if pos + B > M:                             # a new epoch: fresh shuffle
                order, pos = torch.randperm(M, generator=self.generator), 0
            idx = order[pos:pos + B]
            pos += B
            self.optimizer.zero_grad(set_to_none=True)
            loss = precision_weighted_loss(net(o[idx]), mu[idx], prc[idx], w[idx])
            loss.backward()
            self.optimizer.step()
        net.eval()
        return PolicyUpdate(before, self._full_loss(o, mu, prc, w), covar)

    def _full_loss(self, o: torch.Tensor, mu: torch.Tensor, prc: torch.Tensor, w: torch.Tensor) -> float:
        with torch.no_grad():
            return float(precision_weighted_loss(self.network(o), mu, prc, w))


    # ------------------------------------------------------------ checkpoints (plain data)
    def state_dict(self) -> dict:
        """Network weights and buffers, Adam state (torch tensors, as torch's own state_dicts),
        whether the input normalization is fitted, the train/eval mode, and the minibatch
        generator's state [n] uint8. Copies: later updates do not change it."""
        net = self.network
        return {'architecture': net.architecture(),
                'network': {k: v.detach().clone() for k, v in net.state_dict().items()},
                'optimizer': _clone(self.optimizer.state_dict()),
                'normalization_fitted': bool(self.normalization_fitted),
                'training': bool(net.training),
                'generator': self.generator.get_state().numpy().copy()}

    def load_state_dict(self, state: dict) -> None:
        """Refuses a state of another architecture, naming both."""
        arch = self.network.architecture()
        if state['architecture'] != arch:
            raise ValueError(f'training state: the network is {state["architecture"]}, this run builds {arch}')
        gen = state['generator']
        current = self.generator.get_state()
        if not isinstance(gen, np.ndarray) or gen.dtype != np.uint8 or gen.shape != tuple(current.shape):
            raise ValueError(f'training state: the minibatch generator state must be uint8 {tuple(current.shape)}')
        self.network.load_state_dict(_clone(state['network']))
        # cloned: Adam keeps the loaded tensors as its state and updates them in place
        self.optimizer.load_state_dict(_clone(state['optimizer']))
        self.normalization_fitted = bool(state['normalization_fitted'])
        self.network.train(bool(state['training']))
        self.generator.set_state(torch.from_numpy(gen.copy()))


def _clone(tree: Any) -> Any:
    """Deep copy of a torch state_dict (nested dicts, lists, tuples; tensors cloned)."""
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree.detach().clone() if isinstance(tree, torch.Tensor) else tree


def _validate(dO: int, dU: int, obs: np.ndarray, tgt_mu: np.ndarray, tgt_prc: np.ndarray,
              tgt_wt: np.ndarray) -> tuple[np.ndarray, ...]:
    obs, tgt_mu, tgt_prc, tgt_wt = (np.asarray(a, dtype=float) for a in (obs, tgt_mu, tgt_prc, tgt_wt))
    M = obs.shape[0]
    if (obs.shape != (M, dO) or tgt_mu.shape != (M, dU) or tgt_prc.shape != (M, dU, dU)
            or tgt_wt.shape != (M,) or M < 1):
        raise ValueError(f'policy update expects obs [M, {dO}], tgt_mu [M, {dU}], tgt_prc [M, {dU}, {dU}], '
                         f'tgt_wt [M] with M >= 1; got {obs.shape}, {tgt_mu.shape}, {tgt_prc.shape}, {tgt_wt.shape}')
    if not all(np.all(np.isfinite(a)) for a in (obs, tgt_mu, tgt_prc, tgt_wt)):
        raise ValueError('policy update: non-finite observations, targets, precisions or weights')
    if np.any(tgt_wt < 0) or not np.sum(tgt_wt) > 0:
        raise ValueError('policy update: weights must be >= 0 with a positive sum')
    return obs, tgt_mu, tgt_prc, tgt_wt
