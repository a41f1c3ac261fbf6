"""Comparison: shape, dtype, values; NaN and inf; figures; the condition-aware tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.compare import Tolerance, compare
from conformance.dtypes import round_to, ulp_distance

TOL = Tolerance(rtol=1e-6, atol=1e-6)


def test_pass_records_figures():
    c = compare("y", np.array([1.0, 2.0]), "float32", np.array([1.0, 2.0 + 1e-7]), "float32", TOL)
    assert c.status == "pass" and c.mismatches == 0
    assert c.max_abs_error == pytest.approx(1e-7)


def test_shape_mismatch_is_checked_first():
    c = compare("y", np.zeros((2, 1)), "float32", np.zeros(2), "float64", TOL)
    assert c.status == "diverge" and c.message == "shape (2,), expected (2, 1)"


def test_dtype_mismatch_diverges_but_keeps_figures():
    c = compare("y", np.ones(3), "float16", np.ones(3), "float32", TOL)
    assert c.status == "diverge" and "dtype float32, expected float16" in c.message
    assert c.max_abs_error == 0.0


def test_worst_element_is_the_one_furthest_past_tolerance():
    expected = np.array([[1.0, 100.0], [0.0, 5.0]])
    actual = expected + np.array([[0.0, 1e-3], [1e-4, 0.0]])  # 1e-3 on 100 is within rtol? no: 1e-3 > 1e-6 + 1e-4
    c = compare("y", expected, "float64", actual, "float64", Tolerance(rtol=1e-5, atol=1e-6))
    assert c.mismatches == 1  # 1e-3 <= 1e-6 + 1e-5 * 100 = 1.001e-3 passes; the 1e-4 on 0 does not
    assert c.worst_index == [1, 0]


@pytest.mark.parametrize("expected,actual,ok", [
    (np.nan, np.nan, True), (np.nan, 1.0, False), (1.0, np.nan, False),
    (np.inf, np.inf, True), (np.inf, -np.inf, False), (np.inf, 1e308, False),
])
def test_special_values(expected, actual, ok):
    c = compare("y", np.array([expected]), "float64", np.array([actual]), "float64", TOL)
    assert (c.status == "pass") is ok


def test_not_produced():
    assert compare("y", np.ones(2), "float32", None, None, TOL).status == "not-produced"


def test_condition_aware_tolerance_widens_with_kappa():
    base = Tolerance(1e-6, 1e-6, condition_factor=4.0)
    wide = base.widened("float32", kappa=1e4, scale=3.0)
    assert wide.rtol == pytest.approx(1e-6 + 4 * 2**-24 * 1e4)
    assert wide.atol == pytest.approx(1e-6 + 4 * 2**-24 * 1e4 * 3.0)
    assert Tolerance(1e-6, 1e-6).widened("float32", 1e4, 3.0) == Tolerance(1e-6, 1e-6)


def test_bfloat16_rounding_known_values():
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1.0)
    assert round_to([1 + 2**-8, 1 + 3 * 2**-8, 3.14159], "bfloat16").tolist() == [1.0, 1 + 2**-6, 3.140625]


@given(st.floats(-1e4, 1e4, allow_nan=False), st.integers(0, 50))
def test_ulp_distance_counts_steps(x, steps):
    start = np.float32(x)
    value = start
    for _ in range(steps):
        value = np.nextafter(value, np.float32(np.inf))
    assert ulp_distance(np.array([value], np.float64), np.array([start], np.float64), "float32")[0] == steps


def test_ulp_distance_across_zero_float16():
    tiny = float(np.nextafter(np.float16(0), np.float16(1)))
    assert ulp_distance(np.array([tiny]), np.array([-tiny]), "float16")[0] == 2
