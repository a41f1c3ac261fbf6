"""The TensorFlow adapters (tf.nn and tf.nn.fused) on the real framework."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from adapters.tensorflow_adapter import TensorflowFusedAdapter, TensorflowNNAdapter  # noqa: E402
from conformance.evaluate import evaluate  # noqa: E402
from .helpers import MOMENTUM, judge, make, one  # noqa: E402


@pytest.fixture(scope="module")
def nn():
    return make(TensorflowNNAdapter)


@pytest.fixture(scope="module")
def fused():
    return make(TensorflowFusedAdapter)


SEED_000 = """
id: seed-000
op: batch_norm
dtype: float64
attributes:
  feature_axes: -1
  epsilon: {eps}
  momentum: {{framework_default: 0.99}}
  center: false
  scale: false
mode: {mode}
inputs:
  x: [[3.0, 4.0]]
expected:
  y: {{values: [[2.99850112, 3.9980015]], rtol: 1.0e-8, atol: 1.0e-8}}
  moving_mean: reference
  moving_variance: reference
"""

# Four samples of one feature: mean 2.5, biased variance 1.25, unbiased 5/3.
BESSEL = """
id: bessel
op: batch_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.001, momentum: 0.5, center: false, scale: false}
mode: training
inputs:
  x: [[1.0], [2.0], [3.0], [4.0]]
expected:
  y: reference
  moving_mean: reference
  moving_variance: reference
  batch_mean: reference
  batch_variance: reference
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
    expected: {{y: reference, moving_mean: reference, {var}batch_mean: reference}}
  - mode: training
    inputs: {{x: {{generate: normal, shape: [3, 4, 2, 5], seed: 2}}}}
    expected: {{y: reference, moving_mean: reference}}
"""


def axes_case(axes, var="moving_variance: reference, batch_variance: reference, "):
    fshape = [s for i, s in enumerate([3, 4, 2, 5]) if i not in axes]
    return AXES_4D.format(axes=list(axes), fshape=fshape, var=var)




# -- tf.nn ------------------------------------------------------------------------------


def test_nn_seed_000_epsilon_default_is_unsupported(nn):
    r = judge(nn, SEED_000.format(eps="{framework_default: 1.0e-3}", mode="inference"))
    assert r.status == "unsupported"
    assert "variance_epsilon" in r.message


def test_nn_seed_000_numbers_with_explicit_epsilon(nn):
    c = one(SEED_000.format(eps="1.0e-3", mode="inference"))
    r = evaluate(c, nn)
    assert r.status == "pass", r.message
    (out,) = nn.run(c)
    np.testing.assert_allclose(out["y"].values, [[2.99850112, 3.9980015]], rtol=1e-8)
    assert out["y"].dtype == "float64"


def test_nn_default_mode_is_unsupported(nn):
    r = judge(nn, SEED_000.format(eps="1.0e-3", mode="{framework_default: inference}"))
    assert r.status == "unsupported"
    assert "no mode" in r.message


def test_nn_momentum_default_in_training_is_unsupported(nn):
    text = SEED_000.format(eps="1.0e-3", mode="training").replace(
        "expected:\n  y: {values: [[2.99850112, 3.9980015]], rtol: 1.0e-8, atol: 1.0e-8}", "expected:")
    r = judge(nn, text.replace("x: [[3.0, 4.0]]", "x: [[3.0, 4.0], [5.0, 7.0]]"))
    assert r.status == "unsupported"
    assert "momentum" in r.message


@pytest.mark.parametrize("axes", [(0, 1, 2), (0, 2), (0, 2, 3), (1, 2, 3)])
def test_nn_reduction_axes_4d(nn, axes):
    r = judge(nn, axes_case(axes))
    assert r.status == "pass", r.message
    assert "step1.batch_variance" in r.outputs


def test_nn_momentum_three_steps(nn):
    c = one(MOMENTUM)
    r = evaluate(c, nn)
    assert r.status == "pass", r.message
    out = nn.run(c)
    np.testing.assert_allclose(out[1]["moving_variance"].values, [1.3], rtol=1e-12)
    np.testing.assert_allclose(out[2]["y"].values, [[1.22 / np.sqrt(1.301)]], rtol=1e-12)
    assert any("0.9 * old" in n for n in nn.notes)


def test_nn_momentum_wrong_convention_would_fail(nn):
    # The same case with momentum 0.1 (PyTorch's convention) must not pass: the test can fail.
    r = judge(nn, MOMENTUM.replace("momentum: 0.9", "momentum: 0.1"))
    assert r.status == "diverge"
    assert "step1.moving_mean" in r.message


def test_nn_bessel_case_passes(nn):
    r = judge(nn, BESSEL)
    assert r.status == "pass", r.message
    assert r.outputs["batch_variance"]["max_abs_error"] < 1e-6


@pytest.mark.parametrize("keepdims,shape", [("true", [1, 4, 1, 5]), ("false", [4, 5])])
def test_nn_moments(nn, keepdims, shape):
    text = f"""
