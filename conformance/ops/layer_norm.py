"""Layer normalization: each sample normalized over the normalized axes.

The normalized axes are the case's ``reduction_axes`` (Keras
``LayerNormalization(axis=...)``, torch's trailing ``normalized_shape``, Flax
``reduction_axes``); the case may give ``feature_axes`` (the kept, per-sample
axes) instead. ``param_axes`` (Flax ``feature_axes``) names the axes gamma and
beta span, by default the normalized axes (Keras, torch). No mode, no state::

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta          # over the normalized axes
    rms_scaling: y = gamma * x / sqrt(mean(x^2) + epsilon)       # no centring, no beta
"""

from __future__ import annotations

from .. import reference as ref
from .common import (AXES_SCHEMA, GRADIENT_OUTPUTS, OPTIONAL_INPUTS, PARAM_AXES_SCHEMA, affine_outputs,
                     gradient_names, gradient_reason, param, setting_schema, spread_condition)

NAME = "layer_norm"
INPUTS = ("x",)
OPTIONAL_INPUTS = OPTIONAL_INPUTS
PARAMS = {"gamma": 1.0, "beta": 0.0}
STATE: dict = {}
HAS_MODE = False
PARAM_AXES = "reduction_axes"
OUTPUTS = {"y": "the normalized output", **GRADIENT_OUTPUTS}
STAT_OUTPUTS: tuple = ()

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **AXES_SCHEMA,
        **PARAM_AXES_SCHEMA,
        "epsilon": setting_schema({"type": "number", "minimum": 0}),
        "center": {"type": "boolean"},
        "scale": {"type": "boolean"},
        "rms_scaling": {"type": "boolean"},
    },
}
DEFAULTS = {"epsilon": 1e-3, "center": True, "scale": True, "rms_scaling": False}


def active_params(case) -> tuple[str, ...]:
    on = {"gamma": case.attr("scale"), "beta": case.attr("center") and not case.attr("rms_scaling")}
    return tuple(n for n, v in on.items() if v)


def default_outputs(mode: str | None, case=None, step=None) -> tuple[str, ...]:
    return ("y",) + (gradient_names(case, step) if case is not None and step is not None else ())


def why_not(case, step_index: int, name: str) -> str | None:
    return gradient_reason(case, case.steps[step_index], name)


def check(case, doc) -> None:
    if case.attr("rms_scaling") and "beta" in doc.data.get("params", {}):
        raise doc.error(("params", "beta"), "is given but rms_scaling is true (there is no beta)")


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    return case.param_shape if name in ("dgamma", "dbeta") else tuple(x_shape)


def output_dtype(name: str, case) -> str:
    return case.dtype


def _standardize(case, x, conv):
    return ref.standardize(x, case.reduction_axes, case.attr("epsilon"), conv, rms=bool(case.attr("rms_scaling")))


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes=None) -> list[dict]:
    eps = case.attr("epsilon")
    gamma = param(case, "gamma") if case.has_param("gamma") else 1.0
    beta = param(case, "beta") if case.has_param("beta") else 0.0
    return [affine_outputs(case, step, _standardize(case, step.inputs["x"], conv), gamma, beta, eps, conv)
            for step in case.steps]


def condition(case, step_index: int) -> float:
    return spread_condition(case, step_index, _standardize(case, case.steps[step_index].inputs["x"], ref.CANONICAL))
