"""Saving the policy for the robot and for resuming, as plain data (no pickles).

For a stem S in a directory (e.g. checkpoints/policy_iteration_004):
  S.pt        TorchScript module: obs [B, dO] float64 -> mean action [B, dU], normalization inside;
              its `covar` buffer is Sigma_pi. Load with `torch.jit.load` (no Python class needed:
              the controller node runs it as is).
  S.state.pt  the state_dict (weights, obs_mean, obs_scale, covar), loaded with weights_only=True
  S.json      the architecture (dO, dU, hidden, activation) to rebuild the module for that state_dict
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from gps_core.policies.nn_policy import PolicyNetwork


def export_policy(network: PolicyNetwork, directory: str | Path, stem: str) -> dict[str, Path]:
    """Write S.state.pt and S.json (and, for the MLP, S.pt) atomically; returns their paths by kind.

    The TorchScript file is for users who want one (nothing in this project runs it; TorchScript
    is deprecated in torch 2.13): the visuomotor network is exported as plain data only."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {'state_dict': directory / f'{stem}.state.pt', 'architecture': directory / f'{stem}.json'}
    if isinstance(network, PolicyNetwork):
        paths['torchscript'] = directory / f'{stem}.pt'
        module = copy.deepcopy(network).eval()
        with warnings.catch_warnings():                  # torch >= 2.9 marks TorchScript deprecated
            warnings.filterwarnings('ignore', message='.*torch.jit.*deprecated', category=DeprecationWarning)
            warnings.filterwarnings('ignore', message='.*torch.jit.*deprecated', category=FutureWarning)
            scripted = torch.jit.script(module)
            _atomic(paths['torchscript'], lambda p: torch.jit.save(scripted, str(p)))
    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    _atomic(paths['state_dict'], lambda p: torch.save(state, p))
    _atomic(paths['architecture'], lambda p: p.write_text(json.dumps(network.architecture(), indent=2)))
    return paths


def load_policy(directory: str | Path, stem: str) -> PolicyNetwork:
    """Rebuild the network from S.json and S.state.pt (weights_only: a checkpoint cannot run code)."""
    directory = Path(directory)
    arch = json.loads((directory / f'{stem}.json').read_text())
    network = PolicyNetwork.from_architecture(arch)
    network.load_state_dict(torch.load(directory / f'{stem}.state.pt', weights_only=True))
    return network.eval()


def load_scripted_policy(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*torch.jit.*deprecated', category=DeprecationWarning)
        warnings.filterwarnings('ignore', message='.*torch.jit.*deprecated', category=FutureWarning)
        return torch.jit.load(str(path)).eval()


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + '.tmp')
    write(tmp)
    tmp.replace(path)