id: moments
op: moments
dtype: float32
attributes: {{reduction_axes: [0, 2], keepdims: {keepdims}}}
inputs: {{x: {{generate: normal, shape: [3, 4, 2, 5], seed: 1}}}}
expected: reference
"""
    c = one(text)
    r = evaluate(c, nn)
    assert r.status == "pass", r.message
    (out,) = nn.run(c)
    assert list(out["mean"].values.shape) == shape and out["variance"].dtype == "float32"


def test_nn_float16_statistics_stay_float16(nn):
    # A user writing the float16 path keeps float16 statistics; the canonical ones are float32.
    r = judge(nn, axes_case((0, 1, 2)).replace("dtype: float32", "dtype: float16\ntolerance: {condition_aware: true}"))
    assert r.status == "diverge"
    assert r.outputs["step1.y"]["status"] == "pass" and r.outputs["step1.y"]["actual_dtype"] == "float16"
    mm = r.outputs["step1.moving_mean"]
    assert mm["actual_dtype"] == "float16" and mm["expected_dtype"] == "float32"
    assert "dtype float16, expected float32" in r.message


class _BadAxes(TensorflowNNAdapter):
    """Passes an out-of-range axis to tf.nn.moments: TF itself raises."""

    def _axes(self, case):
        return [7]


def test_nn_framework_error_is_captured():
    r = judge(_BadAxes(), axes_case((0, 1, 2)))
    assert r.status == "error"
    assert r.message.startswith("InvalidArgumentError")


# -- tf.nn.fused ------------------------------------------------------------------------


def test_fused_batch_variance_is_bessel_corrected(fused):
    r = judge(fused, BESSEL)
    assert r.status == "diverge"
    bv, mv = r.outputs["batch_variance"], r.outputs["moving_variance"]
    assert bv["status"] == "diverge" and mv["status"] == "diverge"
    # Batch variance: unbiased 5/3 instead of 1.25, the ratio n/(n-1) = 4/3.
    assert bv["worst_expected"] == pytest.approx(1.25)
    assert bv["worst_actual"] == pytest.approx(5 / 3, rel=1e-6)
    assert bv["worst_actual"] / bv["worst_expected"] == pytest.approx(4 / 3, rel=1e-6)
    # Moving variance: 0.5 * 1 + 0.5 * 5/3 instead of 0.5 * 1 + 0.5 * 1.25.
    assert mv["worst_expected"] == pytest.approx(1.125)
    assert mv["worst_actual"] == pytest.approx(0.5 + 0.5 * 5 / 3, rel=1e-6)
    # y is normalized with the biased variance, the mean is the mean.
    for name in ("y", "batch_mean", "moving_mean"):
        assert r.outputs[name]["status"] == "pass", name
    assert "exponential_avg_factor 0.5" in " ".join(r.notes)


def test_fused_float64_is_an_error(fused):
    r = judge(fused, SEED_000.format(eps="1.0e-3", mode="inference"))
    assert r.status == "error"
    assert r.message.startswith("InvalidArgumentError") and "double" in r.message


@pytest.mark.parametrize("axes,note", [
    ((0, 1, 2), "as NHWC"),                 # channels last: passed as it is
    ((0, 2, 3), "as NCHW"),                 # channels first: passed as it is
    ((0, 2), "transposed to axes [0, 2, 1, 3]"),  # kept [1, 3] flattened into one channel axis
    ((1, 2, 3), "reshaped to NHWC [40, 1, 1, 3]"),  # kept [0] only
])
def test_fused_layouts(fused, axes, note):
    c = one(axes_case(axes, var=""))
    r = evaluate(c, fused)
    assert r.status == "pass", r.message
    assert note in " ".join(r.notes)
    # Batch variance: the biased reference times n / (n - 1), in every layout.
    out = fused.run(c)
    x = c.steps[0].inputs["x"]
    n = np.prod([x.shape[a] for a in axes])
    biased = x.var(axis=axes).reshape(c.feature_shape)
    np.testing.assert_allclose(out[0]["batch_variance"].values, biased * n / (n - 1), rtol=1e-5)
    assert out[0]["y"].values.shape == x.shape


def test_fused_two_dimensional_and_feature_axis_0(fused):
    text = """
