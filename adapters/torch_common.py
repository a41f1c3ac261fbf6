"""What the PyTorch adapters share: tensors in the case's dtype, layouts, the
torch defaults, and gradients by autograd.

Gradients: when a step expects ``dx``/``dgamma``/``dbeta``, x (in the case's
layout) and the weights are leaves that require grad, and
``torch.autograd.grad(y, [x, weight, bias], grad_outputs=dy)`` gives
dL/d... for ``L = sum(dy * y)``; ``dy`` is in the case's dtype and layout.
Nothing requires grad otherwise (the forward is then exactly the user's).
"""

from __future__ import annotations

import math

import numpy as np

from conformance.adapter import Adapter, Array
from conformance.errors import Unsupported

TORCH_DEFAULT_EPS = 1e-5
TORCH_DEFAULT_MOMENTUM = 0.1
GRADIENTS = ("dx", "dgamma", "dbeta")


def torch_module():
    import torch

    return torch


def dtype_of(case):
    return getattr(torch_module(), case.dtype)


def out(t):
    """A torch tensor → what the harness takes, keeping the tensor's dtype."""
    torch = torch_module()
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return Array(t.double().numpy(), "bfloat16")
    return t.numpy().copy()


def wants_gradients(step) -> bool:
    return any(name in step.expected for name in GRADIENTS)


class Layout:
    """Case layout ↔ torch ``(N, C, *)`` layout (batch norm: kept axes → dim 1)."""

    def __init__(self, case):
        self.kept = tuple(case.feature_axes)
        self.reduced = tuple(case.reduction_axes)
        self.ndim = case.ndim
        if self.reduced:
            self.perm = (self.reduced[0],) + self.kept + self.reduced[1:]
        else:
            self.perm = self.kept
        self.inverse = tuple(int(i) for i in np.argsort(self.perm))
        self.channels = int(math.prod(case.feature_shape))

    def describe(self) -> str:
        text = f"kept axes {list(self.kept)} -> torch channel dim 1"
        if len(self.kept) != 1:
            text += f" (flattened, C={self.channels})"
        if self.perm != tuple(range(self.ndim)):
            text += f"; permute{self.perm}"
        if not self.reduced:
            text += "; no reduced axis: a size-1 batch dim is prepended"
        return text

    def to_torch(self, x, flatten_spatial: bool = False):
        x = x.permute(*self.perm)
        shape = tuple(x.shape)
        if self.reduced:
            n, rest = shape[0], shape[1 + len(self.kept):]
        else:
            n, rest = 1, ()
        if flatten_spatial and len(rest) > 1:
            rest = (int(math.prod(rest)),)
        self.permuted_shape = shape
        return x.reshape((n, self.channels) + tuple(rest))

    def from_torch(self, y):
        return y.reshape(self.permuted_shape).permute(*self.inverse)


class TrailingLayout:
    """Case layout ↔ the normalized axes last (torch ``normalized_shape`` = trailing dims)."""

    def __init__(self, case):
        self.reduced = tuple(case.reduction_axes)
        self.perm = tuple(a for a in range(case.ndim) if a not in self.reduced) + self.reduced
        self.inverse = tuple(int(i) for i in np.argsort(self.perm))
        shape = case.steps[0].inputs["x"].shape
        self.normalized_shape = [int(shape[a]) for a in self.reduced]

    def describe(self) -> str:
        text = f"normalized axes {list(self.reduced)} -> normalized_shape={self.normalized_shape} (trailing dims)"
        if self.perm != tuple(range(len(self.perm))):
            text += f"; permute{self.perm} and back"
        return text

    def to_torch(self, x):
        return x.permute(*self.perm)

    def from_torch(self, y):
        return y.permute(*self.inverse)


