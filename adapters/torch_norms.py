"""PyTorch layer, RMS, group and instance norm: ``F.layer_norm``, ``F.rms_norm``,
``F.group_norm``, ``F.instance_norm`` (:class:`FunctionalNorms`) and the
modules ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.GroupNorm``,
``nn.InstanceNorm{1,2,3}d`` (:class:`ModuleNorms`). Mixins of the adapters in
``adapters/torch_adapter.py``; helpers in ``adapters/torch_common.py``.

Translation (never compensation):

* layer_norm / rms_norm: torch normalizes the TRAILING ``normalized_shape``
  dims; x is permuted so the case's normalized axes come last (in order) and
  back. Weights have ``normalized_shape``: gamma/beta over fewer axes
  (``param_axes`` a proper subset of the normalized axes, Flax's
  ``feature_axes``) are passed to the functional form broadcast with
  ``expand`` (the gradient flows back to the small gamma); the modules'
  weights cannot be smaller (Unsupported), nor can either take gamma over a
  non-normalized axis. ``rms_scaling`` is not a LayerNorm option (Unsupported;
  torch's RMS norm is the rms_norm op).
* group_norm / instance_norm: the channel axis is moved to dim 1 (``(N, C, *)``)
  and back. A case without spatial axis gets a trailing size-1 dim
  (InstanceNorm1d reads a 2-D input as ONE unbatched ``(C, L)`` sample).
  InstanceNorm{1,2,3}d by rank; a rank above 5 has its spatial dims flattened
  into one (the statistics are over all of them anyway).
* ``center`` / ``scale``: the functional forms take ``weight=None`` /
  ``bias=None``; the modules take ``elementwise_affine``/``affine`` plus
  ``bias=`` (torch 2.13). Gamma off with beta on is not a module option: the
  weight is set to 1 (dgamma is then not asked).
* epsilon left to the framework is not passed: 1e-5, except ``RMSNorm`` /
  ``F.rms_norm``, whose ``eps=None`` is ``finfo(float32).eps`` for
  half/float32 inputs and ``finfo(float64).eps`` for float64.
* instance_norm: ``affine``, ``track_running_stats`` and ``momentum`` (``1 -
  m``; ``cumulative`` → ``momentum=None``) map one to one onto the module;
  ``F.instance_norm(running_mean, running_var, use_input_stats=training)``,
  and ``use_input_stats=True`` without running statistics (the module's
  ``self.training or not self.track_running_stats``).
"""

from __future__ import annotations

import math

from conformance.errors import Unsupported

from .torch_common import ChannelLayout, TrailingLayout, dtype_of, out, torch_module, wants_gradients

_FINFO_NOTE = ("torch's eps=None: finfo(float32).eps = 1.19e-07 for float16/bfloat16/float32 input, "
               "finfo(float64).eps = 2.2e-16 for float64")


def _any_gradients(case) -> bool:
    return any(wants_gradients(s) for s in case.steps)


def _no_rms_scaling(case, api: str) -> None:
    if case.attr("rms_scaling"):
        raise Unsupported(f"{api} has no rms_scaling option (torch's RMS normalization is a separate op, "
                          f"RMSNorm / F.rms_norm: the rms_norm cases)")


class _Shared:
    """Pieces both the functional and the module forms use (mixed into a TorchBase)."""

    def _trailing(self, case):
        layout = TrailingLayout(case)
        self.note(layout.describe())
        self.note(f"input and weights in torch.{case.dtype}")
        return layout

    def _channels(self, case):
        layout = ChannelLayout(case)
        self.note(layout.describe())
        self.note(f"input, weights (and running statistics) in torch.{case.dtype}")
        return layout

    def _rms_eps(self, case) -> dict:
        return self.epsilon_kwargs(case, torch_default=f"None ({_FINFO_NOTE})")

    def _spatial(self, case, x):
        """``(N, C, *)`` with at least one spatial dim (instance norm)."""
        if x.dim() == 2:
            self.note("no spatial axis: a trailing size-1 dim is appended ((N, C) -> (N, C, 1))")
            return x.unsqueeze(-1)
        return x

    def _instance_state(self, case):
        tracked = bool(case.attr("track_running_stats"))
        if tracked:
            return True, self.flat(case, case.state["moving_mean"]), self.flat(case, case.state["moving_variance"])
        return False, None, None

    def _run_steps(self, case, layout, forward, weight=None, bias=None, stats=None):
        """Each step: x (a leaf when gradients are asked) → ``forward(x_torch, step)`` → outputs."""
        outputs = []
        for step in case.steps:
            x = self.tensor(case, step.inputs["x"], wants_gradients(step))
            xt = layout.to_torch(x)
            y = layout.from_torch(forward(xt, step).reshape(xt.shape))
            result = {"y": out(y)}
            if stats is not None and stats() is not None:
                mean, var = stats()
                result["moving_mean"] = out(mean.clone().reshape(case.feature_shape))
                result["moving_variance"] = out(var.clone().reshape(case.feature_shape))
            result.update(self.gradients(case, step, y, x, weight, bias))
            outputs.append(result)
        return outputs


