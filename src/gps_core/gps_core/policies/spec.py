"""A neural-network policy as plain data: what travels from the trainer to the arm.

The trainer and the arm may be on different hosts, so a policy is never a file path both must
share and never code (no pickles; TorchScript is deprecated in torch 2.13). It is

    architecture   a JSON-able dict: 'kind' (a key of NETWORK_KINDS) plus what that kind's
                   `from_architecture` needs (sizes, activation, ...)
    parameters     the module's state_dict as float64 numpy arrays (weights AND buffers: the
                   observation normalization and Sigma_pi travel with the weights), in order

`build_network` is the one way back to a module: it builds the network from the project's own
module definition, then checks every parameter name, shape and value before loading it, so a
malformed policy fails here with a message naming what was wrong.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np


class InvalidPolicy(ValueError):
    """A policy description that cannot be built or run; the message says why."""


@dataclass(frozen=True)
class PolicySpec:
    """architecture: JSON-able dict with 'kind'; parameters: name -> float64 array, in
    state_dict order (the arrays are read-only copies)."""

    architecture: Mapping[str, Any]
    parameters: Mapping[str, np.ndarray] = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, Mapping) or 'kind' not in self.architecture:
            raise InvalidPolicy(f"architecture must be a mapping with a 'kind', got {self.architecture!r}")
        params = {}
        for name, value in self.parameters.items():
            arr = np.array(value, dtype=np.float64, copy=True)
            arr.setflags(write=False)
            params[str(name)] = arr
        object.__setattr__(self, 'parameters', params)
        object.__setattr__(self, 'architecture', json.loads(json.dumps(dict(self.architecture))))

    @property
    def kind(self) -> str:
        return str(self.architecture['kind'])

    @property
    def dO(self) -> int:
        """Observation size the network takes."""
        return int(self.architecture['dO'])

    @property
    def dU(self) -> int:
        return int(self.architecture['dU'])

    # ------------------------------------------------------------ flat form
    def architecture_json(self) -> str:
        return json.dumps(self.architecture, sort_keys=True)

    def flat(self) -> tuple[list[str], np.ndarray]:
        """(names, values): every array flattened row-major and concatenated in name order (what
        a message carries; shapes are implied by the architecture)."""
        names = list(self.parameters)
        values = [self.parameters[n].ravel() for n in names]
        return names, (np.concatenate(values) if values else np.empty(0))

    @staticmethod
    def from_flat(architecture_json: str, names: list[str], values: np.ndarray) -> PolicySpec:
        """Inverse of (architecture_json(), flat()); the shapes come from the architecture.

        Raises InvalidPolicy naming what does not fit (unparsable JSON, unknown kind, a missing,
        unexpected or repeated name, a total size that does not match).
        """
        try:
            architecture = json.loads(architecture_json)
        except (TypeError, ValueError) as exc:
            raise InvalidPolicy(f'policy architecture is not valid JSON: {exc}') from exc
        if not isinstance(architecture, dict):
            raise InvalidPolicy(f'policy architecture must be a JSON object, got {architecture_json!r}')
        shapes = parameter_shapes(architecture)
        names = list(names)
        _check_names(names, list(shapes))
        values = np.asarray(values, dtype=np.float64).ravel()
        expected = sum(math.prod(shapes[n]) for n in names)
        if values.size != expected:
            raise InvalidPolicy(f'policy parameters have {values.size} values; the architecture '
                                f'{architecture_json} needs {expected}')
        params, pos = {}, 0
        for n in names:
            size = math.prod(shapes[n])
            params[n] = values[pos:pos + size].reshape(shapes[n])
            pos += size
        return PolicySpec(architecture, params)


# ----------------------------------------------------------------- kinds
def _kinds() -> dict[str, Callable[[dict], Any]]:
    """kind -> module factory from an architecture dict (imports torch on first use)."""
    from gps_core.policies.nn_policy import PolicyNetwork
    kinds: dict[str, Callable[[dict], Any]] = {'mlp': PolicyNetwork.from_architecture}
    try:
        from gps_core.policies.visuomotor import VisuomotorNetwork
    except ImportError:
        pass
    else:
        kinds[VisuomotorNetwork.KIND] = VisuomotorNetwork.from_architecture
    return kinds


def network_kinds() -> list[str]:
    return sorted(_kinds())


def _instantiate(architecture: Mapping[str, Any]):
    kind = architecture.get('kind') if isinstance(architecture, Mapping) else None
    factories = _kinds()
    if kind not in factories:
        raise InvalidPolicy(f'unknown policy architecture kind {kind!r}; known: {sorted(factories)}')
    try:
        return factories[kind](dict(architecture))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidPolicy(f'cannot build a {kind!r} network from {dict(architecture)}: '
                            f'{type(exc).__name__}: {exc}') from exc


def parameter_shapes(architecture: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """name -> shape of every state_dict entry of the network the architecture describes."""
    module = _instantiate(architecture)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def policy_spec(network) -> PolicySpec:
    """The spec of a network (any module with `architecture()` and a state_dict)."""
    state = network.state_dict()
    return PolicySpec(network.architecture(), {k: v.detach().cpu().double().numpy() for k, v in state.items()})


def build_network(spec: PolicySpec, expected_dO: int | None = None, expected_dU: int | None = None):
    """The torch module of a spec, in eval mode, float64.

    Checks, in order: the kind is known and its architecture builds; the observation and action
    sizes are the robot's (expected_dO / expected_dU when given); the parameter names are exactly
    the module's; every shape matches; every value is finite. Raises InvalidPolicy.
    """
    import torch

    module = _instantiate(spec.architecture)
    if expected_dO is not None and int(module.dO) != int(expected_dO):
        raise InvalidPolicy(f'policy observation size dO={module.dO} does not match the robot\'s '
                            f'observation size {expected_dO}')
    if expected_dU is not None and int(module.dU) != int(expected_dU):
        raise InvalidPolicy(f'policy action size dU={module.dU} does not match the robot\'s du={expected_dU}')
    own = module.state_dict()
    _check_names(list(spec.parameters), list(own))
    for name, target in own.items():
        value = spec.parameters[name]
        if tuple(value.shape) != tuple(target.shape):
            raise InvalidPolicy(f'policy parameter {name!r} has shape {list(value.shape)}, the '
                                f'architecture needs {list(target.shape)}')
        bad = ~np.isfinite(value)
        if bad.any():
            raise InvalidPolicy(f'policy parameter {name!r} has {int(bad.sum())} non-finite values')
    module.load_state_dict({n: torch.from_numpy(np.array(spec.parameters[n])).to(own[n].dtype) for n in own})
    return module.eval()


def _check_names(got: list[str], expected: list[str]) -> None:
    if len(set(got)) != len(got):
        repeated = sorted({n for n in got if got.count(n) > 1})
        raise InvalidPolicy(f'policy parameter names repeated: {repeated}')
    missing = [n for n in expected if n not in got]
    unexpected = [n for n in got if n not in expected]
    if missing or unexpected:
        raise InvalidPolicy(f'policy parameters do not match the architecture: missing {missing}, '
                            f'unexpected {unexpected}')
