"""The PyTorch adapters (torch.functional, torch.nn) against the real torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adapters.torch_adapter import TorchFunctionalAdapter, TorchNNAdapter  # noqa: E402
from conformance.dtypes import round_to, ulp_distance  # noqa: E402
from .helpers import one, raw, run  # noqa: E402
from conformance.ops import batch_norm as bn_op  # noqa: E402
from conformance.reference import CANONICAL  # noqa: E402

ADAPTERS = [TorchFunctionalAdapter, TorchNNAdapter]
BOTH = pytest.mark.parametrize("adapter_cls", ADAPTERS, ids=lambda a: a.name)

#: torch's running-variance convention: the unbiased batch variance goes into the moving average.
TORCH_CONV = CANONICAL.with_(moving_variance="unbiased")


def bn_case(shape, axes, *, mode="training", dtype="float64", expected="{y: reference, moving_mean: reference}",
            extra_attrs="", state=True, key="feature_axes"):
    feature = [shape[a] for a in ([axes] if isinstance(axes, int) else axes)] if key == "feature_axes" else None
    if feature is None:
        red = {a % len(shape) for a in axes}
        feature = [s for i, s in enumerate(shape) if i not in red]
    state_text = (f"""
state:
  moving_mean: {{generate: normal, shape: {feature}, seed: 3}}
  moving_variance: {{generate: uniform, shape: {feature}, low: 0.5, high: 2.0, seed: 4}}""" if state else "")
    return one(f"""
id: torch/layout
op: batch_norm
source: test
dtype: {dtype}
attributes:
  {key}: {list(axes) if not isinstance(axes, int) else axes}
  epsilon: 1.0e-3
  momentum: 0.9{extra_attrs}
params:
  gamma: {{generate: normal, shape: {feature}, seed: 1, loc: 1.0}}
  beta: {{generate: normal, shape: {feature}, seed: 2}}{state_text}
mode: {mode}
inputs:
  x: {{generate: normal, shape: {list(shape)}, seed: 0, loc: 0.5, scale: 2.0}}
expected: {expected}
""")


# -- axis translation -------------------------------------------------------------------

LAYOUTS = [
    pytest.param((6, 3), -1, "BatchNorm1d", id="2d-channels-last"),
    pytest.param((2, 3, 4, 5), -1, "BatchNorm2d", id="4d-channels-last"),
    pytest.param((2, 3, 4, 5), 1, "BatchNorm2d", id="4d-channels-first"),
    pytest.param((3, 2, 4, 2), [1, 2, 3], "BatchNorm1d", id="4d-kept-1-2-3"),
    pytest.param((2, 3, 2, 2), [0, 2, 3], "BatchNorm1d", id="4d-kept-0-2-3"),
    pytest.param((2, 3, 2, 2, 2), 1, "BatchNorm3d", id="5d-channels-first"),
    pytest.param((2, 2, 2, 2, 2, 3), -1, "BatchNorm1d", id="6d-channels-last"),
]


@BOTH
@pytest.mark.parametrize("shape,axes,module", LAYOUTS)
def test_layout_training(adapter_cls, shape, axes, module):
    case = bn_case(shape, axes)
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert result.outputs["y"]["max_abs_error"] < 1e-12
    if adapter_cls is TorchNNAdapter:
        assert any(f"nn.{module}(" in n for n in result.notes), result.notes
    # The moving variance is torch's: the unbiased batch variance, in the case's layout.
    (out,) = raw(case, adapter_cls)
    want = bn_op.reference(case, TORCH_CONV)[0]
    np.testing.assert_allclose(out["moving_variance"].values, want["moving_variance"], rtol=1e-12)
    assert out["moving_variance"].values.shape == case.feature_shape


@BOTH
@pytest.mark.parametrize("shape,axes,module", LAYOUTS)
def test_layout_inference_uses_state_in_case_layout(adapter_cls, shape, axes, module):
    case = bn_case(shape, axes, mode="inference", expected="reference")
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert result.outputs["moving_variance"]["max_abs_error"] == 0.0


@BOTH
def test_reduction_axes_spelling(adapter_cls):
    case = bn_case((2, 3, 4), [0, 2], key="reduction_axes")
    assert case.feature_axes == (1,)
    assert run(case, adapter_cls).status == "pass"


@BOTH
def test_flattened_channels_are_notes(adapter_cls):
    result = run(bn_case((2, 3, 2, 2), [0, 2, 3]), adapter_cls)
    assert any("kept axes [0, 2, 3] -> torch channel dim 1 (flattened, C=8); permute(1, 0, 2, 3)" in n
               for n in result.notes), result.notes


# -- momentum -----------------------------------------------------------------------------

MOMENTUM_CASE = """
id: torch/momentum-3-steps
op: batch_norm
source: test (hand-worked numbers in the test)
dtype: float64
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9, center: false, scale: false}
steps:
  - mode: training
    inputs: {x: [[1, 2], [3, 4], [5, 6], [7, 8]]}
    expected: {moving_mean: reference, moving_variance: reference}
  - mode: training
    inputs: {x: [[2, 4], [6, 8], [10, 12], [14, 16]]}
    expected: {moving_mean: reference, moving_variance: reference}
  - mode: training
    inputs: {x: [[-3, -2], [-1, 0], [1, 2], [3, 4]]}
    expected: {moving_mean: reference, moving_variance: reference}
