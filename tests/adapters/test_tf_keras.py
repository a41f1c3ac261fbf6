"""The tf_keras adapters (BatchNormalization fused=False / fused=True) on the real framework."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")

from adapters.tf_keras_adapter import TfKerasAdapter, TfKerasFusedAdapter  # noqa: E402
from conformance.evaluate import evaluate  # noqa: E402
from .helpers import MOMENTUM, judge, one  # noqa: E402


@pytest.fixture(scope="module")
def keras():
    adapter = TfKerasAdapter()
    adapter.load()
    return adapter


@pytest.fixture(scope="module")
def fused():
    adapter = TfKerasFusedAdapter()
    adapter.load()
    return adapter


SEED_000 = """
id: seed-000
op: batch_norm
dtype: {dtype}
attributes:
  feature_axes: -1
  epsilon: {{framework_default: 1.0e-3}}
  momentum: {{framework_default: 0.99}}
  center: false
  scale: false
mode: {mode}
inputs:
  x: {x}
expected:
  y: {y}
  moving_mean: reference
  moving_variance: reference
"""

INFERENCE_BY_DEFAULT = SEED_000.format(
    dtype="float64", mode="{framework_default: inference}", x="[[3.0, 4.0]]",
    y="{values: [[2.99850112, 3.9980015]], rtol: 1.0e-8, atol: 1.0e-8}")

TWO_SAMPLES = SEED_000.format(dtype="float32", mode="training", x="[[3.0], [4.0]]",
                              y="[[-0.99800634], [0.99800587]]")

# Four samples of one feature: mean 2.5, biased variance 1.25, unbiased 5/3.
BESSEL = """
id: bessel
op: batch_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.001, momentum: 0.5, center: false, scale: false}
mode: training
inputs:
  x: [[1.0], [2.0], [3.0], [4.0]]
expected: reference
"""

AXES_4D = """
id: axes-4d
op: batch_norm
dtype: float32
attributes: {{reduction_axes: {axes}, epsilon: 0.001, momentum: 0.9}}
params: {{gamma: {{generate: uniform, shape: {fshape}, seed: 4, low: 0.5, high: 2.0}},
          beta: {{generate: normal, shape: {fshape}, seed: 5}}}}
state: {{moving_mean: 0.25, moving_variance: 2.0}}
steps:
  - mode: training
    inputs: {{x: {{generate: normal, shape: [3, 4, 2, 5], seed: 1, loc: 1.0, scale: 2.0}}}}
    expected: {{y: reference, moving_mean: reference{var}}}
  - mode: training
    inputs: {{x: {{generate: normal, shape: [3, 4, 2, 5], seed: 2}}}}
    expected: {{y: reference, moving_mean: reference{var}}}
  - mode: inference
    inputs: {{x: {{generate: normal, shape: [3, 4, 2, 5], seed: 3}}}}
    expected: {{{y}moving_mean: reference{var}}}