id: fa0
op: batch_norm
dtype: float32
attributes: {feature_axes: 0, epsilon: 0.01, momentum: 0.9}
params: {gamma: [2.0, 0.5], beta: [1.0, -1.0]}
steps:
  - mode: training
    inputs: {x: [[1.0, 2.0, 4.0], [0.0, -3.0, 3.0]]}
    expected: {y: reference, moving_mean: reference, batch_mean: reference}
  - mode: inference
    inputs: {x: [[1.0, 2.0, 4.0], [0.0, -3.0, 3.0]]}
    expected: {moving_mean: reference}
"""
    r = judge(fused, text)
    assert r.status == "pass", r.message


def test_fused_no_epsilon_floor_on_cpu(fused):
    # Variance 1e-6 with epsilon 0: y = -1, +1 exactly; a 1.001e-5 floor would give +-0.30.
    text = """
id: eps0
op: batch_norm
dtype: float32
attributes: {feature_axes: 1, epsilon: 0.0, momentum: 0.5, center: false, scale: false}
mode: training
inputs: {x: [[0.0], [0.002]]}
expected: {y: [[-1.0], [1.0]]}
"""
    r = judge(fused, text)
    assert r.status == "pass", r.message


def test_fused_epsilon_default_is_0_001(fused):
    text = SEED_000.replace("float64", "float32").format(eps="{framework_default: 1.0e-3}", mode="inference")
    text = text.replace("momentum: {framework_default: 0.99}", "momentum: 0.99")
    r = judge(fused, text.replace("rtol: 1.0e-8, atol: 1.0e-8", "rtol: 1.0e-6"))
    assert r.status == "pass", r.message
    assert "default (0.001)" in " ".join(r.notes)


def test_fused_defaults_train_and_replace_the_moving_statistics(fused):
    # is_training defaults to True and exponential_avg_factor to 1.0: the moving
    # statistics become the batch ones (mean 3.5, unbiased variance 0.5).
    text = SEED_000.replace("float64", "float32").format(
        eps="1.0e-3", mode="{framework_default: inference}").replace("[[3.0, 4.0]]", "[[3.0], [4.0]]")
    text = text.replace("y: {values: [[2.99850112, 3.9980015]], rtol: 1.0e-8, atol: 1.0e-8}", "y: reference")
    c = one(text)
    r = evaluate(c, fused)
    assert r.status == "diverge"
    assert r.outputs["y"]["status"] == "diverge"  # normalized with batch stats: -1, +1
    assert r.outputs["moving_mean"]["worst_actual"] == pytest.approx(3.5)
    assert r.outputs["moving_variance"]["worst_actual"] == pytest.approx(0.5)
    assert "is_training not passed" in " ".join(r.notes)
    np.testing.assert_allclose(fused.run(c)[0]["y"].values, [[-0.998002], [0.998002]], rtol=1e-5)


def test_fused_momentum_three_steps(fused):
    c = one(MOMENTUM.replace("float64", "float32"))
    r = evaluate(c, fused)
    # Moving means follow the momentum; moving variances take the unbiased batch variance
    # (n = 2: 2 and 8 instead of 1 and 4): 0.9 + 0.2 = 1.1, then 0.99 + 0.8 = 1.79.
    for key in ("step1.moving_mean", "step2.moving_mean", "step3.moving_mean"):
        assert r.outputs[key]["status"] == "pass", key
    out = fused.run(c)
    np.testing.assert_allclose([o["moving_variance"].values[0] for o in out], [1.1, 1.79, 1.79], rtol=1e-5)
    assert r.outputs["step3.y"]["worst_actual"] == pytest.approx(1.22 / np.sqrt(1.791), rel=1e-5)
    assert out[2]["moving_variance"].dtype == "float32"


def test_fused_float16_keeps_float32_statistics(fused):
    c = one(axes_case((0, 1, 2), var="").replace("dtype: float32", "dtype: float16\ntolerance: {condition_aware: true}"))
    out = fused.run(c)
    assert out[0]["y"].dtype == "float16"
    assert out[0]["moving_mean"].dtype == "float32"


# -- tf.nn: layer, RMS, group and instance norm written with tf.nn ops; gradients -------


def test_nn_layer_norm_by_hand(nn):
    # Rows [1, 3] (mean 2, var 1) and [2, 6] (mean 4, var 4) -> [-1, 1]; gamma [2, 1], beta [0, 1].
    text = """
