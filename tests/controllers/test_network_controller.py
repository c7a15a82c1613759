"""The network policy as data (gps_core.policies.spec) and as the controller the arm runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_controllers.network_controller import NetworkPolicyController
from gps_controllers.trial_spec import NetworkSpec, build_controller
from gps_core.policies.nn_policy import PolicyNetwork
from gps_core.policies.spec import InvalidPolicy, PolicySpec, build_network, policy_spec

DX, DU, T = 12, 3, 20


def network(hidden=(16, 8), activation='tanh', seed=0) -> PolicyNetwork:
    net = PolicyNetwork(DX, DU, hidden, activation, torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    net.fit_normalization(rng.normal(2.0, 3.0, size=(50, DX)))
    net.set_covar(np.diag([0.5, 1.0, 2.0]))
    return net


def transported(net: PolicyNetwork) -> PolicySpec:
    """The spec as it crosses a message: JSON architecture, names, one flat float64 array."""
    spec = policy_spec(net)
    names, values = spec.flat()
    return PolicySpec.from_flat(spec.architecture_json(), names, values.copy())


@pytest.mark.parametrize('hidden, activation', [((16, 8), 'tanh'), ((32,), 'relu'), ((), 'tanh')])
def test_controller_equals_the_module_it_was_built_from(hidden, activation):
    net = network(hidden, activation)
    ctrl = NetworkPolicyController(transported(net), T, DX, DU)
    X = np.random.default_rng(1).normal(2.0, 3.0, size=(T, DX))
    expected = net.mean_np(X)          # the batch forward of the trained module: the oracle
    out = np.empty(DU)
    for t in range(T):
        got = ctrl.command(t, X[t], out)
        assert got is out
        np.testing.assert_allclose(out, expected[t], rtol=1e-13, atol=1e-13)


def test_noise_is_added_per_step_and_checked():
    net = network()
    noise = np.random.default_rng(2).normal(size=(T, DU))
    ctrl = NetworkPolicyController(transported(net), T, DX, DU, noise)
    x = np.ones(DX)
    out = np.empty(DU)
    for t in (0, 7, T - 1):
        np.testing.assert_allclose(ctrl.command(t, x, out), net.mean_np(x) + noise[t], rtol=1e-13, atol=1e-13)
    with pytest.raises(IndexError):
        ctrl.command(T, x, out)
    with pytest.raises(InvalidController, match=r'noise must be \[T, du\] = \[20, 3\], got \[19, 3\]'):
        NetworkPolicyController(transported(net), T, DX, DU, noise[:-1])
    bad = noise.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InvalidController, match='1 non-finite'):
        NetworkPolicyController(transported(net), T, DX, DU, bad)


def test_spec_round_trip_is_exact_and_carries_normalization_and_covariance():
    net = network()
    spec = transported(net)
    assert spec.kind == 'mlp' and spec.dO == DX and spec.dU == DU
    rebuilt = build_network(spec)
    for name, value in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], value), name
    assert np.array_equal(rebuilt.covar_np(), net.covar_np())
    assert spec.parameters['obs_scale'].flags.writeable is False


@pytest.mark.parametrize('mutate, error', [
    (lambda a, n, v: (json.dumps({**json.loads(a), 'kind': 'cnn9'}), n, v), "unknown policy architecture kind 'cnn9'"),
    (lambda a, n, v: (a, n[1:], v), "missing ['obs_mean']"),
    (lambda a, n, v: (a, n + ['extra'], v), "unexpected ['extra']"),
    (lambda a, n, v: (a, n[:-1] + [n[0]], v), 'repeated'),
    (lambda a, n, v: (a, n, v[:-2]), 'needs'),
    (lambda a, n, v: ('{"kind": "mlp", "dO": 12, "dU": 3, "hidden": [16, 8], "activation": "tanh", "depth": 4}', n, v),
     "unexpected keys ['depth']"),
    (lambda a, n, v: ('{"kind": "mlp", "dO": -1, "dU": 3, "hidden": [16, 8], "activation": "tanh"}', n, v),
     'sizes must be integers'),
    (lambda a, n, v: ('{"kind": "mlp", "dO": 12, "dU": 3, "hidden": [16, 8], "activation": "gelu"}', n, v),
     'activation must be one of'),
    (lambda a, n, v: ('[1, 2]', n, v), 'must be a JSON object'),
])
def test_malformed_flat_specs_are_refused_with_the_reason(mutate, error):
    spec = policy_spec(network())
    names, values = spec.flat()
    arch, names, values = mutate(spec.architecture_json(), names, values)
    with pytest.raises(InvalidPolicy) as info:
        PolicySpec.from_flat(arch, names, values)
    assert error in str(info.value)


def test_controller_checks_the_robot_sizes_and_values():
    spec = transported(network())
    with pytest.raises(InvalidController, match="observation size dO=12 does not match the robot's observation size 13"):
        build_controller(NetworkSpec(spec), T, DX + 1, DU)
    with pytest.raises(InvalidController, match="action size dU=3 does not match the robot's du=4"):
        build_controller(NetworkSpec(spec), T, DX, DU + 1)
    params = dict(spec.parameters)
    bias = params['net.2.bias'].copy()
    bias[0] = np.inf
    params['net.2.bias'] = bias
    with pytest.raises(InvalidController, match="'net.2.bias' has 1 non-finite"):
        build_controller(NetworkSpec(PolicySpec(spec.architecture, params)), T, DX, DU)
    params = dict(spec.parameters)
    params['net.0.weight'] = params['net.0.weight'].T
    with pytest.raises(InvalidController, match=r"'net.0.weight' has shape \[12, 16\], the architecture needs \[16, 12\]"):
        build_controller(NetworkSpec(PolicySpec(spec.architecture, params)), T, DX, DU)
