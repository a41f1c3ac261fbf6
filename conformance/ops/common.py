"""Schema pieces several operators share."""

from __future__ import annotations

AXIS_LIST = {
    "oneOf": [
        {"type": "integer"},
        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
    ]
}

#: A case names either the kept axes (Keras ``axis``) or the reduced ones
#: (``tf.nn.moments(axes=...)``); the loader derives the other.
AXES_SCHEMA = {
    "feature_axes": {**AXIS_LIST, "description": "axes KEPT (Keras `axis`); all others are reduced"},
    "reduction_axes": {**AXIS_LIST, "description": "axes REDUCED (tf.nn.moments `axes`); all others are kept"},
}


def setting_schema(value_schema: dict) -> dict:
    """A value, or ``{framework_default: value-the-expected-outputs-assume}``."""
    return {
        "oneOf": [
            value_schema,
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["framework_default"],
                "properties": {"framework_default": value_schema},
            },
        ]
    }


# -- pieces of the normalization operators -------------------------------------------

import numpy as np  # noqa: E402

from .. import reference as ref  # noqa: E402

#: An upstream gradient ``dy`` (shape of x) may be given with any step; the
#: gradients are those of ``L = sum(dy * y)``.
OPTIONAL_INPUTS = ("dy",)
GRADIENT_OUTPUTS = {
    "dx": "dL/dx for L = sum(dy * y) (shape of x; needs inputs.dy)",
    "dgamma": "dL/dgamma (shape of gamma; needs inputs.dy and a gamma)",
    "dbeta": "dL/dbeta (shape of beta; needs inputs.dy and a beta)",
}
CHANNEL_AXIS_SCHEMA = {
    "feature_axes": {"type": "integer",
                     "description": "the channel axis (one axis, not 0: axis 0 is the batch axis)"},
}
PARAM_AXES_SCHEMA = {
    "param_axes": {**AXIS_LIST, "description": "axes gamma/beta span (default: the normalized axes)"},
}


class Identity:
    """The view an op's statistics are axis-aligned in; most ops need none."""

    def to_view(self, a):
        return a

    def from_view(self, a):
        return a


def param(case, name: str) -> np.ndarray:
    """A parameter broadcast against x (float64)."""
    return np.asarray(case.params[name], dtype=np.float64).reshape(case.param_broadcast_shape)


def gradient_names(case, step) -> tuple[str, ...]:
    """The gradient outputs a step can have: none without ``dy``."""
    if "dy" not in step.inputs:
        return ()
    return ("dx",) + tuple(f"d{p}" for p in ("gamma", "beta") if case.has_param(p))


def gradient_reason(case, step, name: str) -> str | None:
    """Why a gradient output cannot be expected of ``step`` (None: it can)."""
    if name not in GRADIENT_OUTPUTS:
        return None
    if "dy" not in step.inputs:
        return "a gradient needs an upstream gradient: give inputs.dy (same shape as x)"
    param_name = name[1:]
    if name != "dx" and not case.has_param(param_name):
        return f"there is no {param_name} in this case (it is switched off)"
    return None


def affine_outputs(case, step, st: "ref.Standardized", gamma, beta, epsilon: float,
                   conv: "ref.Conventions", view=None) -> dict:
    """``y = xhat * gamma + beta`` in x's layout, plus the gradients when ``dy`` is given."""
    view = view or Identity()
    xhat = view.from_view(st.xhat)
    out = {"y": xhat * gamma + beta}
    if "dy" in step.inputs:
        dy = np.asarray(step.inputs["dy"], dtype=np.float64)
        g = dy * gamma
        x_view = view.to_view(np.asarray(step.inputs["x"], dtype=np.float64))
        out["dx"] = view.from_view(ref.standardize_grad(st, x_view, view.to_view(g), epsilon, conv))
        if case.has_param("gamma"):
            out["dgamma"] = ref.sum_to(dy * xhat, case.param_axes, case.param_shape)
        if case.has_param("beta"):
            out["dbeta"] = ref.sum_to(dy, case.param_axes, case.param_shape)
    return out


def spread_condition(case, step_index: int, st: "ref.Standardized", view=None) -> float:
    """max |x| over the spread used to normalize (sqrt(stat + eps)), worst group."""
    view = view or Identity()
    x = view.to_view(np.asarray(case.steps[step_index].inputs["x"], dtype=np.float64))
    spread = np.sqrt(np.maximum(st.stat, 0.0) + case.attr("epsilon"))
    axes = st.axes
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.abs(x).max(axis=axes, keepdims=True) if axes else np.abs(x)
        kappa = np.maximum(top, np.abs(st.shift)) / spread
    return float(np.nanmax(kappa)) if np.size(kappa) else 1.0
