"""The JAX adapters (jax.numpy formula, flax.linen, flax.nnx) against the real JAX/Flax."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")

from adapters.jax_adapter import FlaxLinenAdapter, FlaxNNXAdapter, JaxNumpyAdapter  # noqa: E402
from conformance.evaluate import evaluate, judge  # noqa: E402
from .helpers import one, make, raw, run  # noqa: E402

ALL = [JaxNumpyAdapter, FlaxLinenAdapter, FlaxNNXAdapter]
FLAX = [FlaxLinenAdapter, FlaxNNXAdapter]
EACH = pytest.mark.parametrize("adapter_cls", ALL, ids=lambda a: a.name)
EACH_FLAX = pytest.mark.parametrize("adapter_cls", FLAX, ids=lambda a: a.name)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def layout_case(shape, axes, *, key="feature_axes", dtype="float32", steps=("training", "training", "inference")):
    """A case with random gamma/beta/state, several steps, expected from the reference."""
    ndim = len(shape)
    axes_list = [axes] if isinstance(axes, int) else list(axes)
    norm = {a % ndim for a in axes_list}
    kept = sorted(norm) if key == "feature_axes" else [a for a in range(ndim) if a not in norm]
    feature = [shape[a] for a in kept]
    step_text = "".join(f"""
  - mode: {mode}
    inputs: {{x: {{generate: normal, shape: {list(shape)}, seed: {10 + i}, loc: 0.5, scale: 2.0}}}}
    expected: reference""" for i, mode in enumerate(steps))
    return one(f"""
id: jax/layout
op: batch_norm
source: test
dtype: {dtype}
attributes:
  {key}: {axes_list}
  epsilon: 1.0e-3
  momentum: 0.9
params:
  gamma: {{generate: uniform, shape: {feature}, low: 0.5, high: 2.0, seed: 1}}
  beta: {{generate: normal, shape: {feature}, seed: 2}}
state:
  moving_mean: {{generate: normal, shape: {feature}, seed: 3}}
  moving_variance: {{generate: uniform, shape: {feature}, low: 0.5, high: 2.0, seed: 4}}
steps:{step_text}
""")


# -- axes ---------------------------------------------------------------------------------


@EACH
@pytest.mark.parametrize("shape,axes,key", [
    ((4, 3), -1, "feature_axes"),              # dense, channels last
    ((2, 3, 3, 4), -1, "feature_axes"),        # NHWC
    ((2, 4, 3, 3), 1, "feature_axes"),         # NCHW: channels first
    ((3, 2, 4, 2), [1, 2], "feature_axes"),    # two kept axes
    ((3, 2, 4, 2), [0, 2], "reduction_axes"),  # the same written as reduced axes (kept 1, 3)
], ids=["dense", "nhwc", "nchw", "multi-kept", "multi-reduced"])
def test_axes_pass_in_float32(adapter_cls, shape, axes, key):
    case = layout_case(shape, axes, key=key, steps=("training", "inference"))
    produced = raw(case, adapter_cls)
    _, status, message = judge(case, produced)
    assert status == "pass", message
    assert produced[0]["y"].values.shape == shape
    assert produced[-1]["moving_mean"].values.shape == case.feature_shape


def test_linen_takes_a_tuple_axis_and_nnx_flattens():
    case = layout_case((3, 2, 4, 2), [1, 2])
    linen, nnx = make(FlaxLinenAdapter), make(FlaxNNXAdapter)
    a, b = linen.run(case), nnx.run(case)
    assert any("axis=(1, 2)" in n for n in linen.notes)
    assert any("flattened into one axis of 8 features" in n for n in nnx.notes)
    np.testing.assert_allclose(a[0]["y"].values, b[0]["y"].values, rtol=1e-6, atol=1e-6)


def test_axes_are_really_used():
    """Kept axis 1 vs kept axis -1 on the same input give different results (the test can fail)."""
    last, first = layout_case((3, 3, 3), -1), layout_case((3, 3, 3), 1)
    for cls in ALL:
        assert not np.allclose(raw(last, cls)[0]["y"].values, raw(first, cls)[0]["y"].values)
        # and each must match its own reference, not the other's
        first.steps[0].expected = last.steps[0].expected
        assert run(first, cls).status == "diverge"
        first = layout_case((3, 3, 3), 1)


# -- momentum over several steps, train then inference on one layer -------------------------

#: x = [[1], [3]]: batch mean 2, biased variance 1. Momentum 0.8 (weight of the OLD value):
#: moving_mean 0 -> 0.4 -> 0.72; moving_variance 1 -> 1 -> 1. Step 3 (inference) normalizes
#: [[1], [3]] with (0.72, 1): (x - 0.72) / sqrt(1 + 0.01).
HAND = """
id: jax/momentum-by-hand
op: batch_norm
source: hand-computed
dtype: float64
attributes: {feature_axes: -1, epsilon: 0.01, momentum: 0.8, center: false, scale: false}
steps:
  - mode: training
    inputs: {x: [[1.0], [3.0]]}
    expected:
      y: [[-0.99503719], [0.99503719]]
      moving_mean: [0.4]
      moving_variance: [1.0]
  - mode: training
    inputs: {x: [[1.0], [3.0]]}
    expected:
      moving_mean: [0.72]
      moving_variance: [1.0]
  - mode: inference
    inputs: {x: [[1.0], [3.0]]}
    expected:
      y: [[0.27861041], [2.26868479]]
      moving_mean: [0.72]
      moving_variance: [1.0]
