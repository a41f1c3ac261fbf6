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
