"""Group normalization (Wu & He 2018).

Axis 0 is the batch axis; ``feature_axes`` names the one channel axis (C
channels, channels-first or channels-last). The channels are split into
``groups`` groups of C / groups consecutive channels (canonical: channel c is
in group ``c // (C / groups)``); each sample and group is normalized over its
channels and every other (spatial) axis. gamma and beta are per channel::

    y[n, c, ...] = gamma[c] * (x - mean[n, g(c)]) / sqrt(var[n, g(c)] + epsilon) + beta[c]

No mode, no state. ``groups`` must divide C (a load-time error otherwise).
"""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from .common import (CHANNEL_AXIS_SCHEMA, GRADIENT_OUTPUTS, OPTIONAL_INPUTS, affine_outputs, gradient_names,
                     gradient_reason, param, setting_schema, spread_condition)

NAME = "group_norm"
INPUTS = ("x",)
OPTIONAL_INPUTS = OPTIONAL_INPUTS
PARAMS = {"gamma": 1.0, "beta": 0.0}
STATE: dict = {}
HAS_MODE = False
AXES = "channel"
PARAM_AXES = "feature_axes"
OUTPUTS = {"y": "the normalized output", **GRADIENT_OUTPUTS}
STAT_OUTPUTS: tuple = ()

ATTRIBUTES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        **CHANNEL_AXIS_SCHEMA,
        "groups": {"type": "integer", "minimum": 1, "description": "number of groups; must divide C"},
        "epsilon": setting_schema({"type": "number", "minimum": 0}),
        "center": {"type": "boolean"},
        "scale": {"type": "boolean"},
    },
}
DEFAULTS = {"epsilon": 1e-3, "center": True, "scale": True}


def active_params(case) -> tuple[str, ...]:
    return tuple(n for n, on in (("gamma", case.attr("scale")), ("beta", case.attr("center"))) if on)


def default_outputs(mode: str | None, case=None, step=None) -> tuple[str, ...]:
    return ("y",) + (gradient_names(case, step) if case is not None and step is not None else ())


def why_not(case, step_index: int, name: str) -> str | None:
    return gradient_reason(case, case.steps[step_index], name)


def check(case, doc) -> None:
    channels, groups = case.feature_shape[0], case.attr("groups")
    if channels % groups:
        raise doc.error(("attributes", "groups"),
                        f"{groups} groups do not divide the {channels} channels of axis {case.feature_axes[0]}")


def output_shape(name: str, case, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    return case.param_shape if name in ("dgamma", "dbeta") else tuple(x_shape)


def output_dtype(name: str, case) -> str:
    return case.dtype


class GroupView:
    """x ↔ (N, G, C/G, spatial...) (contiguous split) or (N, C/G, G, spatial...) (strided)."""

    def __init__(self, case, x_shape, conv: ref.Conventions):
        self.channel = case.feature_axes[0]
        self.groups = case.attr("groups")
        self.strided = conv.group_split == "strided"
        moved = np.moveaxis(np.empty(x_shape, dtype=np.int8), self.channel, 1).shape
        self.moved = moved
        n, c, spatial = moved[0], moved[1], moved[2:]
        size = c // self.groups
        split = (size, self.groups) if self.strided else (self.groups, size)
        self.shape = (n,) + split + tuple(spatial)
        group_axis = 2 if self.strided else 1
        self.axes = tuple(a for a in range(1, len(self.shape)) if a != group_axis)

    def to_view(self, a):
        return np.moveaxis(np.asarray(a), self.channel, 1).reshape(self.shape)

    def from_view(self, a):
        return np.moveaxis(np.asarray(a).reshape(self.moved), 1, self.channel)


def _standardize(case, x, conv):
    view = GroupView(case, x.shape, conv)
    return view, ref.standardize(view.to_view(np.asarray(x, dtype=np.float64)), view.axes, case.attr("epsilon"), conv)


def reference(case, conv: ref.Conventions = ref.CANONICAL, modes=None) -> list[dict]:
    eps = case.attr("epsilon")
    gamma = param(case, "gamma") if case.attr("scale") else 1.0
    beta = param(case, "beta") if case.attr("center") else 0.0
    outputs = []
    for step in case.steps:
        view, st = _standardize(case, step.inputs["x"], conv)
        outputs.append(affine_outputs(case, step, st, gamma, beta, eps, conv, view))
    return outputs


def condition(case, step_index: int) -> float:
    view, st = _standardize(case, case.steps[step_index].inputs["x"], ref.CANONICAL)
    return spread_condition(case, step_index, st, view)