"""


@EACH
def test_momentum_three_steps_then_inference(adapter_cls):
    result = run(one(HAND), adapter_cls)
    assert all(o["mismatches"] == 0 for o in result.outputs.values()), result.message
    assert result.outputs["step3.y"]["max_abs_error"] < 1e-7
    if adapter_cls is FlaxNNXAdapter:
        # nnx writes float64 statistics back into its float32 BatchStat variables
        assert result.status == "diverge"
        assert all("dtype float32, expected float64" in part for part in result.message.split("; "))
    else:
        assert result.status == "pass", result.message


@EACH
def test_momentum_in_the_torch_sense_would_diverge(adapter_cls):
    """Expected values computed with momentum = weight of the NEW value (0.8) must not pass."""
    text = HAND.replace("moving_mean: [0.4]", "moving_mean: [1.6]").replace("moving_mean: [0.72]", "moving_mean: [1.92]")
    result = run(one(text), adapter_cls)
    assert result.status == "diverge"
    assert result.outputs["step1.moving_mean"]["worst_actual"] == pytest.approx(0.4, abs=1e-6)


def test_flax_momentum_note():
    adapter = make(FlaxLinenAdapter)
    adapter.run(one(HAND))
    assert any("momentum 0.8 -> Flax momentum 0.8" in n for n in adapter.notes)


# -- epsilon ------------------------------------------------------------------------------

#: Keras's seed: two samples [[3], [4]] (mean 3.5, variance 0.25), no gamma/beta.
#: y = +-0.5 / sqrt(0.25 + eps): 0.998006 with Keras's eps 1e-3, 0.99998 with Flax's 1e-5.
EPS_CASE = """
id: jax/epsilon
op: batch_norm
source: test
dtype: float32
attributes:
  feature_axes: -1
  epsilon: {eps}
  momentum: 0.99
  center: false
  scale: false
