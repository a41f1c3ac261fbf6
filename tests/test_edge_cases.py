"""The edge-case corpus states decisions (empty batch, NaN, negative variance...): pin them.

Each test reads the bundled cases (cases/*/edge-cases.yaml) and checks that the
expected values they carry say what their descriptions promise, so a change in
the reference or a careless edit of a case shows up here. Plus the load-time
errors that edge cases would otherwise hit (channels not divisible by groups).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from conformance.cli import main
from conformance.load import load_cases

from .conftest import REPO

CASES = {c.id: c for c in load_cases([REPO / "cases"])}
EDGE = {i: c for i, c in CASES.items() if "/edge/" in i}


def expected(case_id: str, name: str = "y", step: int = 0) -> np.ndarray:
    return CASES[case_id].steps[step].expected[name].values


def test_every_edge_case_says_what_it_probes_and_where_its_numbers_come_from():
    assert len(EDGE) >= 60
    for case in EDGE.values():
        assert case.description.strip(), case.id
        assert re.search(r"by hand|reference", case.source), (case.id, case.source)


CONSTANT = sorted(i for i in EDGE if re.search(r"/constant-(input|instance)", i) and not i.startswith("rms_norm"))


def test_the_constant_input_cases_cover_every_centring_op_and_dtype():
    assert {CASES[i].op for i in CONSTANT} == {"batch_norm", "layer_norm", "group_norm", "instance_norm"}
    assert {CASES[i].dtype for i in CONSTANT} == {"float16", "bfloat16", "float32", "float64"}


@pytest.mark.parametrize("case_id", CONSTANT)
def test_constant_input_gives_beta(case_id):
    case = CASES[case_id]
    assert np.ptp(case.steps[0].inputs["x"]) == 0
    beta = case.params["beta"].reshape(case.param_broadcast_shape) if case.has_param("beta") else 0.0
    y = expected(case_id)
    np.testing.assert_allclose(y, np.broadcast_to(beta, y.shape), rtol=0, atol=1e-12)


def test_batch_of_one_in_training_gives_beta_and_decays_the_moving_variance():
    y = expected("batch_norm/edge/batch-of-one-training")
    np.testing.assert_array_equal(y, [[0.1, 0.0, 2.0]])
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        case = CASES[f"batch_norm/edge/batch-of-one-sweep/dtype={dtype},layout=nc"]
        np.testing.assert_allclose(case.steps[0].expected["y"].values, case.params["beta"][None, :], atol=1e-12)
        np.testing.assert_allclose(case.steps[0].expected["moving_variance"].values, 0.9, atol=1e-12)


def test_empty_batch_decisions():
    """Batch norm training: y (0, C), NaN statistics. Per-sample ops and inference: empty output, nothing NaN."""
    training = "batch_norm/edge/empty-batch-training"
    assert expected(training).shape == (0, 3)
    for name in ("batch_mean", "batch_variance", "moving_mean", "moving_variance"):
        assert np.isnan(expected(training, name)).all(), name
    inference = "batch_norm/edge/empty-batch-inference"
    assert expected(inference).shape == (0, 2, 4)
    np.testing.assert_array_equal(expected(inference, "moving_variance"), [2.0, 3.0])
    for case_id, shape in [("layer_norm/edge/empty-batch", (0, 4)), ("rms_norm/edge/empty-batch", (0, 8)),
                           ("instance_norm/edge/empty-batch", (0, 2, 5))]:
        assert expected(case_id).shape == shape
    assert np.isnan(expected("moments/edge/empty-reduction-is-nan", "mean")).all()
    assert expected("moments/edge/empty-kept-axis", "variance").shape == (0,)


def test_negative_moving_variance_is_nan_unless_epsilon_rescues_it():
    y = expected("batch_norm/edge/negative-moving-variance-inference")
    assert np.isnan(y[:, 0]).all()  # v = -1: sqrt of a negative
    np.testing.assert_allclose(y[:, 2], np.array([0.03, -0.06]) / 0.03)  # v = -1e-4, v + eps = 9e-4
    assert np.isfinite(y[:, 1]).all()
    y = expected("instance_norm/edge/negative-moving-variance-inference")
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()


@pytest.mark.parametrize("case_id, poisoned", [
    ("batch_norm/edge/nan-in-training-poisons-the-feature", (slice(None), 0)),
    ("batch_norm/edge/nan-in-inference-stays-put", (1, 0)),
    ("batch_norm/edge/inf-in-training", (slice(None), 0)),
    ("layer_norm/edge/nan-stays-in-its-row", (0,)),
    ("layer_norm/edge/inf-stays-in-its-row", (0,)),
    ("group_norm/edge/nan-stays-in-its-group", (0, slice(2, 4))),
    ("group_norm/edge/inf-stays-in-its-group", (1, slice(None), slice(0, 2))),
    ("instance_norm/edge/nan-stays-in-its-instance", (0, 1)),
    ("rms_norm/edge/nan-stays-in-its-row", (0,)),
])
def test_non_finite_input_stays_in_its_normalization_group(case_id, poisoned):
    y = expected(case_id)
    mask = np.zeros(y.shape, dtype=bool)
    mask[poisoned] = True
    assert np.isnan(y[mask]).all(), case_id
    assert np.isfinite(y[~mask]).all(), case_id


def test_inf_in_rms_norm_zeroes_the_rest_of_its_row():
    y = expected("rms_norm/edge/inf-zeroes-its-row")
    np.testing.assert_array_equal(y[0, [0, 2]], [0.0, 0.0])
    assert np.isnan(y[0, 1]) and np.isfinite(y[1]).all()


def test_large_reductions_are_few_and_large():
    big = {i: c.steps[0].inputs["x"] for i, c in EDGE.items() if c.steps[0].inputs["x"].size >= 1_000_000}
    assert 1 <= len(big) <= 3, sorted(big)  # each runs on every adapter: keep the corpus fast
    for case_id, x in big.items():
        case = CASES[case_id]
        per_group = x.size // max(1, int(np.prod(case.feature_shape)))
        assert per_group >= 1_000_000, (case_id, per_group)


# -- the load-time error an edge case would hit ----------------------------------------

INDIVISIBLE = """\
id: t/groups
op: group_norm
source: by hand
description: "6 channels, 4 groups"
attributes:
  feature_axes: -1
  groups: 4
inputs:
  x: {generate: normal, shape: [2, 3, 6], seed: 1}
expected: reference
"""


def test_channels_not_divisible_by_groups_is_a_load_time_error(write_case, capsys):
    path = write_case(INDIVISIBLE)
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == f"{path}:7: attributes.groups: 4 groups do not divide the 6 channels of axis 2"


def test_channels_not_divisible_by_one_swept_group_count_names_it(write_case, capsys):
    text = INDIVISIBLE.replace("  groups: 4\n", "").replace("expected: reference",
                                                             "sweep:\n  attributes.groups: [1, 2, 4, 6]\nexpected: reference")
    path = write_case(text)
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == (f"{path}:10: attributes.groups: 4 groups do not divide the 6 channels of axis 2 "
                   f"(sweep case groups=4)")
