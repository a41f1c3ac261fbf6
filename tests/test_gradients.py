"""The reference's analytic gradients (dx, dgamma, dbeta of L = sum(dy * y))
against central finite differences in float64, op by op and convention by convention."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from conformance import reference as ref
from conformance.load import cases_from_text
from conformance.ops import get

# (id, op, attributes, shape, extra YAML, conventions)
SETUPS = [
    ("bn-train", "batch_norm", "{feature_axes: -1, epsilon: 1.0e-3}", [5, 3], "mode: training", {}),
    ("bn-train-nchw", "batch_norm", "{feature_axes: 1, epsilon: 0.1}", [3, 2, 2, 2], "mode: training", {}),
    ("bn-train-unbiased-outside", "batch_norm", "{feature_axes: -1, epsilon: 1.0e-2}", [4, 2], "mode: training",
     {"normalize_variance": "unbiased", "epsilon": "outside"}),
    ("bn-train-one-pass", "batch_norm", "{feature_axes: -1, epsilon: 1.0e-2}", [4, 2], "mode: training",
     {"variance_algorithm": "one_pass"}),
    ("bn-inference", "batch_norm", "{feature_axes: -1, epsilon: 1.0e-3}", [4, 2],
     "mode: inference\nstate: {moving_mean: [0.5, -1.0], moving_variance: [2.0, 0.5]}", {}),
    ("bn-untracked-inference", "batch_norm", "{feature_axes: -1, track_running_stats: false}", [4, 2],
     "mode: inference", {}),
    ("bn-frozen-training", "batch_norm", "{feature_axes: -1, trainable: false}", [4, 2],
     "mode: training\nstate: {moving_mean: [0.5, -1.0], moving_variance: [2.0, 0.5]}", {}),
    ("ln-last", "layer_norm", "{reduction_axes: -1, epsilon: 1.0e-3}", [3, 4], "", {}),
    ("ln-non-trailing", "layer_norm", "{reduction_axes: [1, 3], epsilon: 1.0e-3}", [2, 3, 2, 2], "", {}),
    ("ln-params-on-other-axes", "layer_norm", "{reduction_axes: [1, 2], param_axes: [2], epsilon: 1.0e-3}",
     [2, 3, 4], "", {}),
    ("ln-rms-scaling", "layer_norm", "{reduction_axes: -1, rms_scaling: true, epsilon: 1.0e-3}", [3, 4], "", {}),
    ("ln-rms-scaling-variance", "layer_norm", "{reduction_axes: -1, rms_scaling: true}", [3, 4], "",
     {"rms_statistic": "variance"}),
    ("ln-eps-outside", "layer_norm", "{reduction_axes: -1, epsilon: 0.1}", [3, 4], "", {"epsilon": "outside"}),
    ("rms", "rms_norm", "{reduction_axes: -1}", [3, 4], "", {}),
    ("rms-two-axes", "rms_norm", "{reduction_axes: [1, 2], epsilon: 1.0e-2}", [2, 3, 2], "", {}),
    ("gn-nchw", "group_norm", "{feature_axes: 1, groups: 2, epsilon: 1.0e-3}", [2, 4, 3], "", {}),
    ("gn-nhwc", "group_norm", "{feature_axes: -1, groups: 3, epsilon: 1.0e-3}", [2, 2, 2, 6], "", {}),
    ("gn-strided", "group_norm", "{feature_axes: 1, groups: 2}", [2, 4, 3], "", {"group_split": "strided"}),
    ("in-affine", "instance_norm", "{feature_axes: 1, affine: true}", [2, 3, 4], "mode: training", {}),
    ("in-tracked-inference", "instance_norm", "{feature_axes: -1, affine: true, track_running_stats: true}",
     [2, 4, 3], "mode: inference\nstate: {moving_mean: [0.1, 0.2, 0.3], moving_variance: [1.5, 0.5, 2.0]}", {}),
]


def build(op, attributes, shape, extra):
    text = f"""
id: t/grad
op: {op}
source: float64 reference
dtype: float64
attributes: {attributes}
{extra}
inputs:
  x: {{generate: normal, shape: {shape}, seed: 3, loc: 0.3, scale: 1.7}}
  dy: {{generate: normal, shape: {shape}, seed: 4}}
expected: reference
"""
    case = cases_from_text(text)[0]
    rng = np.random.default_rng(5)
    for name in case.params:  # non-trivial parameters so every term of the gradient matters
        case.params[name] = rng.normal(size=case.params[name].shape) + (1.0 if name == "gamma" else 0.0)
    return case


def loss(op, case, conv) -> float:
    y = op.reference(case, conv)[0]["y"]
    return float((case.steps[0].inputs["dy"] * y).sum())


def numeric(op, case, conv, where, name, h=1e-6) -> np.ndarray:
    """Central differences of the loss w.r.t. case.<where>[name]."""
    base = getattr(case, where) if where == "params" else case.steps[0].inputs
    grad = np.zeros_like(base[name])
    for index in np.ndindex(grad.shape):
        plus, minus = copy.deepcopy(case), copy.deepcopy(case)
        for c, sign in ((plus, 1), (minus, -1)):
            target = c.params if where == "params" else c.steps[0].inputs
            target[name] = target[name].copy()
            target[name][index] += sign * h
        grad[index] = (loss(op, plus, conv) - loss(op, minus, conv)) / (2 * h)
    return grad


@pytest.mark.parametrize("setup", SETUPS, ids=[s[0] for s in SETUPS])
def test_analytic_gradients_match_finite_differences(setup):
    _, op_name, attributes, shape, extra, conventions = setup
    op = get(op_name)
    case = build(op_name, attributes, shape, extra)
    conv = ref.CANONICAL.with_(**conventions)
    out = op.reference(case, conv)[0]
    np.testing.assert_allclose(out["dx"], numeric(op, case, conv, "inputs", "x"), rtol=1e-6, atol=1e-7)
    assert out["dx"].shape == tuple(shape)
    for name in case.params:
        if case.has_param(name):
            assert out[f"d{name}"].shape == case.param_shape
            np.testing.assert_allclose(out[f"d{name}"], numeric(op, case, conv, "params", name), rtol=1e-6, atol=1e-7)
        else:
            assert f"d{name}" not in out


def test_expected_reference_with_dy_includes_the_gradients():
    case = build("layer_norm", "{reduction_axes: -1}", [2, 3], "")
    assert set(case.steps[0].expected) == {"y", "dx", "dgamma", "dbeta"}
    rms = build("layer_norm", "{reduction_axes: -1, rms_scaling: true}", [2, 3], "")
    assert set(rms.steps[0].expected) == {"y", "dx", "dgamma"}


def test_gradient_of_a_constant_shift_is_zero_through_batch_statistics():
    """sum(dx) over a normalized group is 0 when the mean is subtracted (y is shift-invariant)."""
    case = build("group_norm", "{feature_axes: 1, groups: 2}", [2, 4, 3], "")
    dx = get("group_norm").reference(case)[0]["dx"]
    per_group = dx.reshape(2, 2, 2, 3).sum(axis=(2, 3))
    np.testing.assert_allclose(per_group, 0.0, atol=1e-12)