mode: training
inputs: {{x: [[3.0], [4.0]]}}
expected: reference
"""


@EACH
def test_explicit_epsilon(adapter_cls):
    assert run(one(EPS_CASE.format(eps=0.1)), adapter_cls).status == "pass"
    y = raw(one(EPS_CASE.format(eps=0.1)), adapter_cls)[0]["y"].values
    np.testing.assert_allclose(y.ravel(), [-0.5 / math.sqrt(0.35), 0.5 / math.sqrt(0.35)], rtol=1e-6)


@EACH_FLAX
def test_flax_default_epsilon_is_1e_5(adapter_cls):
    assert run(one(EPS_CASE.format(eps="{framework_default: 1.0e-5}")), adapter_cls).status == "pass"
    keras = run(one(EPS_CASE.format(eps="{framework_default: 1.0e-3}")), adapter_cls)
    assert keras.status == "diverge"
    assert "y:" in keras.message and "moving" not in keras.message
    got = keras.outputs["y"]
    assert abs(got["worst_actual"]) == pytest.approx(0.5 / math.sqrt(0.25 + 1e-5), abs=2e-6)
    assert abs(got["worst_expected"]) == pytest.approx(0.5 / math.sqrt(0.25 + 1e-3), abs=2e-6)
    assert got["max_abs_error"] == pytest.approx(0.5 / math.sqrt(0.25 + 1e-5) - 0.5 / math.sqrt(0.251), rel=1e-3)


def test_jax_numpy_has_no_defaults():
    eps_default = run(one(EPS_CASE.format(eps="{framework_default: 1.0e-3}")), JaxNumpyAdapter)
    assert eps_default.status == "unsupported" and "epsilon" in eps_default.message
    mom_default = one(EPS_CASE.format(eps=0.1).replace("momentum: 0.99", "momentum: {framework_default: 0.99}"))
    result = run(mom_default, JaxNumpyAdapter)
    assert result.status == "unsupported" and "momentum" in result.message
    # momentum is not needed in inference, so leaving it to "the framework" is harmless there
    infer = one(EPS_CASE.format(eps=0.1).replace("momentum: 0.99", "momentum: {framework_default: 0.99}")
                .replace("mode: training", "mode: inference"))
    assert run(infer, JaxNumpyAdapter).status == "pass"
    mode_default = one(EPS_CASE.format(eps=0.1).replace("mode: training", "mode: {framework_default: training}"))
    result = run(mode_default, JaxNumpyAdapter)
    assert result.status == "unsupported" and "mode" in result.message


def test_flax_default_momentum_is_0_99():
    case = one(EPS_CASE.format(eps=0.1).replace("momentum: 0.99", "momentum: {framework_default: 0.99}"))
    for cls in FLAX:
        result = run(case, cls)
        assert result.status == "pass", result.message
        # moving_mean = 0.99 * 0 + 0.01 * 3.5
        assert result.outputs["moving_mean"]["worst_actual"] == pytest.approx(0.035, rel=1e-6)


# -- mode left to the framework -------------------------------------------------------------

DEFAULT_MODE = """
id: jax/default-mode
op: batch_norm
source: test
dtype: float32
attributes: {{feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9, center: false, scale: false}}
mode: {{framework_default: {mode}}}
inputs: {{x: [[3.0, 4.0], [5.0, 8.0]]}}
expected: reference
"""


def test_linen_without_use_running_average_raises_error():
    """linen has no default mode: a user who omits use_running_average gets a ValueError."""
    result = run(one(DEFAULT_MODE.format(mode="inference")), FlaxLinenAdapter)
    assert result.status == "error"
    assert "ValueError" in result.message and "use_running_average" in result.message


def test_nnx_defaults_to_training():
    """nnx.BatchNorm(use_running_average=False) by default: a Keras-style expectation diverges."""
    assert run(one(DEFAULT_MODE.format(mode="training")), FlaxNNXAdapter).status == "pass"
    keras_like = run(one(DEFAULT_MODE.format(mode="inference")), FlaxNNXAdapter)
    assert keras_like.status == "diverge"
    assert "moving_mean" in keras_like.message  # the statistics moved: a training step ran
    assert keras_like.outputs["moving_mean"]["worst_actual"] == pytest.approx(0.1 * 6.0, rel=1e-6)


# -- errors -----------------------------------------------------------------------------------


class NativeTupleAxisNNX(FlaxNNXAdapter):
    """nnx.BatchNorm(axis=(1, 2)) as a user would write it, without flattening."""

    flatten_feature_axes = False


def test_nnx_tuple_axis_training_raises_error():
    case = layout_case((3, 2, 4, 2), [1, 2], steps=("training",))
    result = run(case, NativeTupleAxisNNX)
    assert result.status == "error"
    assert "ValueError" in result.message and "broadcasting" in result.message
    # in inference the native tuple axis works (the 1-D variables reshape to the kept axes)
    assert run(layout_case((3, 2, 4, 2), [1, 2], steps=("inference",)), NativeTupleAxisNNX).status == "pass"


# -- dtypes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_output_dtypes(dtype):
    case = layout_case((4, 3), -1, dtype=dtype, steps=("inference", "training"))
    half = dtype in ("float16", "bfloat16")
    jnp_out = raw(case, JaxNumpyAdapter)
    assert jnp_out[1]["y"].dtype == dtype
    stat = "float32" if half else dtype
    assert {jnp_out[1][k].dtype for k in ("moving_mean", "moving_variance", "batch_mean", "batch_variance")} == {stat}
    for cls in FLAX:
        out = raw(case, cls)
        assert out[0]["y"].dtype == out[1]["y"].dtype == dtype
        # Flax's batch_stats are float32 (init) and its statistics at least float32; a float64
        # update stays float64 in linen but is written back into nnx's float32 variable.
        stats = "float64" if (dtype == "float64" and cls is FlaxLinenAdapter) else "float32"
        for o in out:
            assert o["moving_mean"].dtype == o["moving_variance"].dtype == stats, cls.name


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_training_passes_with_float32_statistics(dtype):
    case = layout_case((6, 3), -1, dtype=dtype, steps=("training", "training"))
    for cls in ALL:
        result = run(case, cls)
        assert result.status == "pass", (cls.name, result.message)
    # a case expecting float16 statistics diverges on their dtype only
    text = """
id: jax/f16-stats
op: batch_norm
source: test
dtype: float16
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9}
mode: training
inputs: {x: [[1.0, 2.0], [3.0, 7.0], [0.5, -1.0]]}
expected:
  y: reference
  moving_mean: {values: reference, dtype: float16}
