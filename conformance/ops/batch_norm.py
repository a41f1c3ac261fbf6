"""Batch normalization.

Training: normalize with the batch's mean and biased variance, then update the
moving statistics. Inference: normalize with the moving statistics; nothing is
updated. ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``.

Framework knobs a user meets, as attributes (docs/operators.md):

* ``momentum: cumulative`` (PyTorch ``momentum=None``): the moving statistics
  are the plain average of every training batch so far in the case,
  ``moving <- (1 - 1/t) moving + (1/t) batch`` at the t-th training step.
* ``track_running_stats: false`` (PyTorch): no moving statistics at all; batch
  statistics in training AND inference; no state, no moving outputs.
* ``trainable: false`` (Keras): a frozen layer; a training step runs exactly as
  an inference step (moving statistics used, nothing updated).
"""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from .common import (AXES_SCHEMA, GRADIENT_OUTPUTS, OPTIONAL_INPUTS, affine_outputs, gradient_names,
                     gradient_reason, param, setting_schema, spread_condition)

NAME = "batch_norm"
INPUTS = ("x",)
OPTIONAL_INPUTS = OPTIONAL_INPUTS
PARAMS = {"gamma": 1.0, "beta": 0.0}
STATE = {"moving_mean": 0.0, "moving_variance": 1.0}
HAS_MODE = True
PARAM_AXES = "feature_axes"
OUTPUTS = {
    "y": "the normalized output",
    "moving_mean": "moving mean after the call",
    "moving_variance": "moving variance after the call",
    "batch_mean": "the batch mean (training)",
    "batch_variance": "the batch variance used to normalize (training)",
    **GRADIENT_OUTPUTS,
}
STAT_OUTPUTS = ("moving_mean", "moving_variance", "batch_mean", "batch_variance")
MOVING = ("moving_mean", "moving_variance")
BATCH = ("batch_mean", "batch_variance")

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **AXES_SCHEMA,
        "epsilon": setting_schema({"type": "number", "minimum": 0}),
        "momentum": setting_schema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                              {"const": "cumulative"}]}),
        "center": {"type": "boolean"},
        "scale": {"type": "boolean"},
        "track_running_stats": {"type": "boolean"},
        "trainable": {"type": "boolean"},
    },
}
DEFAULTS = {"epsilon": 1e-3, "momentum": 0.99, "center": True, "scale": True,
            "track_running_stats": True, "trainable": True}


def active_params(case) -> tuple[str, ...]:
    return tuple(n for n, on in (("gamma", case.attr("scale")), ("beta", case.attr("center"))) if on)


def _effective_mode(case, mode: str | None) -> str | None:
    """A frozen layer (trainable: false) runs a training step as inference."""
    return "inference" if mode == "training" and not case.attr("trainable", True) else mode


def _uses_batch_stats(case, mode: str | None) -> bool:
    return _effective_mode(case, mode) == "training" or not case.attr("track_running_stats", True)


def default_outputs(mode: str | None, case=None, step=None) -> tuple[str, ...]:
    tracked = case is None or case.attr("track_running_stats", True)
    grads = gradient_names(case, step) if case is not None and step is not None else ()
    return ("y",) + (MOVING if tracked else ()) + grads


def why_not(case, step_index: int, name: str) -> str | None:
    """Why ``name`` cannot be expected of this step (None: it can)."""
    step = case.steps[step_index]
    mode = step.mode.value
    if name in MOVING and not case.attr("track_running_stats", True):
        return "there are no moving statistics: track_running_stats is false"
    if name in BATCH and not _uses_batch_stats(case, mode):
        if mode == "training":
            return "there is no batch statistic: trainable is false, so training runs as inference"
        return "there is no batch statistic in inference mode"
    return gradient_reason(case, step, name)


def check(case, doc) -> None:
    """Rules on the built case that a schema cannot state."""
    if not case.attr("track_running_stats", True) and doc.data.get("state"):
        raise doc.error(("state",), "is given but track_running_stats is false (there are no moving statistics)")


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    if name in ("y", "dx"):
        return tuple(x_shape)
    if name in ("dgamma", "dbeta"):
        return case.param_shape
    return case.feature_shape


def output_dtype(name: str, case) -> str:
    """y keeps the input dtype; statistics of float16/bfloat16 inputs are float32 (canonical)."""
    if name in STAT_OUTPUTS and case.dtype in ("float16", "bfloat16"):
        return "float32"
    return case.dtype


def _stat(values: np.ndarray, case) -> np.ndarray:
    return values.reshape(case.feature_shape)


def _broadcast(values: np.ndarray, case) -> np.ndarray:
    """Feature-shaped statistics → shape broadcastable against x."""
    return np.asarray(values, dtype=np.float64).reshape(case.broadcast_shape)


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes: list[str] | None = None) -> list[dict]:
    """Float64 outputs of every step under ``conv`` (``modes`` overrides each step's mode)."""
    eps, momentum = case.attr("epsilon"), case.attr("momentum")
    tracked = case.attr("track_running_stats", True)
    gamma = param(case, "gamma") if case.attr("scale") else 1.0
    beta = param(case, "beta") if case.attr("center") else 0.0
    moving_mean = _broadcast(case.state["moving_mean"], case)
    moving_var = _broadcast(case.state["moving_variance"], case)
    axes = case.reduction_axes
    outputs, trained = [], 0
    for i, step in enumerate(case.steps):
        x = step.inputs["x"]
        mode = _effective_mode(case, modes[i] if modes else step.mode.value)
        if mode == "training" or not tracked:
            st = ref.standardize(x, axes, eps, conv)
            out = affine_outputs(case, step, st, gamma, beta, eps, conv)
            out["batch_mean"], out["batch_variance"] = _stat(st.mean, case), _stat(st.stat, case)
            var_move = st.stat
            if conv.moving_variance != conv.normalize_variance:
                _, var_move = ref.moments(x, axes, conv)
                if conv.moving_variance == "unbiased":
                    var_move = ref.unbias(var_move, st.n)
            if conv.reported_variance == "moving":
                out["batch_variance"] = _stat(var_move, case)
            if mode == "training" and tracked:
                trained += 1
                moving_mean = ref.update(moving_mean, st.mean, momentum, conv, trained)
                moving_var = ref.update(moving_var, var_move, momentum, conv, trained)
        else:
            st = ref.standardize_with(x, moving_mean, moving_var, eps, conv)
            out = affine_outputs(case, step, st, gamma, beta, eps, conv)
        if tracked:
            out["moving_mean"], out["moving_variance"] = _stat(moving_mean, case), _stat(moving_var, case)
        outputs.append(out)
    return outputs


def condition(case, step_index: int) -> float:
    """max |x| over the spread used to normalize, worst feature."""
    step = case.steps[step_index]
    x = step.inputs["x"]
    eps = case.attr("epsilon")
    if _uses_batch_stats(case, step.mode.value):
        st = ref.standardize(x, case.reduction_axes, eps)
    else:
        st = ref.standardize_with(x, _broadcast(case.state["moving_mean"], case),
                                  _broadcast(case.state["moving_variance"], case), eps)
        st.axes = case.reduction_axes
    return spread_condition(case, step_index, st)
