"""PyTorch: ``torch.nn.functional.batch_norm``, ``torch.nn.BatchNorm{1,2,3}d`` and
``torch.var_mean``, called as a user would call them, in the case's dtype.

Translation (never compensation):

* Layout: torch wants ``(N, C, *)`` with the channels at dim 1. The case's kept
  (feature) axes are moved to dim 1, right after the first reduced axis, and
  flattened into one channel dim; the remaining reduced axes follow. ``y`` is
  unflattened and permuted back, and the running statistics (shape ``(C,)``)
  are reshaped to the case's feature shape (kept axes in sorted order, which
  is the flattening order). A case with no reduced axis gets a size-1 batch
  dim in front (torch then sees one value per channel).
* Momentum: the case's momentum is the weight of the OLD statistic; torch's is
  the weight of the NEW one, so torch momentum = ``1 - m``. A momentum left to
  the framework default is not passed (torch's 0.1 applies).
* Epsilon left to the framework default is not passed (torch's 1e-5 applies).
* Mode: ``F.batch_norm(training=...)`` defaults to False (inference); a module
  is constructed in training mode. A step whose mode is the framework default
  passes no flag / calls neither ``train()`` nor ``eval()``.
* dtype: input, weight, bias and running statistics are all in the case's
  dtype (``module.to(dtype)``, as a user would write); torch 2.13 CPU accepts
  float16 and bfloat16 that way (it also accepts float32 statistics with a
  half input, but not float32 statistics with a float64 input). With float16
  statistics it rounds the batch mean and 1/std to float16 before normalizing,
  and the running statistics stay float16/bfloat16 (canonical: float32).

What is NOT fixed (the report must show it): torch updates ``running_var``
with the unbiased batch variance (``n / (n - 1)``), and raises in training when
there is a single value per channel.
"""

from __future__ import annotations

import math

import numpy as np

from conformance.adapter import Adapter, Array

_TORCH_DEFAULT_EPS = 1e-5
_TORCH_DEFAULT_MOMENTUM = 0.1


def _torch():
    import torch

    return torch


def _dtype(case):
    torch = _torch()
    return getattr(torch, case.dtype)


def _out(t):
    """A torch tensor → what the harness takes, keeping the tensor's dtype."""
    torch = _torch()
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return Array(t.double().numpy(), "bfloat16")
    return t.numpy().copy()


class _Layout:
    """Case layout ↔ torch ``(N, C, *)`` layout."""

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


class _TorchBase(Adapter):
    framework = "torch"

    def _common(self, case):
        torch = _torch()
        dtype = _dtype(case)
        layout = _Layout(case)
        self.note(layout.describe())
        self.note(f"input, weight, bias and running statistics in torch.{case.dtype}")
        kwargs = {}
        if case.is_default("epsilon"):
            self.note(f"epsilon left to torch's default {_TORCH_DEFAULT_EPS:g} "
                      f"(the case assumes {case.attr('epsilon'):g})")
        else:
            kwargs["eps"] = float(case.attr("epsilon"))
        if case.is_default("momentum"):
            self.note(f"momentum left to torch's default {_TORCH_DEFAULT_MOMENTUM:g} "
                      f"(the case assumes momentum {case.attr('momentum'):g} on the old statistic)")
        else:
            m = float(case.attr("momentum"))
            kwargs["momentum"] = 1.0 - m
            self.note(f"momentum {m:g} -> torch momentum {1.0 - m:g} (weight of the new statistic)")

        def feature(values):
            return torch.tensor(np.asarray(values, dtype=np.float64).reshape(-1), dtype=torch.float64).to(dtype)

        return torch, dtype, layout, kwargs, feature


