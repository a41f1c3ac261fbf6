"""Instance normalization (Ulyanov et al. 2016), with PyTorch's optional running statistics.

Axis 0 is the batch axis; ``feature_axes`` names the one channel axis. Each
sample and channel is normalized over the other (spatial) axes. ``affine``
switches gamma and beta (per channel) on. With ``track_running_stats``:

* training: instance statistics normalize; the moving statistics are updated
  with their average over the batch: ``moving <- momentum * moving + (1 -
  momentum) * mean_n(stat[n, c])`` (momentum weighs the OLD value, as batch
  norm's; ``cumulative`` as there); biased variance, canonical;
* inference: the moving statistics normalize; nothing is updated.

Without it, both modes use instance statistics and there is no state.
"""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from .common import (CHANNEL_AXIS_SCHEMA, GRADIENT_OUTPUTS, OPTIONAL_INPUTS, affine_outputs, gradient_names,
                     gradient_reason, param, setting_schema, spread_condition)

NAME = "instance_norm"
INPUTS = ("x",)
OPTIONAL_INPUTS = OPTIONAL_INPUTS
PARAMS = {"gamma": 1.0, "beta": 0.0}
STATE = {"moving_mean": 0.0, "moving_variance": 1.0}
HAS_MODE = True
AXES = "channel"
PARAM_AXES = "feature_axes"
MOVING = ("moving_mean", "moving_variance")
OUTPUTS = {
    "y": "the normalized output",
    "moving_mean": "moving mean after the call (track_running_stats)",
    "moving_variance": "moving variance after the call (track_running_stats)",
    **GRADIENT_OUTPUTS,
}
STAT_OUTPUTS = MOVING

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **CHANNEL_AXIS_SCHEMA,
        "epsilon": setting_schema({"type": "number", "minimum": 0}),
        "affine": setting_schema({"type": "boolean"}),
        "track_running_stats": {"type": "boolean"},
        "momentum": setting_schema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                              {"const": "cumulative"}]}),
    },
}
DEFAULTS = {"epsilon": 1e-5, "affine": False, "track_running_stats": False, "momentum": 0.9}


def active_params(case) -> tuple[str, ...]:
    return ("gamma", "beta") if case.attr("affine") else ()


def default_outputs(mode: str | None, case=None, step=None) -> tuple[str, ...]:
    tracked = case is not None and case.attr("track_running_stats")
    grads = gradient_names(case, step) if case is not None and step is not None else ()
    return ("y",) + (MOVING if tracked else ()) + grads


def why_not(case, step_index: int, name: str) -> str | None:
    if name in MOVING and not case.attr("track_running_stats"):
        return "there are no moving statistics: track_running_stats is false"
    return gradient_reason(case, case.steps[step_index], name)


def check(case, doc) -> None:
    if not case.attr("affine"):
        for name in ("gamma", "beta"):
            if name in doc.data.get("params", {}):
                raise doc.error(("params", name), f"is given but affine is false ({name} would be ignored)")
    if not case.attr("track_running_stats") and doc.data.get("state"):
        raise doc.error(("state",), "is given but track_running_stats is false (there are no moving statistics)")


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    if name in ("y", "dx"):
        return tuple(x_shape)
    return case.param_shape if name in ("dgamma", "dbeta") else case.feature_shape


def output_dtype(name: str, case) -> str:
    """Moving statistics of float16/bfloat16 inputs are float32 (canonical, as batch norm)."""
    if name in MOVING and case.dtype in ("float16", "bfloat16"):
        return "float32"
    return case.dtype


def _channel_mean(values: np.ndarray, case) -> np.ndarray:
    """Per-(sample, channel) statistics → their batch average, channel-shaped broadcastable."""
    return values.mean(axis=0, keepdims=True)


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes: list[str] | None = None) -> list[dict]:
    eps, momentum = case.attr("epsilon"), case.attr("momentum")
    tracked = bool(case.attr("track_running_stats"))
    gamma = param(case, "gamma") if case.attr("affine") else 1.0
    beta = param(case, "beta") if case.attr("affine") else 0.0
    shape = case.broadcast_shape
    moving_mean = np.asarray(case.state["moving_mean"], dtype=np.float64).reshape(shape)
    moving_var = np.asarray(case.state["moving_variance"], dtype=np.float64).reshape(shape)
    axes = case.reduction_axes
    outputs, trained = [], 0
    for i, step in enumerate(case.steps):
        x = step.inputs["x"]
        mode = modes[i] if modes else step.mode.value
        if mode == "training" or not tracked:
            st = ref.standardize(x, axes, eps, conv)
            out = affine_outputs(case, step, st, gamma, beta, eps, conv)
            if mode == "training" and tracked:
                trained += 1
                _, var_move = ref.moments(x, axes, conv)
                if conv.moving_variance == "unbiased":
                    var_move = ref.unbias(var_move, st.n)
                moving_mean = ref.update(moving_mean, _channel_mean(st.mean, case), momentum, conv, trained)
                moving_var = ref.update(moving_var, _channel_mean(var_move, case), momentum, conv, trained)
        else:
            st = ref.standardize_with(x, moving_mean, moving_var, eps, conv)
            out = affine_outputs(case, step, st, gamma, beta, eps, conv)
        if tracked:
            out["moving_mean"] = moving_mean.reshape(case.feature_shape)
            out["moving_variance"] = moving_var.reshape(case.feature_shape)
        outputs.append(out)
    return outputs


def condition(case, step_index: int) -> float:
    step = case.steps[step_index]
    eps, shape = case.attr("epsilon"), case.broadcast_shape
    if step.mode.value == "training" or not case.attr("track_running_stats"):
        st = ref.standardize(step.inputs["x"], case.reduction_axes, eps)
    else:
        st = ref.standardize_with(step.inputs["x"], np.reshape(case.state["moving_mean"], shape),
                                  np.reshape(case.state["moving_variance"], shape), eps)
        st.axes = case.reduction_axes
    return spread_condition(case, step_index, st)