"""


def axes_case(axes, variance=True):
    fshape = [s for i, s in enumerate([3, 4, 2, 5]) if i not in axes]
    var = ", moving_variance: reference" if variance else ""
    # Without the moving variance, the inference y (which uses it) is not checked either.
    return AXES_4D.format(axes=list(axes), fshape=fshape, var=var, y="y: reference, " if variance else "")




# -- tf_keras (fused=False) -------------------------------------------------------------


def test_seed_000_inference_by_default(keras):
    c = one(INFERENCE_BY_DEFAULT)
    r = evaluate(c, keras)
    assert r.status == "pass", r.message
    (out,) = keras.run(c)
    np.testing.assert_allclose(out["y"].values, [[2.99850112, 3.9980015]], rtol=1e-8)
    assert out["y"].dtype == "float64"
    np.testing.assert_array_equal(out["moving_mean"].values, [0.0, 0.0])
    assert "without training=" in " ".join(keras.notes)


def test_seed_000_two_samples_training(keras):
    r = judge(keras, TWO_SAMPLES)
    assert r.status == "pass", r.message


def test_seed_000_wrong_expectation_fails(keras):
    # The inference-by-default case with training numbers must diverge: the test can fail.
    r = judge(keras, INFERENCE_BY_DEFAULT.replace("[[2.99850112, 3.9980015]]", "[[-0.998, 0.998]]"))
    assert r.status == "diverge"


@pytest.mark.parametrize("axes", [(0, 1, 2), (0, 2), (0, 2, 3), (1, 2, 3), (0,)])
def test_axis_lists_4d(keras, axes):
    r = judge(keras, axes_case(axes))
    assert r.status == "pass", r.message
    assert "step3.y" in r.outputs


def test_momentum_three_steps(keras):
    c = one(MOMENTUM)
    r = evaluate(c, keras)
    assert r.status == "pass", r.message
    out = keras.run(c)
    np.testing.assert_allclose(out[1]["moving_variance"].values, [1.3], rtol=1e-7)
    # Even in float64 the decay 1 - momentum goes through a float32 tensor (tf.convert_to_tensor
    # of a Python float, then cast): 0.2 becomes 2 * float32(0.1), not 0.2.
    assert out[0]["moving_mean"].values[0] == 2 * float(np.float32(1 - 0.9))
    assert out[0]["moving_mean"].values[0] != 0.2


def test_momentum_default_is_0_99(keras):
    text = MOMENTUM.replace("momentum: 0.9", "momentum: {framework_default: 0.99}")
    out = keras.run(one(text))
    # 0.99 * 0 + 0.01 * 2 = 0.02 after step 1; 0.99 * 0.02 + 0.01 * 6 = 0.0798 after step 2.
    np.testing.assert_allclose([o["moving_mean"].values[0] for o in out], [0.02, 0.0798, 0.0798], rtol=1e-7)


def test_epsilon_explicit(keras):
    text = INFERENCE_BY_DEFAULT.replace("epsilon: {framework_default: 1.0e-3}", "epsilon: 0.21")
    r = judge(keras, text.replace("[[2.99850112, 3.9980015]]", "[[2.7272727, 3.6363636]]"))  # / sqrt(1.21)
    assert r.status == "pass", r.message


def test_float16_layer_keeps_float32_statistics(keras):
    text = axes_case((0, 1, 2)).replace("dtype: float32", "dtype: float16\ntolerance: {condition_aware: true}")
    c = one(text)
    r = evaluate(c, keras)
    assert r.status == "pass", r.message
    out = keras.run(c)
    assert out[0]["y"].dtype == "float16" and out[0]["moving_mean"].dtype == "float32"


class _BadAxis(TfKerasAdapter):
    """Asks Keras for an axis the input does not have: the layer itself raises."""

    def _layout(self, case):
        return [7], None


def test_framework_error_is_captured():
    r = judge(_BadAxis(), TWO_SAMPLES)
    assert r.status == "error"
    assert r.message.startswith("ValueError") and "axis" in r.message


# -- tf_keras (fused=True) --------------------------------------------------------------


def test_fused_float64_is_an_error(fused):
    r = judge(fused, INFERENCE_BY_DEFAULT)
    assert r.status == "error"
    assert "only supported when the compute dtype is float16, bfloat16, or float32" in r.message


def test_fused_seed_000_two_samples_moving_variance_diverges(fused):
    r = judge(fused, TWO_SAMPLES)
    assert r.status == "diverge"
    assert r.outputs["y"]["status"] == "pass" and r.outputs["moving_mean"]["status"] == "pass"
    # Unbiased batch variance 0.5 (n = 2) instead of 0.25: 0.99 + 0.01 * 0.5 vs 0.99 + 0.01 * 0.25.
    mv = r.outputs["moving_variance"]
    assert mv["worst_expected"] == pytest.approx(0.9925)
    assert mv["worst_actual"] == pytest.approx(0.995, rel=1e-6)


def test_fused_bessel_ratio(fused):
    c = one(BESSEL)
    r = evaluate(c, fused)
    assert r.status == "diverge" and list(r.message.split(":"))[0] == "moving_variance"
    (out,) = fused.run(c)
    # moving = 0.5 * 1 + 0.5 * batch: the batch variance the layer used is (mv - 0.5) / 0.5.
    used = (out["moving_variance"].values[0] - 0.5) / 0.5
    assert used == pytest.approx(5 / 3, rel=1e-6)
    assert used / 1.25 == pytest.approx(4 / 3, rel=1e-6)  # n / (n - 1), n = 4


@pytest.mark.parametrize("axes,note", [
    ((0, 1, 2), "as NHWC"),
    ((0, 2, 3), "as NCHW"),
    ((0, 2), "transposed to axes [0, 2, 1, 3]"),
    ((1, 2, 3), "reshaped to NHWC [40, 1, 1, 3]"),
])
def test_fused_layouts(fused, axes, note):
    r = judge(fused, axes_case(axes, variance=False))
    assert r.status == "pass", r.message
    assert note in " ".join(r.notes)


def test_fused_layouts_moving_variance_diverges(fused):
    r = judge(fused, axes_case((0, 2)))
    assert r.status == "diverge"
    assert all(k.endswith("moving_variance") or k == "step3.y" for k, v in r.outputs.items()
               if v["status"] == "diverge")
    assert r.outputs["step1.moving_variance"]["status"] == "diverge"


def test_fused_momentum_three_steps(fused):
    c = one(MOMENTUM.replace("float64", "float32"))
    r = evaluate(c, fused)
    for key in ("step1.moving_mean", "step2.moving_mean", "step3.moving_mean"):
        assert r.outputs[key]["status"] == "pass", key
    out = fused.run(c)
    # Unbiased batch variances 2 and 8 (n = 2): 0.9 + 0.2 = 1.1, then 0.99 + 0.8 = 1.79.
    np.testing.assert_allclose([o["moving_variance"].values[0] for o in out], [1.1, 1.79, 1.79], rtol=1e-5)


def test_fused_inference_by_default_in_float32(fused):
    r = judge(fused, INFERENCE_BY_DEFAULT.replace("float64", "float32").replace("rtol: 1.0e-8, atol: 1.0e-8", "rtol: 1.0e-6"))
    assert r.status == "pass", r.message


def test_fused_true_layout_rules_of_the_layer():
    """What the adapter's reshaping avoids: fused=True raises or silently falls back."""
    with pytest.raises(ValueError, match="only support 4D or 5D"):
        tf_keras.layers.BatchNormalization(axis=-1, fused=True).build((2, 3))
    with pytest.raises(ValueError, match="only supported when axis is 1"):
        tf_keras.layers.BatchNormalization(axis=2, fused=True)
    with pytest.raises(ValueError, match="only supported when axis is 1"):
        tf_keras.layers.BatchNormalization(axis=[1, 3], fused=True)
    layer = tf_keras.layers.BatchNormalization(axis=3, fused=True)
    layer.build((2, 3, 4, 5, 6))  # 5-D with axis 3: accepted, then not fused
    assert layer.fused is False