id: ln
op: layer_norm
dtype: float32
attributes: {reduction_axes: -1, epsilon: 0.0}
params: {gamma: [2.0, 1.0], beta: [0.0, 1.0]}
inputs: {x: [[1.0, 3.0], [2.0, 6.0]]}
expected: {y: [[-2.0, 2.0], [-2.0, 2.0]]}
"""
    r = judge(nn, text)
    assert r.status == "pass", r.message
    assert "tf.nn.moments(x, [1], keepdims=True)" in " ".join(r.notes)
    # The same numbers with gamma/beta swapped must diverge: the test can fail.
    assert judge(nn, text.replace("[2.0, 1.0], beta: [0.0, 1.0]", "[1.0, 2.0], beta: [1.0, 0.0]")).status == "diverge"


def test_nn_layer_norm_params_on_other_axes_and_rms_scaling(nn):
    # Flax-style: normalized over [1, 2], gamma/beta on axis 2 only; rms_scaling divides by sqrt(mean(x^2)).
    r = judge(nn, """
id: ln-flax
op: layer_norm
dtype: float64
attributes: {reduction_axes: [1, 2], param_axes: [2], epsilon: 1.0e-5}
params: {gamma: [1.5, -0.5, 2.0], beta: [0.1, 0.2, 0.3]}
inputs: {x: {generate: normal, shape: [2, 4, 3], seed: 3}}
expected: reference
""")
    assert r.status == "pass", r.message
    r = judge(nn, """
id: ln-rms
op: layer_norm
dtype: float32
attributes: {reduction_axes: -1, epsilon: 0.0, rms_scaling: true, center: false}
inputs: {x: [[3.0, 4.0], [1.0, -1.0]]}
expected: {y: [[0.84852814, 1.1313708], [1.0, -1.0]]}
""")
    assert r.status == "pass", r.message


def test_nn_rms_norm_by_hand(nn):
    # mean(x^2) = 1 and 4: y = x and x / 2, times gamma [1, 2, 3, 4].
    r = judge(nn, """