"""


@BOTH
def test_momentum_converted_over_three_steps(adapter_cls):
    case = one(MOMENTUM_CASE)
    result = run(case, adapter_cls)
    assert "momentum 0.9 -> torch momentum 0.1 (weight of the new statistic)" in result.notes
    # moving_mean = 0.9 * old + 0.1 * batch_mean: [0.4, 0.5], [1.16, 1.45], [1.044, 1.405]
    for step, want in enumerate([[0.4, 0.5], [1.16, 1.45], [1.044, 1.405]], start=1):
        out = result.outputs[f"step{step}.moving_mean"]
        assert out["status"] == "pass", out
        assert out["actual_head"] == pytest.approx(want, abs=1e-12)
    # moving_variance diverges: torch feeds the UNBIASED batch variance (n/(n-1) = 4/3).
    # batch variances 5, 20, 5 (biased) vs 20/3, 80/3, 20/3 (unbiased)
    assert result.status == "diverge"
    canonical = [1.4, 3.26, 3.434]  # 0.9 * v + 0.1 * biased
    torch_like = [1.4 + 0.1 * 5 / 3, 0.9 * (1.4 + 0.5 / 3) + 0.1 * 80 / 3, None]
    torch_like[2] = 0.9 * torch_like[1] + 0.1 * 20 / 3  # 4.335666...
    for step in range(3):
        out = result.outputs[f"step{step + 1}.moving_variance"]
        assert out["status"] == "diverge"
        assert out["expected_head"] == pytest.approx([canonical[step]] * 2, abs=1e-12)
        assert out["actual_head"] == pytest.approx([torch_like[step]] * 2, abs=1e-12)
    assert result.outputs["step3.moving_variance"]["max_abs_error"] == pytest.approx(4.335666666666667 - 3.434)


@BOTH
def test_momentum_framework_default_is_torch_0_1(adapter_cls):
    # Keras's 0.99 assumed; torch's own default 0.1 weights the NEW statistic: 0.1 * 3.5 = 0.35 vs 0.035.
    case = one("""
