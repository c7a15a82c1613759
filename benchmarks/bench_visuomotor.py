"""Visuomotor policy speed: batch-1 inference for the controller loop, training-step costs,
rendering, and (with --pretrain) the experiment-scale pose pretraining.

Inference (batch 1, CPU, --threads torch threads), for the JMLR'16 network (conv 7x7/2 64,
5x5 32, 5x5 32, spatial softmax, FC 40-40; ~92k parameters) at 240x240 and 64x64 and for the
smaller simulation network (3 x 5x5 convs of 16, first stride 2) at 64x64:
  - baseline   eager PyTorch on an NCHW-contiguous float image (what a plain nn.Module does),
  - module     VisuomotorNetwork.forward on the uint8 [1, H, W, 3] image (channels-last view),
  - step       StepInference (normalization folded into conv 1, channels-last weights, in-place
               ReLU, preallocated inputs, inference mode),
  - step_bf16  StepInference of the same network with inference_precision 'bfloat16' (all
               convolutions but the last in bfloat16: fast where the CPU has AMX / AVX512-BF16);
               its error is reported separately (`bf16_max_abs_diff`, `bf16_rel_diff`: over 16
               images, against the spread of the float32 actions), not in `max_abs_diff_vs_module`,
  - nnpack     (240x240 only, reference) convs 2-3 through torch._nnpack_spatial_convolution
               (a private API: FFT/Winograd fast convolution); reported, not used by the module.
Variants are timed in interleaved rounds (median of rounds) so a loaded machine slows all alike;
`speedup_*` are baseline / variant. The floor for the 240x240 network is its 2.17 GFLOP per image
over the measured SGEMM rate (`sgemm_gflops`, 2048^3, same threads).

Training (the proposed 64x64 net, batch 64): feature points of 1000 images without gradient, one
FC-head Adam step on precomputed features, one whole-network Adam step. Rendering: TinyRenderer
images per second of the default scene with the UR5e at 64x64 and 240x240.

--pretrain: render --images training + --holdout images (block anywhere in the table area, arm
around its home pose), pretrain the vision layers (gps_core.policies.pose_pretrain) and report
render and training time and the held-out error against predicting the mean position.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_visuomotor.py [--threads 2] [--rounds 15]
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_visuomotor.py --pretrain [--size 64] [--images 1000]
The last line of stdout is JSON; human-readable lines go to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from gps_core.policies.visuomotor import StepInference, VisuomotorNetwork  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint', 'wrist_2_joint',
          'wrist_3_joint')
HOME = np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
PAPER = dict(conv_channels=(64, 32, 32), conv_kernels=(7, 5, 5), conv_strides=(2, 1, 1), fc_hidden=(40, 40))
SIM = dict(conv_channels=(16, 16, 16), conv_kernels=(5, 5, 5), conv_strides=(2, 1, 1), fc_hidden=(40, 40))
DS, DU = 30, 6


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_average() -> float:
    return os.getloadavg()[0]


def time_interleaved(fns: dict, rounds: int, calls: int) -> dict[str, float]:
    """Median over rounds of the mean ms per call; each round runs every variant once."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[k].append((time.perf_counter() - t0) / calls * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def make_net(size: int, arch: dict, seed: int = 0) -> VisuomotorNetwork:
    net = VisuomotorNetwork((size, size), DS, DU, generator=torch.Generator().manual_seed(seed), **arch).eval()
    rng = np.random.default_rng(seed)
    net.vision.fit_image_normalization(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
    return net


def baseline_forward(net: VisuomotorNetwork, image: np.ndarray, state: np.ndarray) -> torch.Tensor:
    """Eager PyTorch as a plain module would be written: NCHW-contiguous float input."""
    with torch.no_grad():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous().float()
        enc = net.vision
        x = (x - enc.image_mean[:, None, None]) / enc.image_scale[:, None, None]
        for conv in enc.convs:
            x = torch.relu(conv(x))
        return net.head(enc.softmax(x), torch.from_numpy(state)[None].float())


def nnpack_forward(net: VisuomotorNetwork):
    """Convolution 1 channels-last as in StepInference, convolutions 2.. through NNPACK (reference
    only: torch._nnpack_spatial_convolution is a private API), softmax and head as the module."""
    enc = net.vision
    w1 = enc.convs[0].weight.contiguous(memory_format=torch.channels_last)
    rest = [(c.weight.detach(), c.bias.detach(), list(c.stride)) for c in enc.convs[1:]]

    def run(image: np.ndarray, state: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            x = enc.image_tensor(torch.from_numpy(image)[None])
            x = F.conv2d(x, w1, enc.convs[0].bias, enc.convs[0].stride).relu_().contiguous()
            for w, b, stride in rest:
                x = torch._nnpack_spatial_convolution(x, w, b, [0, 0], stride).relu_()
            return net.head(enc.softmax(x), torch.from_numpy(state)[None].float())
    return run


def sgemm_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    return 2 * 2048 ** 3 * 5 / (time.perf_counter() - t0) / 1e9


def bench_inference(rounds: int) -> dict:
    out = {'sgemm_gflops': sgemm_gflops()}
    rng = np.random.default_rng(0)
    for name, size, arch in (('paper_240', 240, PAPER), ('paper_64', 64, PAPER), ('sim_64', 64, SIM)):
        net = make_net(size, arch)
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        state = rng.normal(size=DS)
        step = StepInference(net)
        bf16_net = VisuomotorNetwork.from_architecture({**net.architecture(), 'inference_precision': 'bfloat16'})
        bf16_net.load_state_dict(net.state_dict())
        step_bf16 = StepInference(bf16_net)
        img_t, st_t = torch.from_numpy(image)[None], torch.from_numpy(state)[None].float()

        def module(img_t=img_t, st_t=st_t, net=net):
            with torch.no_grad():
                return net(img_t, st_t)
        fns = {'baseline': lambda net=net, image=image, state=state: baseline_forward(net, image, state),
               'module': module, 'step': lambda step=step, image=image, state=state: step(image, state),
               'step_bf16': lambda step=step_bf16, image=image, state=state: step(image, state)}
        if size == 240 and torch._nnpack_available():
            fns['nnpack'] = lambda run=nnpack_forward(net), image=image, state=state: run(image, state)
        ref = module().double().numpy()[0]
        agree = {k: float(np.abs(np.asarray(fn()).reshape(-1) - ref).max()) for k, fn in fns.items()
                 if k != 'step_bf16'}
        images = rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8)
        with torch.no_grad():
            refs = net(torch.from_numpy(images), st_t.expand(16, -1)).double().numpy()
        bf16 = np.array([step_bf16(im, state) for im in images])
        spread = refs.max(axis=0) - refs.min(axis=0)
        calls = 3 if size == 240 else 20
        ms = time_interleaved(fns, rounds, calls)
        res = {f'{k}_ms': v for k, v in ms.items()}
        res.update({f'speedup_{k}': ms['baseline'] / v for k, v in ms.items() if k != 'baseline'})
        res['max_abs_diff_vs_module'] = max(agree.values())
        res['bf16_max_abs_diff'] = float(np.abs(bf16 - refs).max())
        res['bf16_rel_diff'] = float((np.abs(bf16 - refs) / spread).max())
        res['parameters'] = sum(p.numel() for p in net.parameters())
        res['gflop'] = 2 * _conv_macs(size, arch) / 1e9
        out[name] = res
        log(f'{name}: ' + '  '.join(f'{k} {v:.2f} ms' for k, v in ms.items())
            + f"  (x{res['speedup_step']:.2f} step vs baseline; {res['parameters']} params, "
              f"{res['gflop']:.3f} GFLOP, max |diff| {res['max_abs_diff_vs_module']:.1e}; bf16 "
              f"{res['bf16_max_abs_diff']:.1e} = {100 * res['bf16_rel_diff']:.2f} % of the actions' spread)")
    floor = out['paper_240']['gflop'] / out['sgemm_gflops'] * 1e3
    out['paper_240']['floor_at_sgemm_rate_ms'] = floor
    log(f"SGEMM {out['sgemm_gflops']:.0f} GFLOP/s -> the 240x240 network needs >= {floor:.1f} ms by direct convolution")
    return out


def _conv_macs(size: int, arch: dict) -> int:
    macs, c_in, h = 0, 3, size
    for c, k, s in zip(arch['conv_channels'], arch['conv_kernels'], arch['conv_strides']):
        h = (h - k) // s + 1
        macs += h * h * c * c_in * k * k
        c_in = c
    return macs


def bench_training(rounds: int) -> dict:
    from gps_core.policies.policy_opt import precision_weighted_loss
    from gps_core.policies.visuomotor_opt import compute_features

    rng = np.random.default_rng(0)
    net = make_net(64, SIM)
    M, B = 1000, 64
    images = torch.from_numpy(rng.integers(0, 256, (M, 64, 64, 3), dtype=np.uint8))
    state = torch.from_numpy(rng.normal(size=(M, DS))).float()
    mu, prc, w = torch.zeros(B, DU), torch.eye(DU).repeat(B, 1, 1), torch.ones(B)
    head_opt = torch.optim.Adam(net.head_parameters(), lr=1e-3)
    full_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    feats = compute_features(net, images)

    def features():
        compute_features(net, images)

    def head_step():
        idx = torch.randint(0, M, (B,))
        head_opt.zero_grad()
        precision_weighted_loss(net.head(feats[idx], state[idx]), mu, prc, w).backward()
        head_opt.step()

    def full_step():
        idx = torch.randint(0, M, (B,))
        full_opt.zero_grad()
        precision_weighted_loss(net(images[idx], state[idx]), mu, prc, w).backward()
        full_opt.step()
    ms = time_interleaved({'features_1000_images': features, 'head_step': head_step, 'full_step': full_step},
                          max(3, rounds // 3), 5)
    log('training (64x64 sim net, batch 64): ' + '  '.join(f'{k} {v:.2f} ms' for k, v in ms.items()))
    return {f'{k}_ms': v for k, v in ms.items()}


def scene(size: int, distractor: bool = False):
    from gps_agent_ros.pybullet_arm import PyBulletArm
    from gps_agent_ros.scene import Camera, Scene
    from gps_core.scene_config import BlockConfig, CameraConfig, SceneConfig

    arm = PyBulletArm(str(REPO / 'urdf' / 'ur5e.urdf'), JOINTS)
    cfg = SceneConfig(camera=CameraConfig(width=size, height=size),
                      distractor=BlockConfig(rgba=(0.1, 0.7, 0.2, 1.0)) if distractor else None)
    return arm, Scene(arm.client_id, cfg), Camera(arm.client_id, cfg.camera)


def bench_render() -> dict:
    out = {}
    for size in (64, 240):
        arm, sc, cam = scene(size)
        rng = np.random.default_rng(0)
        n = 200 if size == 64 else 60
        t0 = time.perf_counter()
        for _ in range(n):
            arm.reset(HOME + rng.uniform(-0.3, 0.3, 6))
            sc.set_block_xy((rng.uniform(0.35, 0.7), rng.uniform(-0.08, 0.32)))
            cam.render()
        out[f'images_per_s_{size}'] = n / (time.perf_counter() - t0)
        arm.close()
    log(f"render: {out['images_per_s_64']:.0f} images/s at 64x64, {out['images_per_s_240']:.0f} at 240x240")
    return out


def pose_data(arm, sc, cam, n: int, rng: np.random.Generator, distractor: bool):
    from gps_agent_ros.scene import render_block_images
    xy = np.stack([rng.uniform(0.35, 0.70, n), rng.uniform(-0.08, 0.32, n)], axis=1)
    dxy = None
    if distractor:                 # anywhere on the area, at least 8 cm from the block
        dxy = np.stack([rng.uniform(0.35, 0.70, n), rng.uniform(-0.08, 0.32, n)], axis=1)
        close = np.linalg.norm(dxy - xy, axis=1) < 0.08
        while close.any():
            dxy[close] = np.stack([rng.uniform(0.35, 0.70, close.sum()), rng.uniform(-0.08, 0.32, close.sum())], 1)
            close = np.linalg.norm(dxy - xy, axis=1) < 0.08
    q = HOME + rng.uniform(-0.3, 0.3, (n, 6))
    return render_block_images(sc, cam, xy, dxy, arm=arm, joint_positions=q)


def bench_pretrain(args) -> dict:
    from gps_core.policies.pose_pretrain import pose_errors, pretrain_vision
    from gps_core.policies.visuomotor_config import PosePretrainConfig

    arch = dict(SIM, conv_channels=tuple(args.channels))
    arm, sc, cam = scene(args.size, args.distractor)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    images, positions = pose_data(arm, sc, cam, args.images + args.holdout, rng, args.distractor)
    render_s = time.perf_counter() - t0
    arm.close()
    net = VisuomotorNetwork((args.size, args.size), DS, DU, generator=torch.Generator().manual_seed(args.seed), **arch)
    config = PosePretrainConfig(num_images=args.images + args.holdout, holdout=args.holdout,
                                iterations=args.iterations, batch_size=args.batch_size, learning_rate=args.lr)
    n = args.images
    t0 = time.perf_counter()
    result = pretrain_vision(net, images[:n], positions[:n], config, torch.Generator().manual_seed(args.seed), 'cpu')
    train_s = time.perf_counter() - t0
    err = pose_errors(result.regressor, images[n:], positions[n:])
    base = np.linalg.norm(positions[n:] - positions[:n].mean(axis=0), axis=1)
    out = {'size': args.size, 'images': n, 'holdout': args.holdout, 'iterations': args.iterations,
           'channels': list(args.channels), 'distractor': args.distractor,
           'vision_parameters': sum(p.numel() for p in net.vision.parameters()),
           'render_s': render_s, 'train_s': train_s, 'holdout_mean_error_cm': 100 * float(err.mean()),
           'holdout_median_error_cm': 100 * float(np.median(err)), 'holdout_p90_error_cm': 100 * float(np.quantile(err, 0.9)),
           'mean_baseline_cm': 100 * float(base.mean()), 'improvement_over_mean': float(base.mean() / err.mean()),
           'final_loss': float(np.mean(result.losses[-20:]))}
    log(f"pretrain {args.size}x{args.size}, {n} images (+{args.holdout} held out), {args.iterations} steps: "
        f"render {render_s:.1f} s, train {train_s:.1f} s; held-out error mean {out['holdout_mean_error_cm']:.2f} cm, "
        f"median {out['holdout_median_error_cm']:.2f}, p90 {out['holdout_p90_error_cm']:.2f}; "
        f"predict-the-mean {out['mean_baseline_cm']:.2f} cm (x{out['improvement_over_mean']:.1f})")
    return out


def bf16_units() -> list[str]:
    """The CPU's native bfloat16 features (Linux /proc/cpuinfo flags), e.g. ['amx_bf16', 'avx512_bf16']."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return []
    return sorted(f for f in flags if f in ('amx_bf16', 'avx512_bf16'))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    ap.add_argument('--rounds', type=int, default=15)
    ap.add_argument('--pretrain', action='store_true', help='run the pose-pretraining experiment instead')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--images', type=int, default=1000)
    ap.add_argument('--holdout', type=int, default=200)
    ap.add_argument('--iterations', type=int, default=1000)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--channels', type=int, nargs=3, default=list(SIM['conv_channels']))
    ap.add_argument('--distractor', action='store_true')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {'threads': args.threads, 'load_average_start': load_average(), 'cpu_bf16_units': bf16_units()}
    log(f"CPU bfloat16 units: {result['cpu_bf16_units'] or 'none (step_bf16 is emulated: slower)'}")
    if args.pretrain:
        result['pretrain'] = bench_pretrain(args)
    else:
        result['inference'] = bench_inference(args.rounds)
        result['training'] = bench_training(args.rounds)
        result['render'] = bench_render()
    result['load_average_end'] = load_average()
    log(f"load average {result['load_average_start']:.2f} -> {result['load_average_end']:.2f} (2 cores)")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
