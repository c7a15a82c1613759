"""The spatial-softmax network against known answers: a bright pixel's coordinates, the flat
observation layout, the batch-1 inference path vs the training path, and the policy-as-data round
trip (spec.py) with its rejections."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gps_core.policies.spec import InvalidPolicy, PolicySpec, build_network, policy_spec
from gps_core.policies import visuomotor
from gps_core.policies.visuomotor import SpatialSoftmax, StepInference, VisuomotorNetwork


def small_net(H: int = 20, W: int = 24, dS: int = 4, dU: int = 3, seed: int = 0) -> VisuomotorNetwork:
    net = VisuomotorNetwork((H, W), dS, dU, conv_channels=(6, 5), conv_kernels=(5, 3), conv_strides=(2, 1),
                            fc_hidden=(7,), generator=torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    net.fit_normalization(rng.normal(2.0, 3.0, (50, dS)))              # non-trivial buffers travel too
    net.vision.fit_image_normalization(rng.integers(30, 200, (4, H, W, 3)))
    assert 30 < float(net.vision.image_mean[0]) < 200 and float(net.vision.image_scale[0]) > 10
    A = rng.standard_normal((dU, dU))
    net.set_covar(A @ A.T + np.eye(dU))
    return net


def random_inputs(net: VisuomotorNetwork, B: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    H, W = net.image_shape
    return (torch.from_numpy(rng.integers(0, 256, (B, H, W, 3), dtype=np.uint8)),
            torch.from_numpy(rng.normal(size=(B, net.dS))).float())


# ----------------------------------------------------------------- spatial softmax
def test_one_bright_pixel_gives_its_coordinates():
    """A 1x1 convolution summing the colours with a large gain: the softmax puts ~all mass on the
    bright pixel. x is the column, y the row, both mapped linearly to [-1, 1] (pixel centres)."""
    H, W, r, c = 9, 13, 2, 10
    net = VisuomotorNetwork((H, W), 0, 1, conv_channels=(1,), conv_kernels=(1,), conv_strides=(1,), fc_hidden=())
    with torch.no_grad():
        net.vision.convs[0].weight.fill_(20.0)
        net.vision.convs[0].bias.zero_()
    image = np.zeros((1, H, W, 3), dtype=np.uint8)
    image[0, r, c] = 255                                                # activation 60 there, 0 elsewhere
    feats = net.features(torch.from_numpy(image))[0].detach().numpy()
    np.testing.assert_allclose(feats, [-1 + 2 * c / (W - 1), -1 + 2 * r / (H - 1)], atol=1e-6)
    assert feats[0] == pytest.approx(2 / 3, abs=1e-6) and feats[1] == pytest.approx(-0.5, abs=1e-6)


def test_spatial_softmax_is_the_expectation_per_channel():
    """Channel 0: two equal peaks -> their midpoint; channel 1: flat -> the centre (0, 0)."""
    soft = SpatialSoftmax(5, 5)
    a = torch.zeros(1, 2, 5, 5)
    a[0, 0, 0, 0] = a[0, 0, 4, 2] = 50.0                               # (x, y) = (-1, -1) and (0, 1)
    out = soft(a)[0].detach().numpy()
    np.testing.assert_allclose(out, [-0.5, 0.0, 0.0, 0.0], atol=1e-6)


def test_temperature_sharpens():
    """softmax(a / alpha): a smaller temperature moves the expectation towards the peak."""
    soft = SpatialSoftmax(1, 3).requires_grad_(False)
    a = torch.tensor([[[[0.0, 0.0, 1.0]]]])                              # x = -1, 0, 1
    e = np.exp(1.0)
    assert float(soft(a)[0, 0]) == pytest.approx((e - 1) / (e + 2), rel=1e-6)
    with torch.no_grad():
        soft.temperature.fill_(0.5)
    e2 = np.exp(2.0)
    assert float(soft(a)[0, 0]) == pytest.approx((e2 - 1) / (e2 + 2), rel=1e-6)


# ----------------------------------------------------------------- layout and forward paths
def test_flat_observation_layout():
    """obs = [image row-major (row, column, channel) as 0..255 values, state]; forward_obs == forward."""
    net = small_net()
    image, state = random_inputs(net, 3)
    obs = net.pack_obs(image.numpy(), state.double().numpy())
    assert obs.shape == (3, net.dO) and net.dO == 20 * 24 * 3 + 4
    r, c, ch = 7, 11, 2
    assert obs[1, (r * 24 + c) * 3 + ch] == image[1, r, c, ch]
    np.testing.assert_array_equal(obs[:, -4:], state.double().numpy())
    img2, st2 = net.split_obs(obs)
    np.testing.assert_array_equal(img2, image.numpy())
    with torch.no_grad():
        ref = net(image, state)
        np.testing.assert_array_equal(net.forward_obs(torch.from_numpy(obs)).numpy(), ref.numpy())
    np.testing.assert_allclose(net.mean_np(obs, chunk=2), ref.double().numpy(), rtol=1e-5)   # batch sizes differ
    with pytest.raises(ValueError, match='20, 24, 3'):
        net(torch.zeros(1, 24, 20, 3, dtype=torch.uint8), state[:1])


def test_head_on_precomputed_features_equals_forward():
    net = small_net()
    image, state = random_inputs(net, 4)
    with torch.no_grad():
        assert torch.equal(net.head(net.features(image), state), net(image, state))


@pytest.mark.parametrize('activation, fc_activation, hidden', [('relu', 'relu', (7, 5)), ('tanh', 'tanh', (6,)),
                                                                ('relu', 'tanh', ())])
def test_step_inference_matches_the_network(activation, fc_activation, hidden):
    """The batch-1 path (normalizations and temperature folded into the weights, channels-last
    softmax, no concatenation) computes what the training path computes, to float32 rounding."""
    net = VisuomotorNetwork((32, 28), 5, 2, conv_channels=(6, 4), conv_kernels=(5, 3), conv_strides=(2, 1),
                            fc_hidden=hidden, activation=activation, fc_activation=fc_activation,
                            generator=torch.Generator().manual_seed(4))
    rng = np.random.default_rng(4)
    net.fit_normalization(rng.normal(1.0, 2.0, (20, 5)))
    net.vision.fit_image_normalization(rng.integers(30, 200, (3, 32, 28, 3)))
    with torch.no_grad():
        net.vision.softmax.temperature.fill_(0.7)
    run = StepInference(net)
    image, state = random_inputs(net, 5)
    with torch.no_grad():
        ref = net(image, state).double().numpy()
    for i in range(5):
        u = run(image[i].numpy(), state[i].double().numpy())
        assert u.shape == (2,) and u.dtype == np.float64
        np.testing.assert_allclose(u, ref[i], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='expected image'):
        run(image[0, :16].numpy(), state[0].numpy())


def test_bfloat16_step_inference_stays_close_to_the_network():
    """inference_precision 'bfloat16': convolutions but the last in bfloat16 (8-bit mantissa, so
    relative error ~2**-9 per rounding), the logits and the head in float32: the actions stay
    within 1 % of their spread over the inputs, and they are not the float32 ones (the reduced
    precision is really used)."""
    kw = dict(conv_channels=(8, 8, 6), conv_kernels=(5, 3, 3), conv_strides=(2, 1, 1), fc_hidden=(16,),
              generator=torch.Generator().manual_seed(6))
    exact = VisuomotorNetwork((40, 36), 5, 3, **kw)
    reduced = VisuomotorNetwork.from_architecture({**exact.architecture(), 'inference_precision': 'bfloat16'})
    rng = np.random.default_rng(6)
    exact.fit_normalization(rng.normal(0.0, 1.0, (20, 5)))
    exact.vision.fit_image_normalization(rng.integers(30, 200, (3, 40, 36, 3)))
    reduced.load_state_dict(exact.state_dict())
    image, state = random_inputs(exact, 8)
    with torch.no_grad():
        ref = exact(image, state).double().numpy()
    run32, run16 = StepInference(exact), StepInference(reduced)
    u32 = np.array([run32(image[i].numpy(), state[i].double().numpy()) for i in range(8)])
    u16 = np.array([run16(image[i].numpy(), state[i].double().numpy()) for i in range(8)])
    spread = ref.max(axis=0) - ref.min(axis=0)
    np.testing.assert_allclose(u32, ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(u16 - ref) <= 0.01 * spread), (np.abs(u16 - ref) / spread).max()
    assert np.abs(u16 - u32).max() > 1e-6


def test_inference_precision_travels_with_the_policy_and_defaults_to_float32():
    net = VisuomotorNetwork((32, 32), 2, 2, inference_precision='bfloat16')
    arch = net.architecture()
    assert arch['inference_precision'] == 'bfloat16'
    assert VisuomotorNetwork.from_architecture(arch).inference_precision == 'bfloat16'
    del arch['inference_precision']                   # a policy saved before the key existed
    assert VisuomotorNetwork.from_architecture(arch).inference_precision == 'float32'
    with pytest.raises(ValueError, match='inference_precision'):
        VisuomotorNetwork((32, 32), 2, 2, inference_precision='float16')
    from gps_core.policies import visuomotor_config
    assert visuomotor_config.INFERENCE_PRECISIONS == visuomotor.INFERENCE_PRECISIONS
    with pytest.raises(ValueError, match='policy.inference_precision'):
        visuomotor_config.VisuomotorPolicyConfig(inference_precision='int8')


def test_seeded_construction_is_reproducible():
    a = VisuomotorNetwork((32, 32), 2, 2, generator=torch.Generator().manual_seed(3))
    b = VisuomotorNetwork((32, 32), 2, 2, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ----------------------------------------------------------------- policy as data
def test_spec_round_trip_is_exact():
    """float32 -> float64 (transport) -> float32 is exact, so the rebuilt module computes the
    very same numbers."""
    net = small_net()
    spec = policy_spec(net)
    assert spec.kind == 'spatial_softmax' and spec.dO == net.dO and spec.dU == 3
    names, values = spec.flat()
    back = PolicySpec.from_flat(spec.architecture_json(), names, values)
    rebuilt = build_network(back, expected_dO=net.dO, expected_dU=3)
    assert isinstance(rebuilt, VisuomotorNetwork) and rebuilt.covar.dtype == torch.float32
    for k, v in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k
    image, state = random_inputs(net, 4)
    with torch.no_grad():
        assert torch.equal(rebuilt(image, state), net(image, state))
    assert 'grid' not in spec.parameters                                # derived, not transported


def test_spec_rejects_a_wrong_image_size():
    net = small_net(H=20, W=24, dS=4)
    spec = policy_spec(net)
    with pytest.raises(InvalidPolicy, match=r'dO=1444 does not match .* observation size 1156'):
        build_network(spec, expected_dO=16 * 24 * 3 + 4)                # the robot's camera is 16x24
    arch = dict(spec.architecture, image_shape=[16, 24, 3])             # dO left at the 20x24 value
    with pytest.raises(InvalidPolicy, match='dO=1444 does not match'):
        build_network(PolicySpec(arch, spec.parameters))
    with pytest.raises(InvalidPolicy, match=r'image_shape must be \[H, W, 3\]'):
        build_network(PolicySpec(dict(spec.architecture, image_shape=[20, 24]), spec.parameters))


def test_spec_rejects_nan_weights_and_unknown_keys():
    net = small_net()
    spec = policy_spec(net)
    params = dict(spec.parameters)
    bad = params['vision.convs.1.weight'].copy()
    bad[0, 0, 0, 0] = np.nan
    params['vision.convs.1.weight'] = bad
    with pytest.raises(InvalidPolicy, match=r"'vision.convs.1.weight' has 1 non-finite"):
        build_network(PolicySpec(spec.architecture, params))
    with pytest.raises(InvalidPolicy, match='unknown spatial_softmax architecture key'):
        build_network(PolicySpec(dict(spec.architecture, pooling='max'), spec.parameters))
    arch = dict(spec.architecture)
    del arch['fc_hidden']
    with pytest.raises(InvalidPolicy, match='fc_hidden'):
        PolicySpec.from_flat(json.dumps(arch), *spec.flat())


def test_sizes_that_leave_no_pixels_are_rejected():
    with pytest.raises(ValueError, match='convolution 2'):
        VisuomotorNetwork((16, 16), 2, 2, conv_channels=(4, 4, 4), conv_kernels=(5, 5, 5), conv_strides=(2, 1, 1))
    with pytest.raises(ValueError, match='one entry per convolution'):
        VisuomotorNetwork((16, 16), 2, 2, conv_channels=(4, 4), conv_kernels=(5,), conv_strides=(1, 1))
