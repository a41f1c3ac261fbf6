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


# -- layer, RMS, group and instance norm: forward and gradients --------------------------------

#: One canonical case per op, with dy: y, dx, dgamma (and dbeta) from the float64 reference.
OP_CASES = {
    "layer_norm": """
id: jax/ln
op: layer_norm
dtype: float32
attributes: {reduction_axes: [1, 2], param_axes: -1, epsilon: 1.0e-5}
params:
  gamma: [1.0, 2.0, 0.5, -1.0]
  beta: [0.0, 0.5, -0.5, 1.0]
inputs:
  x: {generate: normal, shape: [2, 3, 4], seed: 1, loc: 1.0}
  dy: {generate: normal, shape: [2, 3, 4], seed: 2}
expected: reference
""",
    "rms_norm": """
id: jax/rms
op: rms_norm
dtype: float32
attributes: {reduction_axes: [1, 2], epsilon: 1.0e-6}
params:
  gamma: {generate: uniform, shape: [3, 4], low: 0.5, high: 2.0, seed: 3}
inputs:
  x: {generate: normal, shape: [2, 3, 4], seed: 4}
  dy: {generate: normal, shape: [2, 3, 4], seed: 5}
expected: reference
""",
    "group_norm": """
id: jax/gn
op: group_norm
dtype: float32
attributes: {feature_axes: 1, groups: 2, epsilon: 1.0e-5}
params:
  gamma: [1.5, -0.5, 1.0, 2.0]
  beta: [0.0, 1.0, -1.0, 0.5]
inputs:
  x: {generate: normal, shape: [2, 4, 3], seed: 6, loc: 0.5, scale: 2.0}
  dy: {generate: normal, shape: [2, 4, 3], seed: 7}
expected: reference
""",
    "instance_norm": """
id: jax/in
op: instance_norm
dtype: float32
attributes: {feature_axes: 1, epsilon: 1.0e-5, affine: true}
params:
  gamma: [1.5, -0.5, 2.0]
  beta: [0.0, 1.0, -1.0]
mode: training
inputs:
  x: {generate: normal, shape: [2, 3, 5], seed: 8, loc: -1.0}
  dy: {generate: normal, shape: [2, 3, 5], seed: 9}
expected: reference
""",
}


@EACH
@pytest.mark.parametrize("op", sorted(OP_CASES))
def test_each_op_and_its_gradients_pass(adapter_cls, op):
    case = one(OP_CASES[op])
    produced = raw(case, adapter_cls)
    outputs, status, message = judge(case, produced)
    assert status == "pass", message
    wanted = {"y", "dx", "dgamma"} | ({"dbeta"} if op != "rms_norm" else set())
    assert set(outputs) == wanted and all(o["status"] == "pass" for o in outputs.values())
    assert produced[0]["dgamma"].values.shape == case.param_shape


#: By hand: x = [0, 1, 2] has mean 1, variance 2/3, xhat = [-1.2247449, 0, 1.2247449] (epsilon 0).
#: dy = [1, 0, 0], gamma = 1: dgamma = dy * xhat, dbeta = dy and
#: dx = (dy - mean(dy) - xhat * mean(dy * xhat)) / sigma = 1.2247449 * [1/6, -1/3, 1/6].
LN_BY_HAND = """
id: jax/ln-grad-by-hand
op: layer_norm
source: hand-computed
dtype: float64
attributes: {reduction_axes: -1, epsilon: 0.0}
params: {gamma: [1.0, 1.0, 1.0], beta: [0.0, 0.0, 0.0]}
inputs:
  x: [[0.0, 1.0, 2.0]]
  dy: [[1.0, 0.0, 0.0]]
expected:
  dx: [[0.20412414523193154, -0.4082482904638631, 0.20412414523193154]]
  dgamma: [-1.224744871391589, 0.0, 0.0]
  dbeta: [1.0, 0.0, 0.0]
"""


