"""RMS normalization (Zhang & Sennrich 2019): no centring, no beta::

    y = gamma * x / sqrt(mean(x^2 over the normalized axes) + epsilon)

Axes as layer norm: ``reduction_axes`` are the normalized axes (Keras
``RMSNormalization(axis=...)``, torch ``normalized_shape``, Flax
``reduction_axes``), or ``feature_axes`` the kept ones; ``param_axes`` the axes
gamma spans (default: the normalized axes). No mode, no state.
"""

from __future__ import annotations

from .. import reference as ref
from .common import (AXES_SCHEMA, GRADIENT_OUTPUTS, OPTIONAL_INPUTS, PARAM_AXES_SCHEMA, affine_outputs,
                     gradient_names, gradient_reason, param, setting_schema, spread_condition)

NAME = "rms_norm"
INPUTS = ("x",)
OPTIONAL_INPUTS = OPTIONAL_INPUTS
PARAMS = {"gamma": 1.0}
STATE: dict = {}
HAS_MODE = False
PARAM_AXES = "reduction_axes"
OUTPUTS = {"y": "the normalized output", "dx": GRADIENT_OUTPUTS["dx"], "dgamma": GRADIENT_OUTPUTS["dgamma"]}
STAT_OUTPUTS: tuple = ()

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **AXES_SCHEMA,
        **PARAM_AXES_SCHEMA,
        "epsilon": setting_schema({"type": "number", "minimum": 0}),
        "scale": {"type": "boolean"},
    },
}
DEFAULTS = {"epsilon": 1e-6, "scale": True}


def active_params(case) -> tuple[str, ...]:
    return ("gamma",) if case.attr("scale") else ()


def default_outputs(mode: str | None, case=None, step=None) -> tuple[str, ...]:
    return ("y",) + (gradient_names(case, step) if case is not None and step is not None else ())


def why_not(case, step_index: int, name: str) -> str | None:
    return gradient_reason(case, case.steps[step_index], name)


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    return case.param_shape if name == "dgamma" else tuple(x_shape)


def output_dtype(name: str, case) -> str:
    return case.dtype


def _standardize(case, x, conv):
    return ref.standardize(x, case.reduction_axes, case.attr("epsilon"), conv, rms=True)


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes=None) -> list[dict]:
    eps = case.attr("epsilon")
    gamma = param(case, "gamma") if case.has_param("gamma") else 1.0
    return [affine_outputs(case, step, _standardize(case, step.inputs["x"], conv), gamma, 0.0, eps, conv)
            for step in case.steps]


def condition(case, step_index: int) -> float:
    return spread_condition(case, step_index, _standardize(case, case.steps[step_index].inputs["x"], ref.CANONICAL))
