"""What ``flax.linen`` and ``flax.nnx`` share: how a case becomes constructor arguments.

Both APIs have BatchNorm, LayerNorm, RMSNorm, GroupNorm and InstanceNorm with
the same arguments and defaults (flax 0.12.8 source): epsilon 1e-5 for
BatchNorm and 1e-6 for the others; ``use_fast_variance=True`` (one-pass
``E[x²] − E[x]²`` in at least float32, clipped at 0) everywhere, left as a
user leaves it; GroupNorm wants channels LAST; InstanceNorm has no running
statistics; BatchNorm's momentum is a float (no cumulative average), it has no
``track_running_stats`` and no ``trainable`` flag (freezing is done in the
optimizer). Parameters are created in the case's dtype (``param_dtype``) and
the computation/output dtype is the case's (``dtype``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from conformance.errors import Unsupported

from .jax_common import FLAX_PARAM, JaxBase, enable_x64, jnp_dtype

#: Flax's default epsilon per op (linen and nnx, flax 0.12.8)
DEFAULT_EPSILON = {"batch_norm": 1e-5, "layer_norm": 1e-6, "rms_norm": 1e-6, "group_norm": 1e-6,
                   "instance_norm": 1e-6}
#: op -> Flax class name (the same in linen and nnx)
MODULE = {"batch_norm": "BatchNorm", "layer_norm": "LayerNorm", "rms_norm": "RMSNorm",
          "group_norm": "GroupNorm", "instance_norm": "InstanceNorm"}


@dataclass
class Layout:
    """How a stateless op's case maps onto a Flax module.

    ``kwargs``: constructor arguments (nnx additionally needs ``num_features``);
    ``params``: case parameter names the module owns; ``to_flax`` / ``from_flax``:
    x into the module's layout and y (or dx) back.
    """

    cls: str
    kwargs: dict
    params: tuple[str, ...]
    num_features: int
    to_flax: Callable = lambda a: a
    from_flax: Callable = lambda a: a


class FlaxBase(JaxBase):
    framework = "flax"

    def load(self) -> None:
        enable_x64()
        import flax  # noqa: F401

    # -- shared arguments -----------------------------------------------------------------
    def _common(self, case) -> dict:
        dtype = jnp_dtype(case)
        kwargs = {"dtype": dtype, "param_dtype": dtype}
        self.note(f"dtype={case.dtype} (computation/output) and param_dtype={case.dtype} (gamma/beta)")
        if case.is_default("epsilon"):
            self.note(f"epsilon left to Flax's default ({DEFAULT_EPSILON[case.op]:g})")
        else:
            kwargs["epsilon"] = float(case.attr("epsilon"))
        if case.op != "rms_norm":
            self.note("use_fast_variance left at Flax's default (True: one-pass E[x^2] - E[x]^2, clipped at 0)")
        return kwargs

    def _batch_norm_kwargs(self, case) -> dict:
        api = f"flax.{self.name.split('.')[-1]}.BatchNorm"
        if case.attr("momentum") == "cumulative":
            raise Unsupported(f"{api} has no cumulative moving average (momentum is a float; "
                              "PyTorch's momentum=None has no counterpart)")
        if not case.attr("track_running_stats", True):
            raise Unsupported(f"{api} always keeps running statistics (no track_running_stats switch; "
                              "use_running_average=False in inference would be a different call)")
        if not case.attr("trainable", True):
            raise Unsupported(f"{api} has no trainable flag (freezing is done in the optimizer, "
                              "and a training call still uses and updates batch statistics)")
        kwargs = self._common(case)
        kwargs.update(use_bias=bool(case.attr("center")), use_scale=bool(case.attr("scale")))
        if case.is_default("momentum"):
            self.note("momentum left to Flax's default (0.99)")
        else:
            kwargs["momentum"] = float(case.attr("momentum"))
            self.note(f"momentum {case.attr('momentum')} -> Flax momentum {case.attr('momentum')} "
                      "(same convention: weight of the old statistic)")
        return kwargs

    def run_moments(self, case):
        raise Unsupported(f"{self.name} has no moments (Flax's _compute_stats is private; "
                          "the jax.numpy row computes moments)")

    @staticmethod
    def _mode_kwargs(step) -> dict:
        """Call-time flag: none when the case leaves the mode to the framework."""
        if step.mode.framework_default:
            return {}
        return {"use_running_average": step.mode.value != "training"}

    # -- layer, RMS, group and instance norm ------------------------------------------------
    def _layout(self, case) -> Layout:
        import jax.numpy as jnp

        op = case.op
        kwargs = self._common(case)
        size = int(np.prod(case.param_shape)) if case.param_shape else 1
        if op in ("layer_norm", "rms_norm"):
            if op == "layer_norm" and case.attr("rms_scaling"):
                raise Unsupported(f"flax.{self.name.split('.')[-1]}.LayerNorm has no rms_scaling "
                                  "(Flax's RMS normalization is the separate RMSNorm: the rms_norm op)")
            kwargs.update(reduction_axes=tuple(case.reduction_axes), feature_axes=tuple(case.param_axes),
                          use_scale=bool(case.attr("scale")))
            if op == "layer_norm":
                kwargs["use_bias"] = bool(case.attr("center"))
            self.note(f"reduction_axes={kwargs['reduction_axes']}, feature_axes={kwargs['feature_axes']} "
                      "(Flax's feature_axes are the axes gamma/beta span)")
            return Layout(MODULE[op], kwargs, _active(case), size)
        channel = case.feature_axes[0]
        if op == "group_norm":
            groups = case.attr("groups")
            kwargs.update(num_groups=groups, use_bias=bool(case.attr("center")), use_scale=bool(case.attr("scale")))
            last = case.ndim - 1
            if channel != last:
                self.note(f"channel axis {channel} moved last (Flax's GroupNorm wants channels last) and back")
            self.note(f"num_groups={groups} (Flax splits the last axis into consecutive groups)")
            return Layout(MODULE[op], kwargs, _active(case), size,
                          to_flax=lambda a: jnp.moveaxis(a, channel, -1),
                          from_flax=lambda a: jnp.moveaxis(a, -1, channel))
        # instance_norm
        if case.attr("track_running_stats"):
            raise Unsupported(f"flax.{self.name.split('.')[-1]}.InstanceNorm has no running statistics "
                              "(no track_running_stats)")
        kwargs["feature_axes"] = channel
        if case.is_default("affine"):
            self.note("affine left to Flax's default (use_scale=use_bias=True, initialized to 1 and 0)")
        else:
            affine = bool(case.attr("affine"))
            kwargs.update(use_scale=affine, use_bias=affine)
            self.note(f"affine {affine} -> use_scale=use_bias={affine}")
        self.note(f"feature_axes={channel} (InstanceNorm reduces every axis but 0 and the channel)")
        return Layout(MODULE[op], kwargs, _active(case), size)


def _active(case) -> tuple[str, ...]:
    """Case parameters the Flax module gets (and differentiates) under the case's attributes."""
    return tuple(n for n in ("gamma", "beta") if case.has_param(n))


def flax_name(case_name: str) -> str:
    return FLAX_PARAM[case_name]