@EACH
def test_layer_norm_gradient_by_hand(adapter_cls):
    result = run(one(LN_BY_HAND), adapter_cls)
    assert result.status == "pass", result.message
    # a gradient that ignored the statistics (dx = dy / sigma) must fail
    wrong = LN_BY_HAND.replace("dx: [[0.20412414523193154, -0.4082482904638631, 0.20412414523193154]]",
                               "dx: [[1.224744871391589, 0.0, 0.0]]")
    bad = run(one(wrong), adapter_cls)
    assert bad.status == "diverge" and bad.message.startswith("dx:")
    assert bad.outputs["dx"]["max_abs_error"] == pytest.approx(1.224744871391589 - 0.20412414523193154, rel=1e-9)


@EACH
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_gradients_keep_the_dtype(adapter_cls, dtype):
    case = one(OP_CASES["layer_norm"].replace("dtype: float32", f"dtype: {dtype}"))
    out = raw(case, adapter_cls)[0]
    assert {out[k].dtype for k in ("y", "dx", "dgamma", "dbeta")} == {dtype}
    result = evaluate(case, make(adapter_cls))
    assert all(result.outputs[k]["status"] == "pass" for k in ("y", "dgamma", "dbeta")), result.message
    if adapter_cls is JaxNumpyAdapter:  # Flax's dx: see the next test
        assert result.status == "pass", result.message
        assert result.outputs["dx"]["max_ulp"] <= 1


@EACH_FLAX
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_flax_half_dx_adds_two_half_partial_gradients(adapter_cls, dtype):
    """x enters Flax's LayerNorm twice (the float32 statistics and ``x - mean``), each through its
    own float16 -> float32 convert; the two partial gradients come back as float16 and are added in
    float16, so large, cancelling terms leave dx several ulps off. jax.numpy converts x once."""
    import jax
    import jax.numpy as jnp

    case = one(OP_CASES["layer_norm"].replace("dtype: float32", f"dtype: {dtype}"))
    result = run(case, adapter_cls)
    assert result.status == "diverge" and result.message.startswith("dx:"), result.message
    assert result.outputs["dx"]["max_ulp"] > 2
    if dtype == "bfloat16":
        return
    # the same module fed x already in float32 (one convert, float32 accumulation) is within 1 ulp
    from flax import linen as nn

    module = nn.LayerNorm(reduction_axes=(1, 2), feature_axes=-1, epsilon=1e-5, dtype=jnp.float16,
                          param_dtype=jnp.float16)
    x = jnp.asarray(case.steps[0].inputs["x"], jnp.float16)
    variables = {"params": {"scale": jnp.asarray(case.params["gamma"], jnp.float16),
                            "bias": jnp.asarray(case.params["beta"], jnp.float16)}}
    _, vjp = jax.vjp(lambda x32: module.apply(variables, x32).astype(jnp.float16), x.astype(jnp.float32))
    dx32 = np.asarray(vjp(jnp.asarray(case.steps[0].inputs["dy"], jnp.float16))[0].astype(jnp.float16))
    expected = case.steps[0].expected["dx"].values
    ulp = np.spacing(np.abs(expected).astype(np.float16)).astype(np.float64)
    assert np.max(np.abs(dx32 - expected) / ulp) <= 1.5


def test_group_norm_groups_are_consecutive_channels_on_every_layout():
    """Channels first and channels last; the contiguous split passes, a strided expectation diverges."""
    text = """
id: jax/gn-hand
op: group_norm
source: "by hand: groups {0, 1} and {2, 3}; [1, 3] -> [-1, 1], [2, 6] -> [-1, 1] (epsilon 0)"
dtype: float32
attributes: {feature_axes: AXIS, groups: 2, epsilon: 0.0}
inputs: {x: X}
expected: {y: Y}
"""
    for axis, x, y in ((1, [[1.0, 3.0, 2.0, 6.0]], [[-1.0, 1.0, -1.0, 1.0]]),
                       (1, [[[1.0], [3.0], [2.0], [6.0]]], [[[-1.0], [1.0], [-1.0], [1.0]]]),
                       (-1, [[[1.0, 3.0, 2.0, 6.0]]], [[[-1.0, 1.0, -1.0, 1.0]]])):
        case_text = text.replace("AXIS", str(axis)).replace("X}", f"{x}}}").replace("Y}", f"{y}}}")
        for cls in ALL:
            assert run(one(case_text), cls).status == "pass", (cls.name, axis)
    strided = text.replace("AXIS", "1").replace("X}", "[[1.0, 2.0, 3.0, 6.0]]}").replace(
        "Y}", "[[-1.0, -1.0, 1.0, 1.0]]}")
    for cls in ALL:
        assert run(one(strided), cls).status == "diverge"