id: torch/momentum-default
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: {framework_default: 0.99}, center: false, scale: false}
mode: training
inputs: {x: [[3.0], [4.0]]}
expected: {moving_mean: reference}
""")
    result = run(case, adapter_cls)
    assert result.status == "diverge"
    out = result.outputs["moving_mean"]
    assert out["expected_head"] == pytest.approx([0.035])
    assert out["actual_head"] == pytest.approx([0.35], rel=1e-6)
    assert any("momentum left to torch's default 0.1" in n for n in result.notes)


# -- epsilon ------------------------------------------------------------------------------

EPS_CASE = """
id: torch/epsilon
op: batch_norm
source: test
dtype: float64
attributes: {{feature_axes: -1, epsilon: {eps}, center: false, scale: false}}
mode: inference
inputs: {{x: [[3.0, 4.0]]}}
expected: {{y: reference}}
"""


@BOTH
def test_epsilon_explicit(adapter_cls):
    result = run(one(EPS_CASE.format(eps="0.5")), adapter_cls)
    assert result.status == "pass", result.message
    assert result.outputs["y"]["actual_head"] == pytest.approx([3 / math.sqrt(1.5), 4 / math.sqrt(1.5)], rel=1e-15)


@BOTH
def test_epsilon_framework_default_is_torch_1e_5(adapter_cls):
    result = run(one(EPS_CASE.format(eps="{framework_default: 1.0e-3}")), adapter_cls)
    assert result.status == "diverge"
    out = result.outputs["y"]
    assert out["expected_head"] == pytest.approx([3 / math.sqrt(1.001), 4 / math.sqrt(1.001)], rel=1e-15)
    assert out["actual_head"] == pytest.approx([3 / math.sqrt(1.00001), 4 / math.sqrt(1.00001)], rel=1e-15)
    assert out["max_abs_error"] == pytest.approx(4 / math.sqrt(1.00001) - 4 / math.sqrt(1.001), rel=1e-9)
    assert any("epsilon left to torch's default 1e-05" in n for n in result.notes)


# -- mode per step ------------------------------------------------------------------------

# Step 1 (training) moves the statistics to mean [0.4, 0.5] and torch's variance
# 0.9 + 0.1 * 20/3 = 1.5666..., step 2 (inference) must use them and leave them alone.
MV = 0.9 + 0.1 * 20 / 3
TRAIN_EVAL = f"""
id: torch/train-then-eval
op: batch_norm
source: test (step-2 numbers worked out by hand with torch's unbiased running variance)
dtype: float64
attributes: {{feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9}}
params: {{gamma: [2.0, 0.5], beta: [1.0, -1.0]}}
steps:
  - mode: training
    inputs: {{x: [[1, 2], [3, 4], [5, 6], [7, 8]]}}
    expected: {{y: reference, moving_mean: reference}}
  - mode: inference
    inputs: {{x: [[0, 0], [4, 5]]}}
    expected:
      y: [[{1 + 2 * (0 - 0.4) / math.sqrt(MV + 1e-3)!r}, {-1 + 0.5 * (0 - 0.5) / math.sqrt(MV + 1e-3)!r}],
          [{1 + 2 * (4 - 0.4) / math.sqrt(MV + 1e-3)!r}, {-1 + 0.5 * (5 - 0.5) / math.sqrt(MV + 1e-3)!r}]]
      moving_mean: [0.4, 0.5]
      moving_variance: [{MV!r}, {MV!r}]
"""


@BOTH
def test_training_then_inference_on_one_layer(adapter_cls):
    result = run(one(TRAIN_EVAL), adapter_cls)
    assert result.status == "pass", result.message
    assert result.outputs["step2.y"]["max_abs_error"] < 1e-12


@BOTH
def test_training_then_inference_against_canonical_reference(adapter_cls):
    # Same case with the canonical (biased) expectation: step 2 diverges only
    # because the moving variance carried from step 1 is the unbiased one.
    text = TRAIN_EVAL.split("    expected:\n      y:")[0] + "    expected: reference\n"
    result = run(one(text), adapter_cls)
    assert result.status == "diverge"
    assert result.outputs["step1.y"]["status"] == "pass"
    assert result.outputs["step2.moving_mean"]["status"] == "pass"
    assert result.outputs["step2.moving_variance"]["actual_head"] == pytest.approx([MV, MV])
    assert result.outputs["step2.moving_variance"]["expected_head"] == pytest.approx([1.4, 1.4])
    assert result.outputs["step2.y"]["status"] == "diverge"


MODE_DEFAULT = """
id: torch/mode-default
op: batch_norm
source: test
dtype: float64
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: 0.99, center: false, scale: false}
mode: {framework_default: inference}
inputs: {x: [[3.0], [4.0]]}
expected: {y: reference, moving_mean: reference}
"""


def test_mode_default_functional_is_inference():
    result = run(one(MODE_DEFAULT), TorchFunctionalAdapter)
    assert result.status == "pass", result.message
    assert result.outputs["y"]["actual_head"] == pytest.approx([3 / math.sqrt(1.001), 4 / math.sqrt(1.001)])
    assert any("no training= argument" in n for n in result.notes)


def test_mode_default_module_is_training():
    # A freshly built torch module is in training mode: it normalizes with the
    # batch (mean 3.5, variance 0.25) and moves its statistics.
    result = run(one(MODE_DEFAULT), TorchNNAdapter)
    assert result.status == "diverge"
    y = result.outputs["y"]
    assert y["expected_head"] == pytest.approx([3 / math.sqrt(1.001), 4 / math.sqrt(1.001)])
    assert y["actual_head"] == pytest.approx([-0.5 / math.sqrt(0.251), 0.5 / math.sqrt(0.251)], rel=1e-12)
    assert result.outputs["moving_mean"]["actual_head"] == pytest.approx([0.035])
    assert any("training=True at this call" in n for n in result.notes)


# -- center / scale -----------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("center,scale", [(True, False), (False, True), (False, False)])
def test_center_scale(adapter_cls, center, scale):
    params = "\n".join(filter(None, [
        "params:" if center or scale else "",
        "  gamma: [2.0, 0.5]" if scale else "",
        "  beta: [1.0, -1.0]" if center else "",
    ]))
    case = one(f"""