class TorchFunctionalAdapter(_TorchBase):
    name = "torch.functional"
    api = "torch.nn.functional.batch_norm; torch.var_mean (moments)"

    def run_batch_norm(self, case):
        torch, dtype, layout, kwargs, feature = self._common(case)
        F = torch.nn.functional
        weight = feature(case.params["gamma"]) if case.attr("scale") else None
        bias = feature(case.params["beta"]) if case.attr("center") else None
        if not case.attr("scale"):
            self.note("scale=False -> weight=None")
        if not case.attr("center"):
            self.note("center=False -> bias=None")
        running_mean = feature(case.state["moving_mean"])
        running_var = feature(case.state["moving_variance"])
        outputs = []
        for step in case.steps:
            x = torch.tensor(step.inputs["x"], dtype=torch.float64).to(dtype)
            xt = layout.to_torch(x)
            call = dict(kwargs)
            if step.mode.framework_default:
                self.note("mode left to the framework: no training= argument (F.batch_norm defaults to "
                          "training=False)")
            else:
                call["training"] = step.mode.value == "training"
            yt = F.batch_norm(xt, running_mean, running_var, weight, bias, **call)
            outputs.append({
                "y": _out(layout.from_torch(yt)),
                "moving_mean": _out(running_mean.clone().reshape(case.feature_shape)),
                "moving_variance": _out(running_var.clone().reshape(case.feature_shape)),
            })
        return outputs

    def run_moments(self, case):
        torch = _torch()
        dtype = _dtype(case)
        keep = bool(case.attr("keepdims"))
        dims = tuple(case.reduction_axes)
        self.note("torch.var_mean(x, dim=reduction_axes, correction=0, keepdim=keepdims): "
                  "correction=0 asks for the biased variance (torch's default correction is 1)")
        if not dims:
            self.note("no reduction axis: torch.var_mean reduces over ALL dims when dim=()")
        outputs = []
        for step in case.steps:
            x = torch.tensor(step.inputs["x"], dtype=torch.float64).to(dtype)
            var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=keep)
            outputs.append({"mean": _out(mean), "variance": _out(var)})
        return outputs


class TorchNNAdapter(_TorchBase):
    name = "torch.nn"
    api = "torch.nn.BatchNorm{1,2,3}d"

    def run_batch_norm(self, case):
        torch, dtype, layout, kwargs, feature = self._common(case)
        nn = torch.nn
        rank = 2 + max(len(case.reduction_axes) - 1, 0)
        flatten = rank > 5
        if flatten:
            self.note(f"{rank}-D after translation: the trailing reduced dims are flattened into one "
                      f"(BatchNorm1d on (N, C, L))")
            rank = 3
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]
        scale, center = bool(case.attr("scale")), bool(case.attr("center"))
        affine = scale or center
        module = cls(layout.channels, affine=affine, **kwargs).to(dtype)
        self.note(f"nn.{cls.__name__}({layout.channels}, affine={affine}"
                  + "".join(f", {k}={v:g}" for k, v in kwargs.items()) + f").to(torch.{case.dtype})")
        with torch.no_grad():
            if affine:
                module.weight.copy_(feature(case.params["gamma"]) if scale else torch.ones(layout.channels))
                module.bias.copy_(feature(case.params["beta"]) if center else torch.zeros(layout.channels))
                if not scale:
                    self.note("scale=False but center=True: affine=True with weight set to 1 (requires_grad is irrelevant here)")
                if not center:
                    self.note("center=False but scale=True: affine=True with bias set to 0 (requires_grad is irrelevant here)")
            module.running_mean.copy_(feature(case.state["moving_mean"]))
            module.running_var.copy_(feature(case.state["moving_variance"]))
        outputs = []
        for step in case.steps:
            x = torch.tensor(step.inputs["x"], dtype=torch.float64).to(dtype)
            xt = layout.to_torch(x, flatten_spatial=flatten)
            if step.mode.framework_default:
                self.note(f"mode left to the framework: module left as it is (constructed in training mode; "
                          f"training={module.training} at this call)")
            elif step.mode.value == "training":
                module.train()
            else:
                module.eval()
            yt = module(xt)
            outputs.append({
                "y": _out(layout.from_torch(yt)),
                "moving_mean": _out(module.running_mean.clone().reshape(case.feature_shape)),
                "moving_variance": _out(module.running_var.clone().reshape(case.feature_shape)),
            })
        return outputs