# -- Flax's defaults and one-pass variance on the new ops ------------------------------------------

DEFAULT_EPS = """
id: jax/default-eps
op: {op}
dtype: float32
attributes: {{{axes}, epsilon: {{framework_default: {eps}}}}}
mode: training
inputs:
  x: {{generate: normal, shape: [3, 4, 2], seed: 11, scale: 0.01}}
expected: reference
"""
AXES = {"layer_norm": "reduction_axes: -1", "rms_norm": "reduction_axes: -1",
        "group_norm": "feature_axes: -1, groups: 1", "instance_norm": "feature_axes: -1"}


def default_eps_case(op, eps):
    text = DEFAULT_EPS.format(op=op, axes=AXES[op], eps=eps)
    return one(text if op == "instance_norm" else text.replace("mode: training\n", ""))


@EACH_FLAX
@pytest.mark.parametrize("op", sorted(AXES))
def test_flax_default_epsilon_is_1e_6(adapter_cls, op):
    """Small inputs (std 0.01, variance 1e-4) make epsilon visible: 1e-6 passes, Keras's 1e-3 does not."""
    assert run(default_eps_case(op, "1.0e-6"), adapter_cls).status == "pass"
    keras = run(default_eps_case(op, "1.0e-3"), adapter_cls)
    assert keras.status == "diverge"
    assert keras.diagnosis["matches"][0]["variants"] == ["epsilon-1e-6"], keras.diagnosis["summary"]


def test_jax_numpy_has_no_default_epsilon_or_affine():
    result = run(default_eps_case("layer_norm", "1.0e-6"), JaxNumpyAdapter)
    assert result.status == "unsupported" and "default epsilon" in result.message
    text = OP_CASES["instance_norm"].replace("affine: true", "affine: {framework_default: true}")
    result = run(one(text), JaxNumpyAdapter)
    assert result.status == "unsupported" and "default affine" in result.message


@EACH_FLAX
def test_flax_instance_norm_affine_default_is_on(adapter_cls):
    """affine left to Flax: scale/bias exist (1 and 0); the case gives none, the output is unchanged."""
    text = """
id: jax/in-affine-default
op: instance_norm
dtype: float32
attributes: {feature_axes: -1, epsilon: 1.0e-5, affine: {framework_default: false}}
mode: inference
inputs: {x: {generate: normal, shape: [2, 5, 3], seed: 12}}
expected: reference
"""
    adapter = make(adapter_cls)
    assert evaluate(one(text), adapter).status == "pass"
    assert any("affine left to Flax's default" in n for n in adapter.notes)


#: Rows with mean 1e4 and std 1 in float32: Flax's one-pass E[x^2] - E[x]^2 cancels (ulp(1e8) = 8)
#: and is clipped at 0, so y is (x - mean) / sqrt(var_garbage + eps): far off; jax.numpy's two-pass is fine.
LN_BIG_MEAN = """
id: jax/ln-big-mean
op: layer_norm
dtype: float32
attributes: {reduction_axes: -1, epsilon: 1.0e-5, center: false, scale: false}
inputs: {x: {generate: normal, shape: [4, 64], seed: 13, loc: 1.0e4}}
expected: reference
tolerance: {condition_aware: true}
"""