class FunctionalNorms(_Shared):
    """``torch.nn.functional`` forms."""

    def _trailing_weight(self, case, layout, name: str, grad: bool, api: str):
        """(the tensor passed as weight/bias, the leaf its gradient is taken on) or (None, None)."""
        if not case.has_param(name):
            self.note(f"{'scale' if name == 'gamma' else 'center'}=False -> "
                      f"{'weight' if name == 'gamma' else 'bias'}=None")
            return None, None
        reduced, params = layout.reduced, tuple(case.param_axes)
        if not set(params) <= set(reduced):
            raise Unsupported(f"{api}'s weight and bias span the normalized dims {list(reduced)} only; "
                              f"gamma/beta over axes {list(params)} (param_axes) cannot be passed")
        leaf = self.tensor(case, case.params[name], grad)
        if params == reduced:
            return leaf, leaf
        shape = [layout.normalized_shape[i] if a in params else 1 for i, a in enumerate(reduced)]
        self.note(f"param_axes {list(params)} within the normalized axes {list(reduced)}: "
                  f"{name} reshaped to {shape} and expanded to normalized_shape {layout.normalized_shape}")
        return leaf.reshape(shape).expand(layout.normalized_shape), leaf

    def run_layer_norm(self, case):
        F = torch_module().nn.functional
        _no_rms_scaling(case, "torch.nn.functional.layer_norm")
        layout = self._trailing(case)
        kwargs = self.epsilon_kwargs(case)
        grad = _any_gradients(case)
        weight, gamma = self._trailing_weight(case, layout, "gamma", grad, "F.layer_norm")
        bias, beta = self._trailing_weight(case, layout, "beta", grad, "F.layer_norm")
        return self._run_steps(
            case, layout, lambda x, step: F.layer_norm(x, layout.normalized_shape, weight, bias, **kwargs),
            gamma, beta)

    def run_rms_norm(self, case):
        F = torch_module().nn.functional
        layout = self._trailing(case)
        kwargs = self._rms_eps(case)
        weight, gamma = self._trailing_weight(case, layout, "gamma", _any_gradients(case), "F.rms_norm")
        return self._run_steps(
            case, layout, lambda x, step: F.rms_norm(x, layout.normalized_shape, weight, **kwargs), gamma)

    def _channel_weights(self, case, on_gamma: bool, on_beta: bool):
        grad = _any_gradients(case)
        weight = self.flat(case, case.params["gamma"], grad) if on_gamma else None
        bias = self.flat(case, case.params["beta"], grad) if on_beta else None
        return weight, bias

    def run_group_norm(self, case):
        F = torch_module().nn.functional
        layout = self._channels(case)
        kwargs = self.epsilon_kwargs(case)
        groups = int(case.attr("groups"))
        weight, bias = self._channel_weights(case, case.has_param("gamma"), case.has_param("beta"))
        self.note(f"F.group_norm(x, num_groups={groups}, weight={'gamma' if weight is not None else None}, "
                  f"bias={'beta' if bias is not None else None}"
                  + "".join(f", {k}={v:g}" for k, v in kwargs.items()) + ")")
        return self._run_steps(case, layout, lambda x, step: F.group_norm(x, groups, weight, bias, **kwargs),
                               weight, bias)

    def run_instance_norm(self, case):
        F = torch_module().nn.functional
        api = "torch.nn.functional.instance_norm"
        layout = self._channels(case)
        kwargs = self.epsilon_kwargs(case)
        tracked, running_mean, running_var = self._instance_state(case)
        if tracked:
            kwargs.update(self.momentum_kwargs(case, api, cumulative_ok=False))
        affine = bool(case.attr("affine"))
        if case.is_default("affine"):
            self.note(f"affine left to the framework: weight and bias not passed (F.instance_norm's default None; "
                      f"the case assumes affine={affine})")
        weight, bias = self._channel_weights(case, affine and not case.is_default("affine"),
                                             affine and not case.is_default("affine"))

        def forward(x, step):
            call = dict(kwargs)
            if not tracked:
                self.note("no running statistics: use_input_stats=True (instance statistics in every mode)")
                call["use_input_stats"] = True
            elif step.mode.framework_default:
                self.note("mode left to the framework: no use_input_stats= (F.instance_norm's default True)")
            else:
                call["use_input_stats"] = step.mode.value == "training"
            return F.instance_norm(self._spatial(case, x), running_mean, running_var, weight, bias, **call)

        stats = (lambda: (running_mean, running_var)) if tracked else None
        return self._run_steps(case, layout, forward, weight, bias, stats)


