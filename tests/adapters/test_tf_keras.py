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
from .helpers import MOMENTUM, judge, make, one  # noqa: E402


@pytest.fixture(scope="module")
def keras():
    return make(TfKerasAdapter)


@pytest.fixture(scope="module")
def fused():
    return make(TfKerasFusedAdapter)


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


# -- tf_keras: knobs and gradients of BatchNormalization ---------------------------------

# By hand: a frozen layer called with training=True runs inference: y = 2 (x - 1) / sqrt(4) = [2, 4];
# xhat = [1, 2]; dx = dy * gamma / sqrt(4) = dy; dgamma = sum(dy * xhat) = 1 - 4 = -3; dbeta = sum(dy) = -1.
FROZEN = """
id: frozen
op: batch_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, trainable: false}
params: {gamma: [2.0]}
state: {moving_mean: [1.0], moving_variance: [4.0]}
mode: training
inputs: {x: [[3.0], [5.0]], dy: [[1.0], [-2.0]]}
expected:
  y: [[2.0], [4.0]]
  moving_mean: [1.0]
  moving_variance: [4.0]
  dx: [[1.0], [-2.0]]
  dgamma: [-3.0]
  dbeta: [-1.0]
"""


@pytest.mark.parametrize("adapter_fixture", ["keras", "fused"])
def test_frozen_layer_runs_training_as_inference_with_gradients(adapter_fixture, request):
    adapter = request.getfixturevalue(adapter_fixture)
    r = judge(adapter, FROZEN)
    assert r.status == "pass", r.message
    assert "layer.trainable = False" in " ".join(r.notes)
    # Without the knob the layer trains (batch statistics): the same expectations diverge.
    assert judge(adapter, FROZEN.replace(", trainable: false", ", momentum: 0.5")).status == "diverge"


def test_cumulative_and_untracked_are_unsupported(keras, fused):
    for adapter in (keras, fused):
        r = judge(adapter, BESSEL.replace("momentum: 0.5", "momentum: cumulative"))
        assert r.status == "unsupported" and "no cumulative moving average" in r.message
        r = judge(adapter, BESSEL.replace("momentum: 0.5", "track_running_stats: false").replace(
            "expected: reference", "expected: {y: reference}"))
        assert r.status == "unsupported" and "no track_running_stats switch" in r.message


GRADIENT = """
id: grad
op: batch_norm
dtype: float32
attributes: {{reduction_axes: {axes}, epsilon: 0.001, momentum: 0.9}}
params: {{gamma: {{generate: uniform, shape: {fshape}, seed: 4, low: 0.5, high: 2.0}},
          beta: {{generate: normal, shape: {fshape}, seed: 5}}}}
mode: {mode}
inputs:
  x: {{generate: normal, shape: [3, 4, 2, 5], seed: 1, loc: 1.0}}
  dy: {{generate: normal, shape: [3, 4, 2, 5], seed: 2}}
expected: {{y: reference, dx: reference, dgamma: reference, dbeta: reference}}
"""


@pytest.mark.parametrize("adapter_fixture", ["keras", "fused"])
@pytest.mark.parametrize("axes,mode", [((0, 1, 2), "training"), ((0, 2), "training"), ((0, 2, 3), "inference")])
def test_batch_norm_gradients(adapter_fixture, request, axes, mode):
    adapter = request.getfixturevalue(adapter_fixture)
    fshape = [s for i, s in enumerate([3, 4, 2, 5]) if i not in axes]
    c = one(GRADIENT.format(axes=list(axes), fshape=fshape, mode=mode))
    r = evaluate(c, adapter)
    assert r.status == "pass", r.message
    (out,) = adapter.run(c)
    assert out["dgamma"].values.shape == tuple(fshape) and out["dx"].values.shape == (3, 4, 2, 5)
    assert "tf.GradientTape" in " ".join(adapter.notes)


# -- tf_keras: LayerNormalization, GroupNormalization (and instance norm through it) ------