id: torch/affine
op: batch_norm
source: test
dtype: float64
attributes: {{feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9, center: {str(center).lower()}, scale: {str(scale).lower()}}}
{params}
mode: training
inputs: {{x: [[1, 2], [3, 5], [6, 4]]}}
expected: {{y: reference, moving_mean: reference}}
""")
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message


# -- dtypes -------------------------------------------------------------------------------


@BOTH
def test_float32(adapter_cls):
    case = bn_case((4, 3, 2, 3), -1, dtype="float32", expected="reference")
    result = run(case, adapter_cls)
    assert result.status == "diverge"  # only the moving variance (Bessel)
    assert [k for k, v in result.outputs.items() if v["status"] != "pass"] == ["moving_variance"]
    assert result.outputs["y"]["actual_dtype"] == "float32"


@BOTH
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes_keep_statistics_in_the_input_dtype(adapter_cls, dtype):
    # Everything in the case's dtype (module.to(dtype)): the running statistics
    # are float16/bfloat16, where the canonical statistics of a half input are float32.
    case = bn_case((4, 3, 2, 3), -1, dtype=dtype,
                   expected="{y: {values: reference, atol: 0.02}, moving_mean: {values: reference, atol: 0.02}}")
    result = run(case, adapter_cls)
    assert result.status == "diverge"
    assert result.outputs["y"]["status"] == "pass"
    assert result.outputs["y"]["actual_dtype"] == dtype
    mm = result.outputs["moving_mean"]
    assert (mm["expected_dtype"], mm["actual_dtype"]) == ("float32", dtype)
    assert mm["message"] == f"dtype {dtype}, expected float32"  # the values are within atol
    (out,) = raw(case, adapter_cls)
    assert out["moving_variance"].dtype == dtype


@BOTH
def test_float16_rounds_batch_mean_and_invstd_to_float16(adapter_cls):
    # With float16 weight/bias/running stats, torch 2.13 CPU normalizes with the batch
    # mean and 1/sqrt(var + eps) rounded to float16: y is 5 ulp off the reference here
    # (float32 stats with the same float16 input give the correctly rounded y).
    case = bn_case((4, 3, 2, 3), -1, dtype="float16", expected="{y: reference}")
    result = run(case, adapter_cls)
    assert result.status == "diverge"
    assert result.outputs["y"]["max_ulp"] == 5.0
    x, g, b = case.steps[0].inputs["x"], case.params["gamma"], case.params["beta"]
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    model = round_to((x - round_to(mean, "float16")) * round_to(1 / np.sqrt(var + 1e-3), "float16") * g + b, "float16")
    (out,) = raw(case, adapter_cls)
    assert ulp_distance(out["y"].values, model, "float16").max() <= 1


# -- errors -------------------------------------------------------------------------------


@BOTH
def test_batch_of_one_in_training_is_an_error(adapter_cls):
    case = one("""
id: torch/batch-one
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: 0.9}
mode: training
inputs: {x: [[3.0, 4.0]]}
expected: reference
""")
    result = run(case, adapter_cls)
    assert result.status == "error"
    assert result.message.startswith("ValueError: Expected more than 1 value per channel when training")


@BOTH
def test_batch_of_one_with_spatial_dims_is_fine(adapter_cls):
    # N=1 but 3x3 values per channel: torch does not raise, and the translation must not make it.
    result = run(bn_case((1, 2, 3, 3), 1), adapter_cls)
    assert result.status == "pass", result.message


def test_seed_000_inference_by_default_on_module_is_an_error():
    # Keras's default call runs inference; torch's module trains, on one sample.
    case = one("""
id: torch/seed-000
op: batch_norm
source: test
dtype: float64
attributes:
  feature_axes: -1
  epsilon: {framework_default: 1.0e-3}
  momentum: {framework_default: 0.99}
  center: false
  scale: false
mode: {framework_default: inference}
inputs: {x: [[3.0, 4.0]]}
expected: {y: reference}
""")
    assert run(case, TorchNNAdapter).status == "error"
    result = run(case, TorchFunctionalAdapter)
    assert result.status == "diverge"  # only epsilon 1e-5 vs 1e-3
    assert result.outputs["y"]["actual_head"] == pytest.approx([3 / math.sqrt(1.00001), 4 / math.sqrt(1.00001)])


EPS_ZERO = """
id: torch/eps-zero
op: batch_norm
source: test
dtype: float64
attributes: {feature_axes: -1, epsilon: 0.0, momentum: 0.9, center: false, scale: false}
mode: MODE
inputs: {x: [[1.0, 2.0], [3.0, 5.0]]}
expected: {y: reference}
"""


@BOTH
def test_epsilon_zero_raises_in_training_only(adapter_cls):
    # torch 2.13 F.batch_norm: "if training and eps <= 0.0: raise ValueError(...)".
    result = run(one(EPS_ZERO.replace("MODE", "training")), adapter_cls)
    assert result.status == "error"
    assert result.message.startswith("ValueError: batch_norm eps must be positive during training, but got 0.0")
    result = run(one(EPS_ZERO.replace("MODE", "inference")), adapter_cls)
    assert result.status == "pass", result.message


# -- moments ------------------------------------------------------------------------------


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_moments(keepdims, dtype):
    case = one(f"""
id: torch/moments
op: moments
source: test
dtype: {dtype}
attributes: {{reduction_axes: [0, 2], keepdims: {str(keepdims).lower()}}}
inputs: {{x: {{generate: normal, shape: [3, 4, 5], seed: 0, loc: 1.0}}}}
expected: reference
""")
    result = run(case, TorchFunctionalAdapter)
    assert result.status == "pass", result.message
    shape = [1, 4, 1] if keepdims else [4]
    assert result.outputs["variance"]["actual_shape"] == shape
    assert result.outputs["mean"]["actual_dtype"] == dtype
    assert any("correction=0" in n for n in result.notes)


def test_moments_no_reduction_axis_reduces_everything():
    # dim=() means "all dims" to torch.var_mean, not "none".
    case = one("""
