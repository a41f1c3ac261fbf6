"""Moments: the mean and the (biased) variance over the reduction axes, as
``tf.nn.moments`` computes them. No parameters, no state, no mode."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from .common import AXES_SCHEMA

NAME = "moments"
INPUTS = ("x",)
PARAMS: dict = {}
STATE: dict = {}
HAS_MODE = False
OPTIONAL_INPUTS: tuple = ()
OUTPUTS = {"mean": "mean over the reduction axes", "variance": "biased variance over the reduction axes"}
STAT_OUTPUTS = ("mean", "variance")

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**AXES_SCHEMA, "keepdims": {"type": "boolean"}},
}
DEFAULTS = {"keepdims": False}


def active_params(case) -> tuple[str, ...]:
    return ()


def default_outputs(mode: str | None, case=None, step=None) -> tuple[str, ...]:
    return ("mean", "variance")


def why_not(case, step_index: int, name: str) -> str | None:
    return None


def output_dtype(name: str, case) -> str:
    return case.dtype


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    if case.attr("keepdims"):
        return tuple(1 if i in case.reduction_axes else s for i, s in enumerate(x_shape))
    return tuple(s for i, s in enumerate(x_shape) if i not in case.reduction_axes)


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes=None) -> list[dict]:
    outputs = []
    for step in case.steps:
        x = step.inputs["x"]
        mean, var = ref.moments(x, case.reduction_axes, conv)
        if conv.normalize_variance == "unbiased":
            var = ref.unbias(var, ref.count(x, case.reduction_axes))
        shape = output_shape("mean", case, x.shape)
        outputs.append({"mean": mean.reshape(shape), "variance": var.reshape(shape)})
    return outputs


def condition(case, step_index: int) -> float:
    x = case.steps[step_index].inputs["x"]
    mean, var = ref.moments(x, case.reduction_axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.abs(x).max(axis=case.reduction_axes, keepdims=True) / np.sqrt(var)
    kappa = kappa[np.isfinite(kappa)]
    return float(kappa.max()) if kappa.size else 1.0