LAYER = """
id: ln
op: layer_norm
dtype: {dtype}
attributes: {{reduction_axes: {axes}, epsilon: {eps}}}
params: {{gamma: {{generate: uniform, shape: {pshape}, seed: 4, low: 0.5, high: 2.0}},
          beta: {{generate: normal, shape: {pshape}, seed: 5}}}}
inputs:
  x: {{generate: normal, shape: [3, 4, 5], seed: 1, loc: 1.0}}
  dy: {{generate: normal, shape: [3, 4, 5], seed: 2}}
expected: reference
"""


@pytest.mark.parametrize("axes,eps,fused_path", [
    ([2], "0.001", True),          # float32, trailing axes, epsilon >= 1.001e-5: the layer fuses
    ([1, 2], "0.01", True),
    ([2], "1.0e-5", False),        # below tf_keras's 1.001e-5 floor: tf.nn.moments path
    ([1], "0.001", False),         # not trailing
])
def test_layer_norm(keras, axes, eps, fused_path):
    pshape = [[3, 4, 5][a] for a in axes]
    r = judge(keras, LAYER.format(dtype="float32", axes=axes, eps=eps, pshape=pshape))
    assert r.status == "pass", r.message
    assert set(r.outputs) == {"y", "dx", "dgamma", "dbeta"}
    assert ("chose its fused path" in " ".join(r.notes)) is fused_path


def test_layer_norm_float64_and_wrong_expectation(keras):
    r = judge(keras, LAYER.format(dtype="float64", axes=[2], eps="0.001", pshape=[5]))
    assert r.status == "pass", r.message
    assert r.outputs["y"]["max_abs_error"] < 1e-12
    # Expecting another epsilon must fail.
    text = LAYER.format(dtype="float64", axes=[2], eps="{framework_default: 0.1}", pshape=[5])
    r = judge(keras, text)
    assert r.status == "diverge"
    assert any("epsilon-1e-3" in m["variants"] for m in r.diagnosis["matches"])


def test_layer_norm_unsupported_forms(keras):
    r = judge(keras, LAYER.format(dtype="float32", axes=[1, 2], eps="0.001", pshape=[5]).replace(
        "epsilon: 0.001", "epsilon: 0.001, param_axes: [2]"))
    assert r.status == "unsupported" and "param_axes [2] cannot be expressed" in r.message
    r = judge(keras, """
id: rms-scaling
op: layer_norm
attributes: {reduction_axes: -1, rms_scaling: true}
inputs: {x: [[3.0, 4.0]]}
expected: reference
""")
    assert r.status == "unsupported" and "no rms_scaling" in r.message
    r = judge(keras, """
id: rms
op: rms_norm
attributes: {reduction_axes: -1}
inputs: {x: [[3.0, 4.0]]}
expected: reference
""")
    assert r.status == "unsupported" and "no RMSNormalization" in r.message
    assert not hasattr(tf_keras.layers, "RMSNormalization")


def test_group_norm_contiguous_groups_with_gradients(keras):
    # Channels [0, 2, 10, 14] in two groups of consecutive channels: y = [-1, 1, -1, 1] (epsilon 0).
    text = """
id: gn
op: group_norm
dtype: float32
attributes: {feature_axes: 1, groups: 2, epsilon: 0.0}
inputs: {x: [[[0.0], [2.0], [10.0], [14.0]]]}
expected: {y: [[[-1.0], [1.0], [-1.0], [1.0]]]}
"""
    r = judge(keras, text)
    assert r.status == "pass", r.message
    assert "GroupNormalization(groups=2, axis=1" in " ".join(r.notes)
    strided = text.replace("[[[-1.0], [1.0], [-1.0], [1.0]]]", "[[[-1.0], [-1.0], [1.0], [1.0]]]")
    assert judge(keras, strided).status == "diverge"
    r = judge(keras, """
id: gn-grad
op: group_norm
dtype: float64
attributes: {feature_axes: -1, groups: 2, epsilon: 0.001}
params: {gamma: [1.5, -0.5, 1.0, 2.0], beta: [0.0, 1.0, -1.0, 0.5]}
inputs: {x: {generate: normal, shape: [2, 3, 4], seed: 7}, dy: {generate: normal, shape: [2, 3, 4], seed: 8}}
expected: reference
""")
    assert r.status == "pass", r.message
    assert r.outputs["dgamma"]["max_abs_error"] < 1e-10