class ModuleNorms(_Shared):
    """``torch.nn`` module forms."""

    def _affine_kwargs(self, case, flag: str) -> dict:
        scale, center = case.has_param("gamma"), case.has_param("beta")
        kwargs = {flag: scale or center}
        if (scale or center) and not center:
            kwargs["bias"] = False
        return kwargs

    def _load_weights(self, module, case):
        torch = torch_module()
        with torch.no_grad():
            if getattr(module, "weight", None) is not None:
                if case.has_param("gamma"):
                    module.weight.copy_(self.tensor(case, case.params["gamma"]).reshape(module.weight.shape))
                else:
                    module.weight.fill_(1.0)
                    self.note("scale=False but center=True: the module's weight is set to 1 (dgamma not asked)")
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(self.tensor(case, case.params["beta"]).reshape(module.bias.shape))
        return module

    def _built(self, module, text: str, case):
        self.note(f"nn.{text}.to(torch.{case.dtype})")
        return self._load_weights(module.to(dtype_of(case)), case)

    @staticmethod
    def _args(kwargs: dict) -> str:
        return "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in kwargs.items())

    def _same_param_axes(self, case, api: str):
        if tuple(case.param_axes) != tuple(case.reduction_axes) and (case.has_param("gamma")
                                                                      or case.has_param("beta")):
            raise Unsupported(f"{api}'s weight and bias have normalized_shape (axes {list(case.reduction_axes)}); "
                              f"gamma/beta over axes {list(case.param_axes)} (param_axes) cannot be set")

    def run_layer_norm(self, case):
        nn = torch_module().nn
        _no_rms_scaling(case, "torch.nn.LayerNorm")
        self._same_param_axes(case, "torch.nn.LayerNorm")
        layout = self._trailing(case)
        kwargs = {**self.epsilon_kwargs(case), **self._affine_kwargs(case, "elementwise_affine")}
        module = self._built(nn.LayerNorm(layout.normalized_shape, **kwargs),
                             f"LayerNorm({layout.normalized_shape}{self._args(kwargs)})", case)
        return self._run_steps(case, layout, lambda x, step: module(x), module.weight, module.bias)

    def run_rms_norm(self, case):
        nn = torch_module().nn
        self._same_param_axes(case, "torch.nn.RMSNorm")
        layout = self._trailing(case)
        kwargs = {**self._rms_eps(case), "elementwise_affine": bool(case.has_param("gamma"))}
        module = self._built(nn.RMSNorm(layout.normalized_shape, **kwargs),
                             f"RMSNorm({layout.normalized_shape}{self._args(kwargs)})", case)
        return self._run_steps(case, layout, lambda x, step: module(x), module.weight)

    def run_group_norm(self, case):
        nn = torch_module().nn
        layout = self._channels(case)
        groups, channels = int(case.attr("groups")), int(case.feature_shape[0])
        kwargs = {**self.epsilon_kwargs(case), **self._affine_kwargs(case, "affine")}
        module = self._built(nn.GroupNorm(groups, channels, **kwargs),
                             f"GroupNorm({groups}, {channels}{self._args(kwargs)})", case)
        return self._run_steps(case, layout, lambda x, step: module(x), module.weight, module.bias)

    def run_instance_norm(self, case):
        nn = torch_module().nn
        layout = self._channels(case)
        channels = int(case.feature_shape[0])
        kwargs = self.epsilon_kwargs(case)
        tracked = bool(case.attr("track_running_stats"))
        if tracked:
            kwargs.update(self.momentum_kwargs(case, "torch.nn.InstanceNorm", cumulative_ok=True))
            kwargs["track_running_stats"] = True
        if case.is_default("affine"):
            self.note(f"affine left to the framework (InstanceNorm's default False; the case assumes "
                      f"{bool(case.attr('affine'))})")
        else:
            kwargs["affine"] = bool(case.attr("affine"))
        rank = max(case.ndim, 3)
        flatten = rank > 5
        if flatten:
            self.note(f"{rank}-D: the spatial dims are flattened into one (InstanceNorm1d on (N, C, L))")
            rank = 3
        cls = {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d}[rank]
        module = self._built(cls(channels, **kwargs), f"{cls.__name__}({channels}{self._args(kwargs)})", case)
        torch = torch_module()
        if tracked:
            with torch.no_grad():
                module.running_mean.copy_(self.flat(case, case.state["moving_mean"]))
                module.running_var.copy_(self.flat(case, case.state["moving_variance"]))

        def forward(x, step):
            if step.mode.framework_default:
                self.note(f"mode left to the framework: module left as it is (constructed in training mode; "
                          f"training={module.training} at this call)")
            elif step.mode.value == "training":
                module.train()
            else:
                module.eval()
            x = self._spatial(case, x)
            if flatten:
                x = x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
            return module(x)

        stats = (lambda: (module.running_mean, module.running_var)) if tracked else None
        return self._run_steps(case, layout, forward, module.weight, module.bias, stats)