def test_flax_layer_norm_fast_variance_on_large_means():
    case = one(LN_BIG_MEAN)
    assert run(case, JaxNumpyAdapter).status == "pass"
    x = case.steps[0].inputs["x"].astype(np.float32)
    for cls in FLAX:
        result = run(case, cls)
        assert result.status == "diverge" and result.message.startswith("y:")
        assert result.outputs["y"]["max_abs_error"] > 1.0
        # Flax's own formula, by hand in float32: max(0, E[x^2] - E[x]^2) normalizes
        mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
        assert np.all(np.abs(raw(case, cls)[0]["y"].values) < np.abs(x - mean) / np.sqrt(1e-5) + 1)


# -- what Flax cannot express -------------------------------------------------------------------------

KNOB = """
id: jax/knob
op: batch_norm
dtype: float32
attributes: {{feature_axes: -1, epsilon: 0.0, {knob}}}
state: {{moving_mean: [1.0], moving_variance: [4.0]}}
mode: {mode}
inputs: {{x: [[3.0], [5.0]]}}
expected: {expected}
"""
KNOBS = {
    # batches [3, 5]: mean 4, variance 1; cumulative: the first batch replaces the state
    "momentum: cumulative": ("training", "{y: [[-1.0], [1.0]], moving_mean: [4.0], moving_variance: [1.0]}",
                             "no cumulative moving average"),
    "track_running_stats: false": ("inference", "{y: [[-1.0], [1.0]], batch_mean: [4.0], batch_variance: [1.0]}",
                                   "always keeps running statistics"),
    # frozen: (x - 1) / sqrt(4), state unchanged
    "trainable: false": ("training", "{y: [[1.0], [2.0]], moving_mean: [1.0], moving_variance: [4.0]}",
                         "has no trainable flag"),
}


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_batch_norm_knobs(knob):
    mode, expected, reason = KNOBS[knob]
    text = KNOB.format(knob=knob, mode=mode, expected=expected)
    if knob.startswith("track"):  # untracked: a state would be an error
        text = text.replace("state: {moving_mean: [1.0], moving_variance: [4.0]}\n", "")
    case = one(text)
    result = run(case, JaxNumpyAdapter)
    assert result.status == "pass", result.message
    for cls in FLAX:
        result = run(case, cls)
        assert result.status == "unsupported" and reason in result.message, (cls.name, result.message)


def test_jax_numpy_cumulative_average_over_three_steps():
    """batches [0, 2], [4, 8], [-2, 0]: cumulative means 1, 3.5, 2 (the initial 5 gets no weight)."""
    text = """
id: jax/cumulative
op: batch_norm
dtype: float64
attributes: {feature_axes: -1, epsilon: 0.0, momentum: cumulative}
state: {moving_mean: [5.0], moving_variance: [7.0]}
steps:
  - {mode: training, inputs: {x: [[0.0], [2.0]]}, expected: {moving_mean: [1.0], moving_variance: [1.0]}}
  - {mode: training, inputs: {x: [[4.0], [8.0]]}, expected: {moving_mean: [3.5], moving_variance: [2.5]}}
  - {mode: training, inputs: {x: [[-2.0], [0.0]]}, expected: {moving_mean: [2.0], moving_variance: [2.0]}}
"""
    assert run(one(text), JaxNumpyAdapter).status == "pass"
    # momentum 0.5 in place of the cumulative average would not
    assert run(one(text.replace("momentum: cumulative", "momentum: 0.5")), JaxNumpyAdapter).status == "diverge"


@EACH_FLAX
def test_flax_unsupported_layer_norm_rms_scaling_and_tracked_instance_norm(adapter_cls):
    rms = run(one("""
id: jax/rms-scaling
op: layer_norm
attributes: {reduction_axes: -1, epsilon: 0.0, rms_scaling: true}
inputs: {x: [[1.0, 3.0]]}
expected: {y: [[0.4472135954999579, 1.3416407864998738]]}
"""), adapter_cls)
    assert rms.status == "unsupported" and "no rms_scaling" in rms.message
    tracked = one(OP_CASES["instance_norm"].replace("affine: true", "affine: true, track_running_stats: true, momentum: 0.9"))
    result = run(tracked, adapter_cls)
    assert result.status == "unsupported" and "InstanceNorm has no running statistics" in result.message
    assert run(tracked, JaxNumpyAdapter).status == "pass"