INSTANCE = """
id: in
op: instance_norm
dtype: float32
attributes: {{feature_axes: 1, epsilon: {eps}, affine: {affine}}}
{params}
mode: training
inputs:
  x: {{generate: normal, shape: [2, 3, 6], seed: 3, scale: 0.05}}
  dy: {{generate: normal, shape: [2, 3, 6], seed: 4}}
expected: reference
"""


def test_instance_norm_as_group_normalization(keras):
    params = "params: {gamma: [1.5, -0.5, 2.0], beta: [0.0, 1.0, 0.5]}"
    r = judge(keras, INSTANCE.format(eps="1.0e-5", affine="true", params=params))
    assert r.status == "pass", r.message
    assert "GroupNormalization(groups=-1, axis=1" in " ".join(r.notes)
    # affine left to the framework (false assumed): Keras's center/scale with gamma 1, beta 0.
    r = judge(keras, INSTANCE.format(eps="1.0e-5", affine="{framework_default: false}", params=""))
    assert r.status == "pass", r.message
    assert "affine left to the default" in " ".join(r.notes)
    # epsilon left to the framework (torch's 1e-5 assumed): Keras uses 1e-3; variance ~2.5e-3 shows it.
    r = judge(keras, INSTANCE.format(eps="{framework_default: 1.0e-5}", affine="false", params=""))
    assert r.status == "diverge"
    assert any(m["variants"] == ["epsilon-1e-3"] for m in r.diagnosis["matches"])


def test_tracked_instance_norm_is_unsupported(keras):
    r = judge(keras, """
id: tracked
op: instance_norm
attributes: {feature_axes: 1, track_running_stats: true}
mode: training
inputs: {x: {generate: normal, shape: [2, 3, 4], seed: 1}}
expected: reference
""")
    assert r.status == "unsupported" and "GroupNormalization(groups=-1) keeps none" in r.message


@pytest.mark.parametrize("op,attrs", [("layer_norm", "reduction_axes: -1"),
                                      ("group_norm", "feature_axes: 1, groups: 1"),
                                      ("rms_norm", "reduction_axes: -1")])
def test_fused_row_is_batch_norm_only(fused, op, attrs):
    r = judge(fused, f"""
id: only-bn
op: {op}
attributes: {{{attrs}}}
inputs: {{x: {{generate: normal, shape: [2, 3, 4], seed: 1}}}}
expected: reference
""")
    assert r.status == "unsupported" and r.message.startswith("tf_keras.fused is BatchNormalization(fused=True)")


HALF_MEAN_100 = """
id: half
op: {op}
dtype: {dtype}
attributes: {{{attrs}, epsilon: 1.0e-5}}
inputs: {{x: {{generate: normal, shape: [2, 4, 16], seed: 353, loc: 100.0}}}}
expected: reference
"""


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_layer_vs_group_normalization(keras, dtype):
    # Mean 100, std 1, default tolerance: mixed_<dtype> LayerNormalization computes its statistics in
    # float32 and passes; GroupNormalization computes in the half type and misses by whole rounding steps.
    r = judge(keras, HALF_MEAN_100.format(op="layer_norm", dtype=dtype, attrs="reduction_axes: [1, 2]"))
    assert r.status == "pass", r.message
    assert f"dtype='mixed_{dtype}'" in " ".join(r.notes)
    r = judge(keras, HALF_MEAN_100.format(op="group_norm", dtype=dtype, attrs="feature_axes: 1, groups: 1"))
    assert r.status == "diverge" and r.outputs["y"]["actual_dtype"] == dtype
    assert r.outputs["y"]["max_abs_error"] > 0.01
