"""Batch normalization.

Training: normalize with the batch's mean and biased variance, then update the
moving statistics. Inference: normalize with the moving statistics; nothing is
updated. ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``.
"""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from .common import AXES_SCHEMA, setting_schema

NAME = "batch_norm"
INPUTS = ("x",)
PARAMS = {"gamma": 1.0, "beta": 0.0}
STATE = {"moving_mean": 0.0, "moving_variance": 1.0}
HAS_MODE = True
OUTPUTS = {
    "y": "the normalized output",
    "moving_mean": "moving mean after the call",
    "moving_variance": "moving variance after the call",
    "batch_mean": "the batch mean (training)",
    "batch_variance": "the batch variance used to normalize (training)",
}
STAT_OUTPUTS = ("moving_mean", "moving_variance", "batch_mean", "batch_variance")

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **AXES_SCHEMA,
        "epsilon": setting_schema({"type": "number", "minimum": 0}),
        "momentum": setting_schema({"type": "number", "minimum": 0, "maximum": 1}),
        "center": {"type": "boolean"},
        "scale": {"type": "boolean"},
    },
}
DEFAULTS = {"epsilon": 1e-3, "momentum": 0.99, "center": True, "scale": True}


def default_outputs(mode: str | None) -> tuple[str, ...]:
    return ("y", "moving_mean", "moving_variance")


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x_shape) if name == "y" else case.feature_shape


def output_dtype(name: str, case) -> str:
    """y keeps the input dtype; statistics of float16/bfloat16 inputs are float32 (canonical)."""
    if name != "y" and case.dtype in ("float16", "bfloat16"):
        return "float32"
    return case.dtype


def _stat(values: np.ndarray, case) -> np.ndarray:
    return values.reshape(case.feature_shape)


def _broadcast(values: np.ndarray, case) -> np.ndarray:
    """Feature-shaped parameters → shape broadcastable against x."""
    return np.asarray(values, dtype=np.float64).reshape(case.broadcast_shape)


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes: list[str] | None = None) -> list[dict]:
    """Float64 outputs of every step under ``conv`` (``modes`` overrides each step's mode)."""
    eps, momentum = case.attr("epsilon"), case.attr("momentum")
    gamma = _broadcast(case.params["gamma"], case) if case.attr("scale") else 1.0
    beta = _broadcast(case.params["beta"], case) if case.attr("center") else 0.0
    moving_mean = _broadcast(case.state["moving_mean"], case)
    moving_var = _broadcast(case.state["moving_variance"], case)
    axes = case.reduction_axes
    outputs = []
    for i, step in enumerate(case.steps):
        x = step.inputs["x"]
        mode = modes[i] if modes else step.mode.value
        out = {}
        if mode == "training":
            mean, var = ref.moments(x, axes, conv)
            n = ref.count(x, axes)
            var_norm = ref.unbias(var, n) if conv.normalize_variance == "unbiased" else var
            var_move = ref.unbias(var, n) if conv.moving_variance == "unbiased" else var
            out["y"] = ref.normalize(x, mean, var_norm, eps, gamma, beta, conv)
            moving_mean = ref.update(moving_mean, mean, momentum, conv)
            moving_var = ref.update(moving_var, var_move, momentum, conv)
            out["batch_mean"], out["batch_variance"] = _stat(mean, case), _stat(var_norm, case)
        else:
            out["y"] = ref.normalize(x, moving_mean, moving_var, eps, gamma, beta, conv)
        out["moving_mean"], out["moving_variance"] = _stat(moving_mean, case), _stat(moving_var, case)
        outputs.append(out)
    return outputs


def condition(case, step_index: int) -> float:
    """max |x| over the spread used to normalize, worst feature."""
    step = case.steps[step_index]
    x = step.inputs["x"]
    axes = case.reduction_axes
    if step.mode.value == "training":
        mean, var = ref.moments(x, axes)
    else:
        mean, var = _broadcast(case.state["moving_mean"], case), _broadcast(case.state["moving_variance"], case)
    spread = np.sqrt(np.maximum(var, 0.0) + case.attr("epsilon"))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.maximum(np.abs(x).max(axis=axes, keepdims=True), np.abs(mean)) / spread
    return float(np.nanmax(kappa)) if kappa.size else 1.0
