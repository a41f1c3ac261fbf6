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
    error_map: dict | None = None  # only for value divergences: see ``error_map``

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


ERROR_MAP_CAP = 512  # values kept in an error map; bigger outputs are max-pooled down to this
ERROR_MAP_MAX_COLS = 64
ERROR_MAP_DIGITS = 3  # significant digits kept per value


def error_map(diff: np.ndarray, cap: int = ERROR_MAP_CAP) -> dict:
    """A capped, abridged picture of the elementwise absolute error, for plots.

    The array is viewed as a matrix (all leading axes × the last axis) and
    max-pooled in blocks (``block`` = rows, columns per cell) until it holds at
    most ``cap`` values, so the worst errors always stay visible. ``values`` are
    row-major, rounded to 3 significant digits. ``hist`` counts every element of
    the full array (not the pooled one) in decade bins of log10(error), from
    ``lo`` (a power of ten) upwards, plus exact zeros and non-finite errors.
    """
    d = np.asarray(diff, dtype=np.float64)
    m = d.reshape(1, -1) if d.ndim < 2 else d.reshape(-1, d.shape[-1])
    rows, cols = m.shape
    if rows * cols > cap:
        bc = -(-cols // ERROR_MAP_MAX_COLS)  # wide matrices: pool columns down to at most 64
        pooled_cols = -(-cols // bc)
        br = -(-rows // max(1, cap // pooled_cols))
        pad = np.full((-(-rows // br) * br, pooled_cols * bc), -np.inf)
        pad[:rows, :cols] = m
        m = pad.reshape(pad.shape[0] // br, br, pooled_cols, bc).max(axis=(1, 3))
    else:
        br = bc = 1
    flat = d.ravel()
    finite = flat[np.isfinite(flat)]
    positive = finite[finite > 0]
    hist: dict = {"zeros": int((finite == 0).sum()), "nonfinite": int(flat.size - finite.size), "lo": None, "counts": []}
    if positive.size:
        logs = np.log10(positive)
        lo, hi = int(np.floor(logs.min())), int(np.floor(logs.max()))
        hist["lo"], hist["counts"] = lo, np.bincount((np.floor(logs) - lo).astype(int), minlength=hi - lo + 1).tolist()
    return {"shape": list(m.shape), "block": [br, bc],
            "values": [float(f"{v:.{ERROR_MAP_DIGITS}g}") for v in m.ravel()], "hist": hist}


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
        out.error_map = error_map(diff)
        problems.append(f"{out.mismatches} of {e.size} values outside atol={tolerance.atol:g} rtol={tolerance.rtol:g}")
    if problems:
        out.status, out.message = "diverge", "; ".join(problems)
    return out
