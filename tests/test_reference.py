"""The float64 reference against numbers worked out by hand, convention by convention."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import reference as ref
from conformance.load import cases_from_text
from conformance.ops import batch_norm

CASE = """
id: t/ref
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0, momentum: 0.75}
mode: training
inputs: {x: [[0.0], [2.0], [4.0]]}
expected: {y: reference}
"""


@pytest.fixture
def case():
    return cases_from_text(CASE)[0]


def test_canonical_training_step(case):
    out = batch_norm.reference(case)[0]
    # mean 2, biased variance 8/3, y = (x - 2) / sqrt(8/3)
    np.testing.assert_allclose(out["y"].ravel(), np.array([-2, 0, 2]) / np.sqrt(8 / 3))
    np.testing.assert_allclose(out["moving_mean"], [0.25 * 2])
    np.testing.assert_allclose(out["moving_variance"], [0.75 + 0.25 * 8 / 3])


def test_unbiased_variance_for_moving_update_only(case):
    out = batch_norm.reference(case, ref.CANONICAL.with_(moving_variance="unbiased"))[0]
    np.testing.assert_allclose(out["moving_variance"], [0.75 + 0.25 * 4.0])  # 8/3 * 3/2 = 4
    np.testing.assert_allclose(out["y"].ravel(), np.array([-2, 0, 2]) / np.sqrt(8 / 3))


def test_unbiased_variance_for_normalizing(case):
    out = batch_norm.reference(case, ref.CANONICAL.with_(normalize_variance="unbiased"))[0]
    np.testing.assert_allclose(out["y"].ravel(), [-1, 0, 1])


def test_momentum_convention_weight_new(case):
    out = batch_norm.reference(case, ref.CANONICAL.with_(momentum="weight_new"))[0]
    np.testing.assert_allclose(out["moving_mean"], [0.75 * 2])


def test_epsilon_outside_sqrt():
    x, mean, var = np.array([4.0]), np.array([0.0]), np.array([4.0])
    assert ref.normalize(x, mean, var, 1.0, 1.0, 0.0) == pytest.approx(4 / np.sqrt(5))
    assert ref.normalize(x, mean, var, 1.0, 1.0, 0.0, ref.CANONICAL.with_(epsilon="outside")) == pytest.approx(4 / 3)


def test_one_pass_variance_cancels_in_float32():
    x = 1e4 + np.array([-1.0, 0.0, 1.0, 2.0])
    _, exact = ref.moments(x, (0,))
    _, one_pass = ref.moments(x, (0,), ref.CANONICAL.with_(variance_algorithm="one_pass", compute_dtype="float32"))
    assert exact.item() == pytest.approx(1.25)
    assert abs(one_pass.item() - 1.25) > 0.1


def test_inference_leaves_state_and_uses_it():
    case = cases_from_text("""
id: t/inf
op: batch_norm
source: by hand
attributes: {feature_axes: 0, epsilon: 0.0}
state: {moving_mean: [1.0, -1.0], moving_variance: [4.0, 0.25]}
mode: inference
inputs: {x: [[3.0, 5.0], [0.0, -1.0]]}
expected: reference
""")[0]
    out = batch_norm.reference(case)[0]
    np.testing.assert_allclose(out["y"], [[1.0, 2.0], [2.0, 0.0]])
    np.testing.assert_allclose(out["moving_variance"], [4.0, 0.25])


def test_batch_size_one_unbiased_is_not_finite():
    assert not np.isfinite(ref.unbias(np.array([0.0]), 1)).any()