class ChannelLayout:
    """Case layout ↔ ``(N, C, *)``: the one channel axis moved to dim 1 (group and instance norm)."""

    def __init__(self, case):
        self.channel = case.feature_axes[0]

    def describe(self) -> str:
        if self.channel == 1:
            return "channel axis 1 is torch's (N, C, *) already"
        return f"channel axis {self.channel} -> torch dim 1 (movedim({self.channel}, 1) and back)"

    def to_torch(self, x):
        return x.movedim(self.channel, 1)

    def from_torch(self, y):
        return y.movedim(1, self.channel)


class TorchBase(Adapter):
    framework = "torch"

    # -- tensors ---------------------------------------------------------------------
    def tensor(self, case, values, grad: bool = False):
        """Values (float64, already rounded) as a tensor of the case's dtype; a leaf when ``grad``."""
        torch = torch_module()
        t = torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float64).to(dtype_of(case))
        return t.requires_grad_() if grad else t

    def flat(self, case, values, grad: bool = False):
        """A parameter or statistic flattened to torch's ``(C,)``."""
        return self.tensor(case, np.asarray(values, dtype=np.float64).reshape(-1), grad)

    # -- attributes ------------------------------------------------------------------
    def epsilon_kwargs(self, case, torch_default: str = f"{TORCH_DEFAULT_EPS:g}") -> dict:
        if case.is_default("epsilon"):
            self.note(f"epsilon left to torch's default {torch_default} (the case assumes {case.attr('epsilon'):g})")
            return {}
        return {"eps": float(case.attr("epsilon"))}

    def momentum_kwargs(self, case, api: str, cumulative_ok: bool) -> dict:
        """Torch's momentum weighs the NEW statistic: ``1 - m``; ``cumulative`` is ``momentum=None``."""
        if case.is_default("momentum"):
            self.note(f"momentum left to torch's default {TORCH_DEFAULT_MOMENTUM:g} "
                      f"(the case assumes momentum {case.attr('momentum')} on the old statistic)")
            return {}
        m = case.attr("momentum")
        if m == "cumulative":
            if not cumulative_ok:
                raise Unsupported(f"{api} has no cumulative moving average: its momentum is a float "
                                  f"(momentum=None is an nn.BatchNorm module feature: the module passes "
                                  f"1/num_batches_tracked itself)")
            self.note("momentum cumulative -> momentum=None (torch's cumulative moving average)")
            return {"momentum": None}
        self.note(f"momentum {float(m):g} -> torch momentum {1.0 - float(m):g} (weight of the new statistic)")
        return {"momentum": 1.0 - float(m)}

    def no_trainable_flag(self, case, api: str) -> None:
        if not case.attr("trainable", True):
            raise Unsupported(f"{api} has no trainable=False layer: requires_grad_(False) freezes gamma and "
                              f"beta only, a module in train() still normalizes with and updates the batch "
                              f"statistics (running it in eval() instead would change the case's mode)")

    # -- gradients -------------------------------------------------------------------
    def gradients(self, case, step, y, x, weight=None, bias=None, weight_shape=None) -> dict:
        """dx, dgamma, dbeta of ``L = sum(dy * y)`` (those the step expects) by torch.autograd.grad.

        ``y`` and ``x`` are in the case's layout; ``weight``/``bias`` are the leaves
        gamma/beta went into, reshaped to ``case.param_shape`` on the way out.
        """
        if not wants_gradients(step):
            return {}
        torch = torch_module()
        names, leaves = [], []
        for name, leaf in (("dx", x), ("dgamma", weight), ("dbeta", bias)):
            if name in step.expected and leaf is not None:
                names.append(name)
                leaves.append(leaf)
        self.note("gradients: torch.autograd.grad(y, [" + ", ".join(
            {"dx": "x", "dgamma": "weight", "dbeta": "bias"}[n] for n in names) + "], grad_outputs=dy)")
        dy = self.tensor(case, step.inputs["dy"])
        grads = torch.autograd.grad(y, leaves, grad_outputs=dy)
        result = {}
        for name, g in zip(names, grads):
            if name != "dx":
                g = g.reshape(case.param_shape)
            result[name] = out(g)
        return result