def test_jax_numpy_tracked_instance_norm_then_inference():
    """x = [[[0, 2]], [[4, 8]]]: instance means 1, 6 (batch average 3.5), variances 1, 4 (2.5).
    Momentum 0.5 from (0, 1): moving (1.75, 1.75); inference normalizes with them."""
    text = """
id: jax/in-tracked
op: instance_norm
dtype: float64
attributes: {feature_axes: 1, epsilon: 0.0, track_running_stats: true, momentum: 0.5}
steps:
  - mode: training
    inputs: {x: [[[0.0, 2.0]], [[4.0, 8.0]]]}
    expected: {y: [[[-1.0, 1.0]], [[-1.0, 1.0]]], moving_mean: [1.75], moving_variance: [1.75]}
  - mode: inference
    inputs: {x: [[[1.75, 3.0]]]}
    expected: {y: [[[0.0, 0.944911182523068]]], moving_mean: [1.75], moving_variance: [1.75]}
"""
    assert run(one(text), JaxNumpyAdapter).status == "pass"


# -- batch norm gradients -----------------------------------------------------------------------------

BN_GRAD = """
id: jax/bn-grad
op: batch_norm
dtype: {dtype}
attributes: {{feature_axes: {axis}, epsilon: 1.0e-3, momentum: 0.9}}
params:
  gamma: {{generate: uniform, shape: [3], low: 0.5, high: 2.0, seed: 21}}
  beta: {{generate: normal, shape: [3], seed: 22}}
state:
  moving_mean: [0.5, -1.0, 0.0]
  moving_variance: [2.0, 0.25, 1.0]
steps:
  - mode: training
    inputs:
      x: {{generate: normal, shape: [4, 3, 2], seed: 23}}
      dy: {{generate: normal, shape: [4, 3, 2], seed: 24}}
    expected: reference
  - mode: inference
    inputs:
      x: {{generate: normal, shape: [4, 3, 2], seed: 25}}
      dy: {{generate: normal, shape: [4, 3, 2], seed: 26}}
    expected: reference
"""


@EACH
def test_batch_norm_gradients_training_then_inference(adapter_cls):
    """Training: through the batch statistics; inference: dx = dy * gamma / sqrt(moving_var + eps).
    The moving statistics updated under autodiff are carried to the inference step."""
    case = one(BN_GRAD.format(dtype="float32", axis=1))
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert {"step1.dx", "step1.dgamma", "step1.dbeta", "step2.dx", "step2.moving_mean"} <= set(result.outputs)


@EACH
def test_batch_norm_inference_gradient_ignores_the_batch(adapter_cls):
    case = one(BN_GRAD.format(dtype="float64", axis=1))
    out = raw(case, adapter_cls)[1]
    gamma = case.params["gamma"].reshape(1, 3, 1)
    mv = out["moving_variance"].values.reshape(1, 3, 1)
    dy = case.steps[1].inputs["dy"]
    np.testing.assert_allclose(out["dx"].values, dy * gamma / np.sqrt(mv + 1e-3), rtol=1e-6)


def test_linen_gradients_need_the_mode_too():
    text = BN_GRAD.format(dtype="float32", axis=1).replace("- mode: training", "- mode: {framework_default: training}")
    result = run(one(text), FlaxLinenAdapter)
    assert result.status == "error" and "use_running_average" in result.message


@EACH
def test_group_norm_empty_batch(adapter_cls):
    """(0, C, L): an empty y, not an error (the hand formula reshapes with explicit sizes, not -1)."""
    case = one("""
id: jax/gn-empty
op: group_norm
dtype: float32
attributes: {feature_axes: 1, groups: 2, epsilon: 1.0e-5}
inputs: {x: {generate: constant, shape: [0, 4, 3], value: 0.0}}
expected: reference
""")
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert raw(case, adapter_cls)[0]["y"].values.shape == (0, 4, 3)