id: torch/moments-none
op: moments
source: test
dtype: float64
attributes: {feature_axes: [0, 1]}
inputs: {x: [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}
expected: reference
""")
    result = run(case, TorchFunctionalAdapter)
    assert result.status == "diverge"
    assert result.outputs["mean"]["actual_shape"] == []
    assert result.outputs["mean"]["actual_head"] == [3.5]


def test_module_adapter_has_no_moments():
    assert not TorchNNAdapter().supports("moments")
    assert TorchFunctionalAdapter().supports("moments")


# == gradients and framework knobs of batch_norm =========================================

GRAD_BN = """
id: torch/bn-gradient
op: batch_norm
dtype: float64
attributes: {{feature_axes: {axes}, epsilon: 1.0e-3, momentum: 0.9}}
params:
  gamma: {{generate: normal, shape: {feature}, seed: 1, loc: 1.0}}
  beta: {{generate: normal, shape: {feature}, seed: 2}}
state:
  moving_mean: {{generate: normal, shape: {feature}, seed: 3}}
  moving_variance: {{generate: uniform, shape: {feature}, low: 0.5, high: 2.0, seed: 4}}
steps:
  - mode: training
    inputs: {{x: {{generate: normal, shape: {shape}, seed: 5}}, dy: {{generate: normal, shape: {shape}, seed: 6}}}}
    expected: {{y: reference, dx: reference, dgamma: reference, dbeta: reference}}
  - mode: training
    inputs: {{x: {{generate: normal, shape: {shape}, seed: 7}}, dy: {{generate: normal, shape: {shape}, seed: 8}}}}
    expected: {{dx: reference, dgamma: reference, dbeta: reference}}
"""


@BOTH
@pytest.mark.parametrize("shape,axes,feature", [
    ([6, 3], -1, [3]),
    ([2, 3, 2, 2], [0, 2, 3], [2, 2, 2]),  # kept axes flattened into torch's channel dim
])
def test_batch_norm_gradients_by_autograd(adapter_cls, shape, axes, feature):
    # Through the batch statistics; the second step's parameter gradients would be off
    # if the adapter let torch accumulate .grad across steps.
    result = run(one(GRAD_BN.format(shape=shape, axes=axes, feature=feature)), adapter_cls)
    assert result.status == "pass", result.message
    for key in ("step1.dx", "step1.dgamma", "step1.dbeta", "step2.dx", "step2.dgamma", "step2.dbeta"):
        assert result.outputs[key]["max_abs_error"] < 1e-12, key
    assert result.outputs["step1.dgamma"]["actual_shape"] == feature
    assert any(n.startswith("gradients: torch.autograd.grad(y, [x, weight, bias]") for n in result.notes)


def test_batch_norm_inference_dx_is_dy_times_gamma_over_std():
    # dx = dy * gamma / sqrt(moving_variance + eps) by hand: 2 * 3 / sqrt(4) = 3.
    case = one("""
id: torch/bn-dx-inference
op: batch_norm
dtype: float64
attributes: {feature_axes: -1, epsilon: 0.0}
params: {gamma: [3.0], beta: [0.0]}
state: {moving_mean: [1.0], moving_variance: [4.0]}
mode: inference
inputs: {x: [[5.0], [-1.0]], dy: [[2.0], [1.0]]}
expected: {dx: [[3.0], [1.5]], dgamma: [3.0], dbeta: [3.0]}
""")
    for adapter_cls in ADAPTERS:  # xhat = [2, -1]: dgamma = 2 * 2 + 1 * -1, dbeta = 2 + 1
        result = run(case, adapter_cls)
        assert result.status == "pass", result.message


UNTRACKED = """
id: torch/bn-untracked
op: batch_norm
dtype: float64
attributes: {feature_axes: -1, epsilon: 1.0e-3, track_running_stats: false}
params: {gamma: [2.0], beta: [0.5]}
mode: MODE
inputs: {x: [[0.0], [2.0]]}
expected: {y: reference}
"""


@BOTH
@pytest.mark.parametrize("mode", ["training", "inference"])
def test_untracked_uses_batch_statistics_in_both_modes(adapter_cls, mode):
    result = run(one(UNTRACKED.replace("MODE", mode)), adapter_cls)
    assert result.status == "pass", result.message
    s = 1 / math.sqrt(1.001)
    assert result.outputs["y"]["actual_head"] == pytest.approx([0.5 - 2 * s, 0.5 + 2 * s], rel=1e-14)
    (out,) = raw(one(UNTRACKED.replace("MODE", mode)), adapter_cls)
    assert "moving_mean" not in out and "moving_variance" not in out
    assert any("track_running_stats false" in n for n in result.notes)


CUMULATIVE = """
id: torch/bn-cumulative
op: batch_norm
dtype: float64
attributes: {feature_axes: -1, epsilon: 1.0e-3, momentum: cumulative, center: false, scale: false}
state: {moving_mean: [5.0], moving_variance: [7.0]}
steps:
  - mode: training
    inputs: {x: [[0.0], [2.0]]}
    expected: {moving_mean: [1.0], moving_variance: [1.0]}
  - mode: training
    inputs: {x: [[4.0], [8.0]]}
    expected: {moving_mean: [3.5], moving_variance: [2.5]}
"""


def test_cumulative_momentum_is_the_modules_momentum_none():
    # Plain average of the batches (the initial state gets no weight): means 1, 6 -> 1, 3.5.
    # running_var averages torch's UNBIASED variances 2 and 8 -> 2, 5 (biased: 1, 2.5).
    result = run(one(CUMULATIVE), TorchNNAdapter)
    assert "momentum cumulative -> momentum=None (torch's cumulative moving average)" in result.notes
    assert result.outputs["step2.moving_mean"]["status"] == "pass"
    assert result.outputs["step1.moving_variance"]["actual_head"] == pytest.approx([2.0])
    assert result.outputs["step2.moving_variance"]["actual_head"] == pytest.approx([5.0])
    assert result.status == "diverge"
    assert "unbiased-moving-variance" in result.diagnosis["matches"][0]["variants"]


def test_cumulative_momentum_is_unsupported_by_the_functional_form():
    result = run(one(CUMULATIVE), TorchFunctionalAdapter)
    assert result.status == "unsupported"
    assert result.message.startswith("torch.nn.functional.batch_norm has no cumulative moving average")


@BOTH
def test_frozen_layer_is_unsupported(adapter_cls):
    case = one(UNTRACKED.replace("track_running_stats: false", "trainable: false").replace("MODE", "training"))
    result = run(case, adapter_cls)
    assert result.status == "unsupported"
    assert "has no trainable=False layer" in result.message


# == layer_norm / rms_norm ==============================================================

LN = """
id: torch/layer-norm
op: layer_norm
dtype: {dtype}
attributes: {{reduction_axes: {axes}, epsilon: 1.0e-3{extra}}}
params: {params}
inputs:
  x: {{generate: normal, shape: [3, 4, 5], seed: 11, loc: 1.0}}
  dy: {{generate: normal, shape: [3, 4, 5], seed: 12}}
expected: reference
"""
LN_PARAMS = "{gamma: {generate: normal, shape: SHAPE, seed: 13, loc: 1.0}, beta: {generate: normal, shape: SHAPE, seed: 14}}"


@BOTH
@pytest.mark.parametrize("axes,shape", [(-1, [5]), ([0, 2], [3, 5])])
def test_layer_norm_with_gradients(adapter_cls, axes, shape):
    case = one(LN.format(dtype="float64", axes=axes, extra="", params=LN_PARAMS.replace("SHAPE", str(shape))))
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert set(result.outputs) == {"y", "dx", "dgamma", "dbeta"}
    assert all(o["max_abs_error"] < 1e-12 for o in result.outputs.values())
    if axes != -1:
        assert any("permute(1, 0, 2) and back" in n for n in result.notes), result.notes


def test_layer_norm_without_beta_uses_the_bias_flag():
    case = one(LN.format(dtype="float32", axes=-1, extra=", center: false",
                         params="{gamma: {generate: normal, shape: [5], seed: 13}}"))
    result = run(case, TorchNNAdapter)
    assert result.status == "pass", result.message
    assert any("LayerNorm([5], eps=0.001, elementwise_affine=True, bias=False)" in n for n in result.notes)
    assert "dbeta" not in result.outputs


def test_layer_norm_params_on_fewer_axes():
    # Flax-style gamma/beta over the last axis only, statistics over axes 1 and 2: the
    # functional form takes gamma expanded to normalized_shape; the module's weight cannot be smaller.
    case = one(LN.format(dtype="float64", axes=[1, 2], extra=", param_axes: -1", params=LN_PARAMS.replace("SHAPE", "[5]")))
    result = run(case, TorchFunctionalAdapter)
    assert result.status == "pass", result.message
    assert result.outputs["dgamma"]["actual_shape"] == [5]
    result = run(case, TorchNNAdapter)
    assert result.status == "unsupported"
    assert "gamma/beta over axes [2] (param_axes) cannot be set" in result.message


@BOTH
def test_layer_norm_rms_scaling_is_unsupported(adapter_cls):
    case = one(LN.format(dtype="float64", axes=-1, extra=", rms_scaling: true",
                         params="{gamma: {generate: normal, shape: [5], seed: 13}}"))
    result = run(case, adapter_cls)
    assert result.status == "unsupported"
    assert "has no rms_scaling option" in result.message


@BOTH
def test_layer_norm_default_epsilon_is_1e_5(adapter_cls):
    case = one("""
id: torch/ln-eps
op: layer_norm
dtype: float64
attributes: {reduction_axes: -1, epsilon: {framework_default: 1.0e-3}, center: false, scale: false}
inputs: {x: [[0.0, 2.0]]}
expected: {y: reference}
""")
    result = run(case, adapter_cls)
    assert result.status == "diverge"
    assert result.outputs["y"]["actual_head"] == pytest.approx([-1 / math.sqrt(1.00001), 1 / math.sqrt(1.00001)])
    assert result.diagnosis["matches"][0]["variants"] == ["epsilon-1e-5"]


RMS = """
id: torch/rms
op: rms_norm
dtype: {dtype}
attributes: {{reduction_axes: {axes}, epsilon: {eps}}}
params: {{gamma: {gamma}}}
inputs: {{x: {x}, dy: {dy}}}
expected: {expected}
"""


@BOTH
def test_rms_norm_with_gradients(adapter_cls):
    case = one(RMS.format(dtype="float64", axes="[0, 2]", eps="1.0e-5",
                          gamma="{generate: normal, shape: [3, 5], seed: 1, loc: 1.0}",
                          x="{generate: normal, shape: [3, 4, 5], seed: 2}",
                          dy="{generate: normal, shape: [3, 4, 5], seed: 3}", expected="reference"))
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert set(result.outputs) == {"y", "dx", "dgamma"}
    assert all(o["max_abs_error"] < 1e-12 for o in result.outputs.values())


@BOTH
@pytest.mark.parametrize("dtype,eps", [("float32", float(np.finfo(np.float32).eps)),
                                       ("float64", float(np.finfo(np.float64).eps))])
def test_rms_norm_default_epsilon_is_finfo_of_the_compute_type(adapter_cls, dtype, eps):
    # x = [0.003, 0.004]: mean square 1.25e-5, so 1e-6 (assumed) and machine epsilon (torch's
    # eps=None) give visibly different y.
    case = one(RMS.format(dtype=dtype, axes=-1, eps="{framework_default: 1.0e-6}", gamma="[1.0, 1.0]",
                          x="[[0.003, 0.004]]", dy="[[1.0, 1.0]]", expected="{y: reference}"))
    result = run(case, adapter_cls)
    assert result.status == "diverge"
    x = np.array([0.003, 0.004], dtype=dtype).astype(np.float64)
    want = x / math.sqrt(float(np.mean(x * x)) + eps)
    assert result.outputs["y"]["actual_head"] == pytest.approx(list(want), rel=1e-14 if dtype == "float64" else 1e-6)
    assert result.outputs["y"]["expected_head"] == pytest.approx(list(x / math.sqrt(float(np.mean(x * x)) + 1e-6)))
    assert any("epsilon left to torch's default None" in n for n in result.notes)


# == group_norm / instance_norm =========================================================

GN = """
id: torch/group-norm
op: group_norm
dtype: float64
attributes: {{feature_axes: {axis}, groups: 2, epsilon: 1.0e-3{extra}}}
params: {params}
inputs:
  x: {{generate: normal, shape: {shape}, seed: 21, loc: 0.5}}
  dy: {{generate: normal, shape: {shape}, seed: 22}}
expected: reference
"""


@BOTH
@pytest.mark.parametrize("axis,shape", [(1, [2, 4, 3, 3]), (-1, [2, 3, 3, 4]), (1, [3, 4])])
def test_group_norm_with_gradients(adapter_cls, axis, shape):
    case = one(GN.format(axis=axis, shape=shape, extra="",
                         params="{gamma: [1.0, 2.0, -1.0, 0.5], beta: [0.0, 0.5, 1.0, -1.0]}"))
    result = run(case, adapter_cls)
    assert result.status == "pass", result.message
    assert set(result.outputs) == {"y", "dx", "dgamma", "dbeta"}
    assert all(o["max_abs_error"] < 1e-12 for o in result.outputs.values())


def test_group_norm_beta_without_gamma():
    # Gamma off, beta on. GroupNorm: affine with the weight set to 1, everything passes.
    # F.group_norm(weight=None, bias=beta): the forward is right, but torch 2.13's backward
    # to the bias raises (F.batch_norm, F.layer_norm and F.instance_norm do not).
    case = one(GN.format(axis=1, shape=[2, 4, 3], extra=", scale: false", params="{beta: [0.0, 0.5, 1.0, -1.0]}"))
    result = run(case, TorchNNAdapter)
    assert result.status == "pass", result.message
    assert "dgamma" not in result.outputs
    assert any("weight is set to 1" in n for n in result.notes)
    result = run(case, TorchFunctionalAdapter)
    assert result.status == "error"
    assert result.message.startswith("RuntimeError: tensor does not have a device")
    forward_only = one(GN.format(axis=1, shape=[2, 4, 3], extra=", scale: false",
                                 params="{beta: [0.0, 0.5, 1.0, -1.0]}").replace("expected: reference", "expected: {y: reference}"))
    assert run(forward_only, TorchFunctionalAdapter).status == "pass"


IN = """
id: torch/instance-norm
op: instance_norm
dtype: float64
attributes: {{feature_axes: {axis}, epsilon: 1.0e-3{extra}}}
{rest}
"""


@BOTH
@pytest.mark.parametrize("axis,shape", [(1, [2, 3, 5]), (-1, [2, 3, 3, 2]), (1, [2, 2, 2, 2, 2]),
                                        (1, [2, 2, 2, 2, 2, 2])])
def test_instance_norm_affine_with_gradients(adapter_cls, axis, shape):
    c = shape[axis]
    rest = f"""params: {{gamma: {{generate: normal, shape: [{c}], seed: 1, loc: 1.0}}, beta: {{generate: normal, shape: [{c}], seed: 2}}}}
mode: training
inputs: {{x: {{generate: normal, shape: {shape}, seed: 3}}, dy: {{generate: normal, shape: {shape}, seed: 4}}}}
expected: reference"""
    result = run(one(IN.format(axis=axis, extra=", affine: true", rest=rest)), adapter_cls)
    assert result.status == "pass", result.message
    assert set(result.outputs) == {"y", "dx", "dgamma", "dbeta"}
    assert all(o["max_abs_error"] < 1e-12 for o in result.outputs.values())


@BOTH
def test_instance_norm_without_spatial_axis_is_not_read_as_unbatched(adapter_cls):
    # (N, C) input: each value is its own instance. InstanceNorm1d would read a 2-D input as
    # ONE unbatched (C, L) sample and normalize over the batch; the adapter appends L = 1 and
    # torch then refuses one value per instance in training (as batch norm does per channel).
    rest = "mode: training\ninputs: {x: [[1.0, 5.0], [3.0, -2.0], [0.0, 4.0]]}\nexpected: {y: reference}"
    result = run(one(IN.format(axis=1, extra="", rest=rest)), adapter_cls)
    assert result.status == "error"
    assert result.message.startswith("ValueError: Expected more than 1 spatial element when training, "
                                     "got input size torch.Size([3, 2, 1])")
    assert any("(N, C) -> (N, C, 1)" in n for n in result.notes)


TRACKED_IN = """
state: {moving_mean: [0.0], moving_variance: [1.0]}
steps:
  - mode: training
    inputs: {x: [[[1.0, 3.0]], [[5.0, 9.0]]]}
    expected: {moving_mean: reference, moving_variance: reference}
  - mode: inference
    inputs: {x: [[[2.0, 4.0]]]}
    expected: {y: reference, moving_mean: reference, moving_variance: reference}
"""


@BOTH
def test_instance_norm_tracked_running_variance_is_unbiased(adapter_cls):
    # Instances [1, 3] and [5, 9]: means 2, 7 -> batch mean 4.5; biased variances 1, 4 (mean 2.5),
    # unbiased 2, 8 (mean 5). momentum 0.9 (torch 0.1): mean 0.45; variance 0.9 + 0.25 = 1.15
    # canonical, 0.9 + 0.5 = 1.4 in torch.
    case = one(IN.format(axis=1, extra=", track_running_stats: true, momentum: 0.9", rest=TRACKED_IN))
    result = run(case, adapter_cls)
    assert result.status == "diverge"
    assert result.outputs["step1.moving_mean"]["actual_head"] == pytest.approx([0.45])
    assert result.outputs["step1.moving_variance"]["expected_head"] == pytest.approx([1.15])
    assert result.outputs["step1.moving_variance"]["actual_head"] == pytest.approx([1.4])
    assert result.outputs["step2.y"]["actual_head"] == pytest.approx([(2 - 0.45) / math.sqrt(1.401),
                                                                       (4 - 0.45) / math.sqrt(1.401)])
    assert result.diagnosis["matches"][0]["variants"] == ["unbiased-moving-variance"]


def test_instance_norm_cumulative_momentum_is_ignored_by_the_module():
    # InstanceNorm passes `momentum if momentum is not None else 0.0` to F.instance_norm:
    # momentum=None keeps the running statistics at their initial values (no cumulative average).
    case = one(IN.format(axis=1, extra=", track_running_stats: true, momentum: cumulative", rest=TRACKED_IN))
    result = run(case, TorchNNAdapter)
    assert result.status == "diverge"
    assert result.outputs["step1.moving_mean"]["expected_head"] == pytest.approx([4.5])
    assert result.outputs["step1.moving_mean"]["actual_head"] == [0.0]
    assert result.outputs["step1.moving_variance"]["actual_head"] == [1.0]
    assert result.outputs["step2.y"]["actual_head"] == pytest.approx([2 / math.sqrt(1.001), 4 / math.sqrt(1.001)])
    result = run(case, TorchFunctionalAdapter)
    assert result.status == "unsupported"
    assert "torch.nn.functional.instance_norm has no cumulative moving average" in result.message


@BOTH
def test_instance_norm_affine_left_to_torch_is_off(adapter_cls):
    rest = """mode: training
inputs: {x: [[[1.0, 3.0]], [[5.0, 9.0]]]}
expected: {y: reference}"""
    result = run(one(IN.format(axis=1, extra=", affine: {framework_default: false}", rest=rest)), adapter_cls)
    assert result.status == "pass", result.message
    assert any("affine left to the framework" in n for n in result.notes)
