"""Comparing one actual output with its expected values.

Checks, in order: shape, dtype, values. Values match when
``|actual - expected| <= atol + rtol * |expected|``; NaN matches only NaN and an
infinity only the same infinity. Whatever the verdict, the figures are kept:
max absolute and relative error, max ULP distance (in the expected dtype),
mismatch count and the index of the worst element (the one furthest past its
tolerance).

Condition-aware tolerance: a correct float32 batch norm on an input with mean
1e4 and std 1 is off from float64 by ~1e-3, because ``x - mean`` loses
``log2(|x| / std)`` bits. With ``condition_aware`` the case's tolerance grows by
``factor * u * kappa`` (relative) and ``factor * u * kappa * max|expected|``
(absolute), where ``u`` is the dtype's unit roundoff and ``kappa`` the input's
condition number (magnitude over spread, computed by the operator's
``condition``). The default factor is 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .dtypes import UNIT_ROUNDOFF, ulp_distance

DEFAULT_CONDITION_FACTOR = 4.0


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    condition_factor: float = 0.0  # 0: off

    def widened(self, dtype: str, kappa: float, scale: float) -> "Tolerance":
        """The effective tolerance for an input of condition number ``kappa``."""
        if not self.condition_factor or not np.isfinite(kappa):
            return self
        extra = self.condition_factor * UNIT_ROUNDOFF[dtype] * kappa
        return Tolerance(self.rtol + extra, self.atol + extra * scale, self.condition_factor)


@dataclass
class OutputComparison:
    """The verdict and the figures for one output."""

    name: str
    status: str  # pass | diverge | not-produced
    expected_shape: list[int]
    actual_shape: list[int] | None = None
    expected_dtype: str = ""
    actual_dtype: str | None = None
    rtol: float = 0.0
    atol: float = 0.0
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    max_ulp: float | None = None
    mismatches: int | None = None
    size: int = 0
    worst_index: list[int] | None = None
    worst_expected: float | None = None
    worst_actual: float | None = None
    expected_head: list[float] | None = None
    actual_head: list[float] | None = None
    message: str = ""

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _head(a: np.ndarray, limit: int = 8) -> list[float]:
    return [float(v) for v in a.ravel()[:limit]]


def compare(name: str, expected: np.ndarray, expected_dtype: str, actual: np.ndarray | None,
            actual_dtype: str | None, tolerance: Tolerance) -> OutputComparison:
    """Compare ``actual`` with ``expected``; both float64 arrays (values in their dtype)."""
    e = np.asarray(expected, dtype=np.float64)
    out = OutputComparison(name=name, status="pass", expected_shape=list(e.shape),
                           expected_dtype=expected_dtype, rtol=tolerance.rtol, atol=tolerance.atol,
                           size=int(e.size), expected_head=_head(e))
    if actual is None:
        out.status, out.message = "not-produced", "the adapter does not produce this output"
        return out
    a = np.asarray(actual, dtype=np.float64)
    out.actual_shape, out.actual_dtype, out.actual_head = list(a.shape), actual_dtype, _head(a)
    problems = []
    if a.shape != e.shape:
        out.status = "diverge"
        out.message = f"shape {tuple(a.shape)}, expected {tuple(e.shape)}"
        return out
    if actual_dtype != expected_dtype:
        problems.append(f"dtype {actual_dtype}, expected {expected_dtype}")

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(a - e)
        same_special = (np.isnan(a) & np.isnan(e)) | ((a == e) & ~np.isfinite(e))
        diff = np.where(same_special, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number
        allowed = tolerance.atol + tolerance.rtol * np.abs(np.where(np.isfinite(e), e, 0.0))
        bad = diff > allowed
        rel = np.where(np.abs(e) > 0, diff / np.abs(e), np.where(diff > 0, np.inf, 0.0))
        excess = np.where(bad, diff / np.maximum(allowed, np.finfo(np.float64).tiny), 0.0)
        ulps = ulp_distance(a, e, expected_dtype if expected_dtype in UNIT_ROUNDOFF else "float64")

    out.mismatches = int(bad.sum())
    if e.size:
        out.max_abs_error = float(diff.max())
        out.max_rel_error = float(rel.max())
        out.max_ulp = float(ulps.max())
        worst = np.unravel_index(int(np.argmax(excess if out.mismatches else diff)), e.shape)
        out.worst_index = [int(i) for i in worst]
        out.worst_expected, out.worst_actual = float(e[worst]), float(a[worst])
    if out.mismatches:
        problems.append(f"{out.mismatches} of {e.size} values outside atol={tolerance.atol:g} rtol={tolerance.rtol:g}")
    if problems:
        out.status, out.message = "diverge", "; ".join(problems)
    return out
