"""Layer, RMS, group and instance norm references: conventions and transformed
cases change the result exactly as documented (docs/operators.md)."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import reference as ref
from conformance.load import cases_from_text
from conformance.ops import get


def one(text: str):
    return cases_from_text(text)[0]


def test_rms_statistic_variance_reproduces_keras_rms_scaling():
    case = one("""
id: t/rms
op: layer_norm
source: by hand
attributes: {reduction_axes: -1, epsilon: 0.0, rms_scaling: true}
inputs: {x: [[1.0, 3.0]]}
expected: reference
""")
    op = get("layer_norm")
    np.testing.assert_allclose(op.reference(case)[0]["y"], [[1 / np.sqrt(5), 3 / np.sqrt(5)]])
    # Keras's deprecated rms_scaling: divide by the centred variance (1 here), x not centred
    np.testing.assert_allclose(op.reference(case, ref.CANONICAL.with_(rms_statistic="variance"))[0]["y"], [[1.0, 3.0]])


def test_group_split_strided_regroups_channels():
    case = one("""
id: t/gn
op: group_norm
source: by hand
attributes: {feature_axes: 1, groups: 2, epsilon: 0.0}
inputs: {x: [[1.0, 3.0, 2.0, 6.0]]}
expected: reference
""")
    op = get("group_norm")
    np.testing.assert_allclose(op.reference(case)[0]["y"], [[-1, 1, -1, 1]])
    # strided: groups {1, 2} and {3, 6}
    np.testing.assert_allclose(op.reference(case, ref.CANONICAL.with_(group_split="strided"))[0]["y"], [[-1, -1, 1, 1]])


def test_group_norm_channels_first_and_last_agree():
    x = np.random.default_rng(0).normal(size=(2, 6, 3))
    first = one(f"""
id: t/first
op: group_norm
source: t
dtype: float64
attributes: {{feature_axes: 1, groups: 3}}
inputs: {{x: {x.tolist()}}}
expected: reference
""")
    last = one(f"""
id: t/last
op: group_norm
source: t
dtype: float64
attributes: {{feature_axes: -1, groups: 3}}
inputs: {{x: {np.moveaxis(x, 1, -1).tolist()}}}
expected: reference
""")
    op = get("group_norm")
    np.testing.assert_allclose(np.moveaxis(op.reference(last)[0]["y"], -1, 1), op.reference(first)[0]["y"], rtol=1e-12)


def test_group_norm_with_one_channel_per_group_is_instance_norm():
    x = np.random.default_rng(1).normal(size=(2, 4, 5)).tolist()
    gn = one(f"id: t/g\nop: group_norm\nsource: t\ndtype: float64\nattributes: {{feature_axes: 1, groups: 4}}\n"
             f"inputs: {{x: {x}}}\nexpected: reference\n")
    inn = one(f"id: t/i\nop: instance_norm\nsource: t\ndtype: float64\nattributes: {{feature_axes: 1, epsilon: 1.0e-3}}\n"
              f"mode: training\ninputs: {{x: {x}}}\nexpected: reference\n")
    np.testing.assert_allclose(get("group_norm").reference(gn)[0]["y"], get("instance_norm").reference(inn)[0]["y"])


INSTANCE = """
id: t/in
op: instance_norm
source: by hand
attributes: {feature_axes: 1, epsilon: 0.0, track_running_stats: true, momentum: 0.5}
state: {moving_mean: [0.0], moving_variance: [3.0]}
steps:
  - mode: training
    inputs: {x: [[[0.0, 2.0]], [[0.0, 6.0]]]}
    expected: reference
  - mode: inference
    inputs: {x: [[[1.0, 3.0]]]}
    expected: reference
"""


def test_instance_norm_running_stats_torch_conventions():
    case = one(INSTANCE)
    op = get("instance_norm")
    canonical = op.reference(case)
    assert canonical[0]["moving_variance"].tolist() == [4.0]  # 0.5 * 3 + 0.5 * mean(1, 9)
    torch_like = op.reference(case, ref.CANONICAL.with_(moving_variance="unbiased"))
    assert torch_like[0]["moving_variance"].tolist() == [0.5 * 3 + 0.5 * 10]  # unbiased: 2 and 18
    # modes overridden: the second step in training uses its own statistics
    np.testing.assert_allclose(op.reference(case, modes=["training", "training"])[1]["y"], [[[-1.0, 1.0]]])


def test_batch_norm_cumulative_momentum_ignores_initial_state_and_convention():
    case = one("""
id: t/cma
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0, momentum: cumulative}
state: {moving_mean: [9.0]}
steps:
  - {mode: training, inputs: {x: [[0.0], [2.0]]}, expected: reference}
  - {mode: inference, inputs: {x: [[0.0], [2.0]]}, expected: reference}
  - {mode: training, inputs: {x: [[4.0], [8.0]]}, expected: reference}
""")
    for conv in (ref.CANONICAL, ref.CANONICAL.with_(momentum="weight_new")):
        out = get("batch_norm").reference(case, conv)
        assert [o["moving_mean"].item() for o in out] == [1.0, 1.0, 3.5]


def test_batch_norm_frozen_and_untracked_modes():
    frozen = one("""
id: t/frozen
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0, trainable: false}
state: {moving_mean: [1.0], moving_variance: [4.0]}
mode: training
inputs: {x: [[3.0], [5.0]]}
expected: reference
""")
    out = get("batch_norm").reference(frozen)[0]
    assert out["y"].ravel().tolist() == [1.0, 2.0] and "batch_mean" not in out
    untracked = one("""
id: t/untracked
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0, track_running_stats: false}
mode: inference
inputs: {x: [[0.0], [2.0]]}
expected: reference
""")
    out = get("batch_norm").reference(untracked)[0]
    assert out["y"].ravel().tolist() == [-1.0, 1.0] and "moving_mean" not in out
    assert set(untracked.steps[0].expected) == {"y"}


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_epsilon_placement_and_compute_dtype_are_honoured(op):
    case = one(f"""
id: t/eps
op: {op}
source: t
dtype: float64
attributes: {{reduction_axes: -1, epsilon: 0.25}}
inputs: {{x: [[1.0, 3.0]]}}
expected: reference
""")
    module = get(op)
    inside = module.reference(case)[0]["y"]
    outside = module.reference(case, ref.CANONICAL.with_(epsilon="outside"))[0]["y"]
    stat = 1.0 if op == "layer_norm" else 5.0
    centred = np.array([[-1.0, 1.0]]) if op == "layer_norm" else np.array([[1.0, 3.0]])
    np.testing.assert_allclose(inside, centred / np.sqrt(stat + 0.25))
    np.testing.assert_allclose(outside, centred / (np.sqrt(stat) + 0.25))
    big = one(f"""
id: t/big
op: {op}
source: t
dtype: float64
attributes: {{reduction_axes: -1, epsilon: 0.0}}
inputs: {{x: [[10000.0, 10001.0, 10002.0, 10003.0]]}}
expected: reference
""")
    lossy = module.reference(big, ref.CANONICAL.with_(variance_algorithm="one_pass", compute_dtype="float32"))[0]["y"]
    if op == "layer_norm":  # the one-pass float32 variance cancels; the result moves visibly
        assert np.abs(lossy - module.reference(big)[0]["y"]).max() > 1e-2
