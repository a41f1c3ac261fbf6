"""Floating-point dtypes a case may use: rounding, unit roundoff, ULP distance
and the default tolerances.

bfloat16 has no NumPy dtype, so values are kept as float64 arrays that hold
exactly representable values, and rounding to bfloat16 is done here by bit
manipulation (round to nearest, ties to even), with no extra dependency.
"""

from __future__ import annotations

import numpy as np

DTYPES = ("float16", "bfloat16", "float32", "float64")

#: Default tolerances per dtype: torch.testing.assert_close's table.
DEFAULT_TOLERANCE = {
    "float16": {"rtol": 1e-3, "atol": 1e-5},
    "bfloat16": {"rtol": 1.6e-2, "atol": 1e-5},
    "float32": {"rtol": 1.3e-6, "atol": 1e-5},
    "float64": {"rtol": 1e-7, "atol": 1e-7},
}

#: Unit roundoff (half the machine epsilon) of each dtype.
UNIT_ROUNDOFF = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}


def _round_bfloat16(values: np.ndarray) -> np.ndarray:
    as32 = np.asarray(values, dtype=np.float64).astype(np.float32)
    bits = as32.view(np.uint32).astype(np.uint64)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    out = (rounded & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(as32), as32, out).astype(np.float64)


def round_to(values, dtype: str) -> np.ndarray:
    """Round ``values`` to the nearest value representable in ``dtype``; float64 out."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "bfloat16":
        return _round_bfloat16(values)
    with np.errstate(over="ignore"):
        return values.astype(np.dtype(dtype)).astype(np.float64)


def _ordered_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    """Integers whose difference counts representable values between floats."""
    if dtype == "bfloat16":
        bits = (round_to(values, "float32").astype(np.float32).view(np.uint32) >> 16).astype(np.int64)
        width = 16
    else:
        np_dtype = np.dtype(dtype)
        width = np_dtype.itemsize * 8
        uint = np.dtype(f"uint{width}")
        with np.errstate(over="ignore"):
            bits = values.astype(np_dtype).view(uint).astype(np.int64 if width < 64 else np.uint64)
    sign = np.uint64(1) << np.uint64(width - 1) if width == 64 else 1 << (width - 1)
    if width == 64:
        magnitude = (bits & ~sign).astype(np.int64)
        negative = (bits & sign) != 0
    else:
        magnitude = bits & (sign - 1)
        negative = (bits & sign) != 0
    return np.where(negative, -magnitude, magnitude)


def ulp_distance(actual: np.ndarray, expected: np.ndarray, dtype: str) -> np.ndarray:
    """Number of ``dtype`` values between ``actual`` and ``expected`` (both rounded to it).

    Uses float64 arithmetic on the difference so that float64 distances do not
    overflow; NaN positions give 0 (they are counted separately).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(a) & np.isfinite(e)
    a = np.where(finite, a, 0.0)
    e = np.where(finite, e, 0.0)
    ia = _ordered_bits(round_to(a, dtype), dtype).astype(np.float64)
    ie = _ordered_bits(round_to(e, dtype), dtype).astype(np.float64)
    return np.where(finite, np.abs(ia - ie), 0.0)