id: rms
op: rms_norm
dtype: float32
attributes: {reduction_axes: -1, epsilon: 0.0}
params: {gamma: [1.0, 2.0, 3.0, 4.0]}
inputs: {x: [[1.0, 1.0, 1.0, 1.0], [2.0, -2.0, 2.0, -2.0]]}
expected: {y: [[1.0, 2.0, 3.0, 4.0], [1.0, -2.0, 3.0, -4.0]]}
""")
    assert r.status == "pass", r.message
    assert "in the input dtype" in " ".join(r.notes)


# Channels [0, 2, 10, 14], two groups. Contiguous {0, 2}, {10, 14}: y = [-1, 1, -1, 1];
# strided {0, 10}, {2, 14}: y = [-1, -1, 1, 1].
GROUPS = """
id: gn
op: group_norm
dtype: float32
attributes: {{feature_axes: 1, groups: 2, epsilon: 0.0}}
inputs: {{x: [[[0.0], [2.0], [10.0], [14.0]]]}}
expected: {{y: {y}}}
"""


def test_nn_group_norm_contiguous_groups(nn):
    r = judge(nn, GROUPS.format(y="[[[-1.0], [1.0], [-1.0], [1.0]]]"))
    assert r.status == "pass", r.message
    assert "x reshaped to [1, 2, 2, 1]" in " ".join(r.notes)
    r = judge(nn, GROUPS.format(y="[[[-1.0], [-1.0], [1.0], [1.0]]]"))  # strided numbers: diverge
    assert r.status == "diverge" and r.outputs["y"]["mismatches"] == 2


# Instance norm, 2 samples x 1 channel x 2 positions: instance means 1, 6 and variances 1, 4;
# tracked with momentum 0.5 from (0, 1): moving (0.5 * 3.5, 0.5 + 0.5 * 2.5) = (1.75, 1.75).
INSTANCE = """
id: in
op: instance_norm
dtype: float32
attributes: {feature_axes: 1, epsilon: 0.0, track_running_stats: true, momentum: 0.5}
steps:
  - mode: training
    inputs: {x: [[[0.0, 2.0]], [[4.0, 8.0]]]}
    expected: {y: [[[-1.0, 1.0]], [[-1.0, 1.0]]], moving_mean: [1.75], moving_variance: [1.75]}
  - mode: inference
    inputs: {x: [[[1.75, 3.5]]]}
    expected: {y: [[[0.0, 1.3228757]]], moving_mean: [1.75], moving_variance: [1.75]}
"""


def test_nn_instance_norm_tracked(nn):
    r = judge(nn, INSTANCE)
    assert r.status == "pass", r.message
    assert "averaged over the batch" in " ".join(r.notes)
    # cumulative: the first training step replaces the state -> (3.5, 2.5), not (1.75, 1.75)
    r = judge(nn, INSTANCE.replace("momentum: 0.5", "momentum: cumulative"))
    assert r.status == "diverge" and r.outputs["step1.moving_mean"]["worst_actual"] == pytest.approx(3.5)


@pytest.mark.parametrize("op,attrs", [
    ("layer_norm", "reduction_axes: -1"),
    ("rms_norm", "reduction_axes: -1"),
    ("group_norm", "feature_axes: -1, groups: 2"),
    ("instance_norm", "feature_axes: -1"),
])
def test_nn_hand_written_ops_have_no_default_epsilon(nn, op, attrs):
    r = judge(nn, f"""
id: d
op: {op}
attributes: {{{attrs}, epsilon: {{framework_default: 1.0e-5}}}}
{"mode: training" if op == "instance_norm" else ""}
inputs: {{x: {{generate: normal, shape: [2, 3, 4], seed: 1}}}}
expected: reference
""")
    assert r.status == "unsupported"
    assert r.message == f"a hand-written {op} with tf.nn ops has no default epsilon (the user must write one)"


GRADIENT = """
id: grad
op: {op}
dtype: {dtype}
attributes: {{{attrs}}}
params: {params}
{mode}
inputs:
  x: {{generate: normal, shape: [4, 6], seed: 7, loc: 0.5}}
  dy: {{generate: normal, shape: [4, 6], seed: 8}}
