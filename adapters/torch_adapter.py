"""PyTorch: ``torch.nn.functional`` (``torch.functional``) and the ``torch.nn``
modules (``torch.nn``), called as a user would call them, in the case's dtype.

Operators: batch_norm (``F.batch_norm`` / ``BatchNorm{1,2,3}d``), layer_norm
(``F.layer_norm`` / ``LayerNorm``), rms_norm (``F.rms_norm`` / ``RMSNorm``),
group_norm (``F.group_norm`` / ``GroupNorm``), instance_norm
(``F.instance_norm`` / ``InstanceNorm{1,2,3}d``), moments (``torch.var_mean``,
functional only); gradients by autograd (``adapters/torch_common.py``).
Layer, RMS, group and instance norm live in ``adapters/torch_norms.py``.

Translation of batch norm (never compensation):

* Layout: torch wants ``(N, C, *)`` with the channels at dim 1. The case's kept
  (feature) axes are moved to dim 1, right after the first reduced axis, and
  flattened into one channel dim; the remaining reduced axes follow. ``y`` is
  unflattened and permuted back, and the running statistics (shape ``(C,)``)
  are reshaped to the case's feature shape (kept axes in sorted order, which
  is the flattening order). A case with no reduced axis gets a size-1 batch
  dim in front (torch then sees one value per channel).
* Momentum: the case's momentum is the weight of the OLD statistic; torch's is
  the weight of the NEW one, so torch momentum = ``1 - m``. A momentum left to
  the framework default is not passed (torch's 0.1 applies). ``cumulative`` is
  the modules' ``momentum=None``; ``F.batch_norm`` has no such value
  (Unsupported).
* ``track_running_stats: false``: the module's flag; for ``F.batch_norm``,
  ``running_mean=running_var=None`` with ``training=True`` (what the module
  passes when it has no running statistics). ``trainable: false``: torch has
  no frozen-layer notion (Unsupported).
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

from .torch_common import Layout, TorchBase, dtype_of, out, torch_module, wants_gradients
from .torch_norms import FunctionalNorms, ModuleNorms


class _TorchBase(TorchBase):
    def _common(self, case, api: str, cumulative_ok: bool):
        layout = Layout(case)
        self.note(layout.describe())
        self.note(f"input, weight, bias and running statistics in torch.{case.dtype}")
        self.no_trainable_flag(case, api)
        kwargs = self.epsilon_kwargs(case)
        tracked = bool(case.attr("track_running_stats", True))
        if tracked:
            kwargs.update(self.momentum_kwargs(case, api, cumulative_ok))
        else:
            self.note("track_running_stats false: no running statistics (momentum is not used)")
        return layout, kwargs, tracked

    @staticmethod
    def _moving(outputs: dict, case, running_mean, running_var) -> dict:
        if running_mean is not None:
            outputs["moving_mean"] = out(running_mean.clone().reshape(case.feature_shape))
            outputs["moving_variance"] = out(running_var.clone().reshape(case.feature_shape))
        return outputs


class TorchFunctionalAdapter(FunctionalNorms, _TorchBase):
    name = "torch.functional"
    api = ("torch.nn.functional.{batch_norm, layer_norm, rms_norm, group_norm, instance_norm}; "
           "torch.var_mean (moments)")

    def run_batch_norm(self, case):
        torch = torch_module()
        F = torch.nn.functional
        layout, kwargs, tracked = self._common(case, "torch.nn.functional.batch_norm", cumulative_ok=False)
        grad = any(wants_gradients(s) for s in case.steps)
        weight = self.flat(case, case.params["gamma"], grad) if case.attr("scale") else None
        bias = self.flat(case, case.params["beta"], grad) if case.attr("center") else None
        if not case.attr("scale"):
            self.note("scale=False -> weight=None")
        if not case.attr("center"):
            self.note("center=False -> bias=None")
        if tracked:
            running_mean = self.flat(case, case.state["moving_mean"])
            running_var = self.flat(case, case.state["moving_variance"])
        else:
            running_mean = running_var = None
            self.note("track_running_stats false -> running_mean=running_var=None and training=True "
                      "(batch statistics in every mode, as nn.BatchNorm(track_running_stats=False) calls it)")
        outputs = []
        for step in case.steps:
            x = self.tensor(case, step.inputs["x"], wants_gradients(step))
            call = dict(kwargs)
            if not tracked:
                call["training"] = True
            elif step.mode.framework_default:
                self.note("mode left to the framework: no training= argument (F.batch_norm defaults to "
                          "training=False)")
            else:
                call["training"] = step.mode.value == "training"
            y = layout.from_torch(F.batch_norm(layout.to_torch(x), running_mean, running_var, weight, bias, **call))
            result = self._moving({"y": out(y)}, case, running_mean, running_var)
            result.update(self.gradients(case, step, y, x, weight, bias))
            outputs.append(result)
        return outputs

    def run_moments(self, case):
        torch = torch_module()
        keep = bool(case.attr("keepdims"))
        dims = tuple(case.reduction_axes)
        self.note("torch.var_mean(x, dim=reduction_axes, correction=0, keepdim=keepdims): "
                  "correction=0 asks for the biased variance (torch's default correction is 1)")
        if not dims:
            self.note("no reduction axis: torch.var_mean reduces over ALL dims when dim=()")
        outputs = []
        for step in case.steps:
            x = self.tensor(case, step.inputs["x"])
            var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=keep)
            outputs.append({"mean": out(mean), "variance": out(var)})
        return outputs


class TorchNNAdapter(ModuleNorms, _TorchBase):
    name = "torch.nn"
    api = "torch.nn.{BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm}"

    def run_batch_norm(self, case):
        torch = torch_module()
        nn = torch.nn
        layout, kwargs, tracked = self._common(case, "torch.nn.BatchNorm", cumulative_ok=True)
        rank = 2 + max(len(case.reduction_axes) - 1, 0)
        flatten = rank > 5
        if flatten:
            self.note(f"{rank}-D after translation: the trailing reduced dims are flattened into one "
                      f"(BatchNorm1d on (N, C, L))")
            rank = 3
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]
        scale, center = bool(case.attr("scale")), bool(case.attr("center"))
        affine = scale or center
        if affine and not center:
            kwargs["bias"] = False
        if not tracked:
            kwargs["track_running_stats"] = False
        module = cls(layout.channels, affine=affine, **kwargs).to(dtype_of(case))
        self.note(f"nn.{cls.__name__}({layout.channels}, affine={affine}"
                  + "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in kwargs.items())
                  + f").to(torch.{case.dtype})")
        with torch.no_grad():
            if affine:
                module.weight.copy_(self.flat(case, case.params["gamma"]) if scale else torch.ones(layout.channels))
                if center:
                    module.bias.copy_(self.flat(case, case.params["beta"]))
                if not scale:
                    self.note("scale=False but center=True: affine=True with weight set to 1 (dgamma not asked)")
            if tracked:
                module.running_mean.copy_(self.flat(case, case.state["moving_mean"]))
                module.running_var.copy_(self.flat(case, case.state["moving_variance"]))
        outputs = []
        for step in case.steps:
            x = self.tensor(case, step.inputs["x"], wants_gradients(step))
            if step.mode.framework_default:
                self.note(f"mode left to the framework: module left as it is (constructed in training mode; "
                          f"training={module.training} at this call)")
            elif step.mode.value == "training":
                module.train()
            else:
                module.eval()
            y = layout.from_torch(module(layout.to_torch(x, flatten_spatial=flatten)))
            result = self._moving({"y": out(y)}, case, module.running_mean, module.running_var)
            result.update(self.gradients(case, step, y, x, module.weight, module.bias))
            outputs.append(result)
        return outputs
