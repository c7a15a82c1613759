"""u_t = mu_theta(o_t) + noise_t: the trained network run on the arm, from a policy spec.

Two kinds: the MLP on the GPS state (o = x: the end-effector points relative to the target are
how it knows the target), and the visuomotor spatial-softmax CNN (Levine et al. JMLR'16), whose
observation is the step's camera image plus the robot's own state (x with the end-effector
points in the base frame, x + state_offset: nothing in it names the target but the pixels). The
visuomotor network runs through its batch-1 fast path (StepInference: folded normalizations,
preallocated channels-last inputs).

The network is rebuilt from the project's own module definition and the weights in the spec
(gps_core.policies.spec.build_network: no pickles, no TorchScript), checked against the robot
(observation size dX, action size dU) and the horizon, and then run on preallocated buffers: for
the MLP policy every layer writes into its own tensor (addmv / in-place activations), so a step
allocates nothing; other architectures run their module under inference mode. The observation is
the GPS state x (see gps_core.algorithms.policy_base: the state holds the end-effector points
relative to the target, which is how the network knows it).

Shapes: x [dX] -> u [dU]; noise [T, dU] (smoothed exploration noise for on-policy sampling, drawn
by the trainer so seeded runs are reproducible) or None.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import nn

from gps_controllers.linear_gaussian_controller import InvalidController
from gps_core.policies.spec import InvalidPolicy, PolicySpec, build_network


class NetworkPolicyController:
    """A neural-network policy as a controller of horizon T (see the module docstring)."""

    def __init__(self, policy: PolicySpec, T: int, dX: int, dU: int,
                 noise: np.ndarray | None = None, state_offset: np.ndarray | None = None) -> None:
        """state_offset [dX]: a visuomotor policy's robot state is x + state_offset."""
        visuomotor = policy.kind == 'spatial_softmax'
        try:
            self._module = build_network(policy, expected_dO=None if visuomotor else dX, expected_dU=dU)
        except InvalidPolicy as exc:
            raise InvalidController(str(exc)) from exc
        self._step = None
        if visuomotor:
            from gps_core.policies.visuomotor import StepInference
            if self._module.dS != dX:
                raise InvalidController(f"policy robot-state size dS={self._module.dS} does not match the robot's "
                                        f"dX={dX}")
            self._step = StepInference(self._module)
            self._offset = np.zeros(dX) if state_offset is None else np.asarray(state_offset, dtype=np.float64)
            self._s = np.empty(dX)
        if noise is None or np.size(noise) == 0:
            self._noise = None
        else:
            noise = np.array(noise, dtype=np.float64, copy=True)
            if noise.shape != (T, dU):
                raise InvalidController(f"policy noise must be [T, du] = [{T}, {dU}], got {list(noise.shape)}")
            if not np.isfinite(noise).all():
                raise InvalidController(f"policy noise has {int((~np.isfinite(noise)).sum())} non-finite values")
            noise.setflags(write=False)
            self._noise = noise
        self._T, self._dX, self._dU = int(T), int(dX), int(dU)
        self._kind = policy.kind
        dtype = next(self._module.parameters()).dtype
        self._x = torch.zeros(dX, dtype=dtype)        # the observation, written each step
        self._x_np = self._x.numpy()
        if isinstance(getattr(self._module, 'net', None), nn.Sequential):
            self._plan, self._u = _mlp_plan(self._module, self._x)
        else:
            self._plan, self._u = None, torch.zeros(dU, dtype=dtype)
        self._u_np = self._u.numpy()

    @property
    def T(self) -> int:
        return self._T

    @property
    def dX(self) -> int:
        return self._dX

    @property
    def dU(self) -> int:
        return self._dU

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return tuple(self._step.image_shape) if self._step is not None else None

    def command(self, t: int, x: np.ndarray, out: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """u_t = mu_theta(o_t) + noise_t into out [dU] (float64)."""
        if not 0 <= t < self._T:
            raise IndexError(f"step t={t} outside the horizon [0, {self._T})")
        if self._step is not None:
            if image is None:
                raise ValueError("a visuomotor policy needs the step's image")
            np.add(x, self._offset, out=self._s)
            out[:] = self._step(image, self._s)
            if self._noise is not None:
                out += self._noise[t]
            return out
        self._x_np[:] = x
        if self._plan is not None:
            for op in self._plan:
                op()
        else:
            with torch.inference_mode():
                self._u.copy_(self._module(self._x.unsqueeze(0))[0])
        out[:] = self._u_np
        if self._noise is not None:
            out += self._noise[t]
        return out


def _mlp_plan(module: nn.Module, x: torch.Tensor) -> tuple[list[Callable[[], object]], torch.Tensor]:
    """The MLP's forward, (x - obs_mean) / obs_scale then its Linear / Tanh / ReLU layers, as
    calls writing into preallocated tensors; returns (calls, output tensor). Raises
    InvalidController for a layer it does not know."""
    h = torch.empty_like(x)
    plan: list[Callable[[], object]] = [partial(torch.sub, x, module.obs_mean.detach(), out=h),
                                        partial(h.div_, module.obs_scale.detach())]
    for layer in module.net:
        if isinstance(layer, nn.Linear):
            out = torch.empty(layer.out_features, dtype=x.dtype)
            plan.append(partial(torch.addmv, layer.bias.detach(), layer.weight.detach(), h, out=out))
            h = out
        elif isinstance(layer, nn.Tanh):
            plan.append(h.tanh_)
        elif isinstance(layer, nn.ReLU):
            plan.append(h.relu_)
        else:
            raise InvalidController(f"the MLP policy has a layer {type(layer).__name__} the controller cannot run")
    return plan, h