expected: reference
"""
GAMMA_BETA_6 = ("{gamma: {generate: uniform, shape: [6], seed: 9, low: 0.5, high: 2.0}, "
                "beta: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}")
GRADIENT_OPS = [
    ("batch_norm", "feature_axes: -1, epsilon: 0.001, momentum: 0.9", GAMMA_BETA_6, "mode: training"),
    ("batch_norm", "feature_axes: -1, epsilon: 0.001", GAMMA_BETA_6, "mode: inference"),
    ("layer_norm", "reduction_axes: -1, epsilon: 0.001", GAMMA_BETA_6, ""),
    ("rms_norm", "reduction_axes: -1, epsilon: 1.0e-6", "{gamma: {generate: uniform, shape: [6], seed: 9}}", ""),
    ("group_norm", "feature_axes: 1, groups: 3, epsilon: 0.001", GAMMA_BETA_6, ""),
]


@pytest.mark.parametrize("op,attrs,params,mode", GRADIENT_OPS)
def test_nn_gradients_with_gradient_tape(nn, op, attrs, params, mode):
    c = one(GRADIENT.format(op=op, dtype="float64", attrs=attrs, params=params, mode=mode))
    r = evaluate(c, nn)
    assert r.status == "pass", r.message
    for name in ("dx", "dgamma") + (("dbeta",) if op != "rms_norm" else ()):
        assert r.outputs[name]["status"] == "pass" and r.outputs[name]["max_abs_error"] < 1e-10, name
    assert "tf.GradientTape" in " ".join(r.notes)
    (out,) = nn.run(c)
    assert out["dgamma"].values.shape == (6,) and out["dx"].values.shape == (4, 6)


def test_nn_gradient_of_instance_norm_in_float32(nn):
    r = judge(nn, """
id: g
op: instance_norm
dtype: float32
attributes: {feature_axes: 1, affine: true, epsilon: 1.0e-5}
params: {gamma: [1.5, -0.5], beta: [0.0, 1.0]}
mode: training
inputs: {x: {generate: normal, shape: [2, 2, 5], seed: 3}, dy: {generate: normal, shape: [2, 2, 5], seed: 4}}
expected: reference
""")
    assert r.status == "pass", r.message
    assert r.outputs["dgamma"]["actual_dtype"] == "float32"


# -- tf.nn: batch-norm knobs ---------------------------------------------------------------

CUMULATIVE = """
id: cma
op: batch_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, momentum: cumulative}
state: {moving_mean: [5.0], moving_variance: [7.0]}
steps:
  - mode: training
    inputs: {x: [[0.0], [2.0]]}
    expected: {moving_mean: [1.0], moving_variance: [1.0]}
  - mode: training
    inputs: {x: [[4.0], [8.0]]}
    expected: {moving_mean: [3.5], moving_variance: [2.5]}
"""

UNTRACKED = """
id: untracked
op: batch_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, track_running_stats: false}
mode: inference
inputs: {x: [[0.0], [2.0], [4.0], [6.0]]}
expected: {y: reference, batch_mean: [3.0], batch_variance: [5.0]}
"""

FROZEN = """
id: frozen
op: batch_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, trainable: false}
state: {moving_mean: [1.0], moving_variance: [4.0]}
mode: training
inputs: {x: [[3.0], [5.0]]}
expected: {y: [[1.0], [2.0]], moving_mean: [1.0], moving_variance: [4.0]}
"""


def test_nn_knobs(nn):
    r = judge(nn, CUMULATIVE)
    assert r.status == "pass", r.message
    assert "cumulative average" in " ".join(r.notes)
    r = judge(nn, UNTRACKED)
    assert r.status == "pass", r.message
    assert "no moving statistics" in " ".join(r.notes)
    r = judge(nn, FROZEN)
    assert r.status == "unsupported" and "trainable=False" in r.message and "compensation" in r.message


def test_fused_knobs(fused):
    # cumulative -> exponential_avg_factor 1/t: the means follow; the variances are Bessel-corrected
    # (n = 2): 2, then (2 + 8) / 2 = 5 instead of 1 and 2.5.
    c = one(CUMULATIVE)
    r = evaluate(c, fused)
    assert r.outputs["step1.moving_mean"]["status"] == "pass" and r.outputs["step2.moving_mean"]["status"] == "pass"
    out = fused.run(c)
    np.testing.assert_allclose([o["moving_variance"].values[0] for o in out], [2.0, 5.0], rtol=1e-6)
    assert "1/t" in " ".join(fused.notes)
    # untracked: is_training=True in inference too; y and the mean are right, the variance is 20/3.
    r = judge(fused, UNTRACKED)
    assert r.status == "diverge"
    assert [k for k, v in r.outputs.items() if v["status"] == "diverge"] == ["batch_variance"]
    assert r.outputs["batch_variance"]["worst_actual"] == pytest.approx(20 / 3, rel=1e-6)
    assert "moving_mean" not in fused.run(one(UNTRACKED))[0]
    r = judge(fused, FROZEN)
    assert r.status == "unsupported" and "is_training=False instead would be compensation" in r.message


def test_fused_gradients(fused):
    # The kernel's own gradient (FusedBatchNormGradV3) through the (reduced, 1, 1, kept) layout.
    c = one(GRADIENT.format(op="batch_norm", dtype="float32", attrs="feature_axes: -1, epsilon: 0.001",
                            params=GAMMA_BETA_6, mode="mode: training"))
    r = evaluate(c, fused)
    for name in ("y", "dx", "dgamma", "dbeta"):
        assert r.outputs[name]["status"] == "pass", name
    assert r.outputs["moving_variance"]["status"] == "diverge"  # Bessel, as always
    assert "reshaped to NHWC [4, 1, 1, 6]" in " ".join(r.notes)


@pytest.mark.parametrize("op,attrs", [
    ("layer_norm", "reduction_axes: -1"),
    ("rms_norm", "reduction_axes: -1"),
    ("group_norm", "feature_axes: 1, groups: 2"),
    ("instance_norm", "feature_axes: 1"),
])
def test_fused_is_batch_norm_only(fused, op, attrs):
    r = judge(fused, f"""