"""
    for cls in ALL:
        result = run(one(text), cls)
        assert result.status == "diverge"
        assert result.message == "moving_mean: dtype float32, expected float16"


def test_nnx_half_precision_inference_runs_in_float16():
    """nnx promotes (x, mean, var, scale, bias) to dtype=float16 before normalizing with the
    moving statistics; linen keeps them float32. Same float16 case, different y."""
    case = layout_case((5, 3, 4, 2), [1, 2], dtype="float16", steps=("inference",))
    linen, nnx = run(case, FlaxLinenAdapter), run(case, FlaxNNXAdapter)
    assert linen.status == "pass", linen.message
    assert nnx.status == "diverge" and nnx.message.startswith("y:")
    assert nnx.outputs["y"]["max_ulp"] > 2 and linen.outputs["y"]["max_ulp"] <= 1
    # the float16 formula, done by hand, explains nnx's numbers
    x = case.steps[0].inputs["x"].astype(np.float16)
    shape = (1, 3, 4, 1)
    f16 = lambda a: np.asarray(a, np.float16).reshape(shape)  # noqa: E731
    mean, var = f16(case.state["moving_mean"]), f16(case.state["moving_variance"])
    gamma, beta = f16(case.params["gamma"]), f16(case.params["beta"])
    # nnx's order: mul = rsqrt(var + eps) * scale; y = (x - mean) * mul + bias, every op rounded to float16
    rsqrt = (1 / np.sqrt((var + np.float16(1e-3)).astype(np.float32))).astype(np.float16)
    by_hand = ((x - mean) * (rsqrt * gamma) + beta).astype(np.float64)
    got = raw(case, FlaxNNXAdapter)[0]["y"].values
    np.testing.assert_array_equal(got, by_hand)


def test_float64_linen_stats_stay_float64_but_nnx_stays_float32():
    case = layout_case((4, 3), -1, dtype="float64", steps=("inference", "training"))
    assert run(case, FlaxLinenAdapter).status == "pass"
    nnx = run(case, FlaxNNXAdapter)
    assert nnx.status == "diverge"
    assert "step1.moving_mean: dtype float32, expected float64" in nnx.message


# -- Flax's one-pass variance ---------------------------------------------------------------------

#: float32 input with mean 1e4 and spread ~1: E[x^2] - E[x]^2 loses everything in float32
#: (ulp(1e8) = 8), Flax clips the negative/zero result to 0 and then divides by sqrt(0 + eps).
BIG_MEAN = """
id: jax/big-mean
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9, center: false, scale: false}
tolerance: {condition_aware: true}
mode: training
inputs: {x: {generate: normal, shape: [64, 2], seed: 5, loc: 10000.0}}
expected: reference
"""


def test_flax_fast_variance_collapses_on_large_means():
    case = one(BIG_MEAN)
    assert run(case, JaxNumpyAdapter).status == "pass"  # the two-pass formula is fine
    for cls in FLAX:
        result = run(case, cls)
        assert result.status == "diverge"
        assert "moving_variance" in result.message and "y:" in result.message
        # the batch variance came out as 0: moving_variance = 0.9 * 1 + 0.1 * 0
        mv = raw(case, cls)[0]["moving_variance"].values
        np.testing.assert_allclose(mv, [0.9, 0.9], rtol=1e-6)
        assert result.outputs["y"]["max_abs_error"] > 10


# -- moments (jax.numpy only) --------------------------------------------------------------------------

MOMENTS = """
id: jax/moments
op: moments
source: test
dtype: {dtype}
attributes: {{reduction_axes: {axes}, keepdims: {keep}}}
inputs: {{x: {{generate: normal, shape: [3, 4, 5], seed: 7, loc: 1.0}}}}
expected: reference
"""


@pytest.mark.parametrize("axes", [[0], [0, 2], [1]])
@pytest.mark.parametrize("keep", ["true", "false"])
def test_moments(axes, keep):
    case = one(MOMENTS.format(dtype="float32", axes=axes, keep=keep))
    result = run(case, JaxNumpyAdapter)
    assert result.status == "pass", result.message
    out = raw(case, JaxNumpyAdapter)[0]
    assert out["mean"].values.shape == case.steps[0].expected["mean"].values.shape


def test_moments_variance_is_biased_and_dtype_kept():
    case = one("""
id: jax/moments-hand
op: moments
source: hand
dtype: float64
attributes: {reduction_axes: 0}
inputs: {x: [[1.0, 2.0], [3.0, 6.0]]}
expected: {mean: [2.0, 4.0], variance: [1.0, 4.0]}
""")
    assert run(case, JaxNumpyAdapter).status == "pass"
    out = raw(one(MOMENTS.format(dtype="bfloat16", axes=[0], keep="false")), JaxNumpyAdapter)[0]
    assert out["mean"].dtype == out["variance"].dtype == "bfloat16"


@EACH_FLAX
def test_flax_has_no_moments(adapter_cls):
    result = run(one(MOMENTS.format(dtype="float32", axes=[0], keep="false")), adapter_cls)
    assert result.status == "unsupported"