id: only-bn
op: {op}
attributes: {{{attrs}, epsilon: 0.001}}
{"mode: training" if op == "instance_norm" else ""}
inputs: {{x: {{generate: normal, shape: [2, 4, 3], seed: 1}}}}
expected: reference
""")
    assert r.status == "unsupported"
    assert r.message.startswith("tf.nn.fused is tf.compat.v1.nn.fused_batch_norm, a batch-norm kernel")
    assert op in r.message


def test_fused_batch_norm_has_no_python_epsilon_floor():
    # TF removed fused_batch_norm's min_epsilon = 1.001e-5 (tensorflow#37768); tf_keras's
    # LayerNormalization still avoids the fused path below it, citing the old floor.
    import inspect

    import tensorflow as tf

    source = inspect.getsource(tf.compat.v1.nn.fused_batch_norm)
    assert "1.001e-5" not in source and "min_epsilon" not in source


def test_nn_half_precision_statistics_and_affine(nn):
    # Mean 100, std 1: tf.nn.moments returns float16 statistics and tf.nn.batch_normalization's
    # x * inv + (beta - mean * inv) runs in float16, so y misses by whole float16 steps (canonical: float32).
    text = """
id: half
op: layer_norm
dtype: float16
attributes: {reduction_axes: -1, epsilon: 1.0e-5}
inputs: {x: {generate: normal, shape: [4, 64], seed: 353, loc: 100.0}}
expected: reference
"""
    r = judge(nn, text)
    assert r.status == "diverge" and r.outputs["y"]["max_abs_error"] > 0.01
    # The same rows around 0 lose only the last bit or so: it is the half-precision arithmetic at mean 100.
    near_zero = judge(nn, text.replace("loc: 100.0", "loc: 0.0"))
    assert near_zero.outputs["y"]["max_abs_error"] < r.outputs["y"]["max_abs_error"] / 10


def test_nn_moments_bfloat16_scalar(nn):
    # np.asarray() of a 0-d bfloat16 tensor raises; the adapter goes through .numpy().
    text = """
id: m
op: moments
dtype: bfloat16
attributes: {reduction_axes: [0, 1], keepdims: false}
inputs: {x: [[1.0, 2.0], [3.0, 6.0]]}
expected: {mean: 3.0, variance: 3.5}
"""
    r = judge(nn, text)
    assert r.status == "pass", r.message
    assert r.outputs["mean"]["actual_dtype"] == "bfloat16" and r.outputs["mean"]["actual_shape"] == []
