"""The float64 reference, with every convention an explicit parameter.

``CANONICAL`` is the semantics the bundled cases are written against (Keras 3,
ONNX BatchNormalization and the 2015 paper's training step): biased batch
variance for normalizing and for the moving update, epsilon inside the square
root, ``moving = momentum * moving + (1 - momentum) * batch`` and a two-pass
variance, all in float64. Other :class:`Conventions` describe what some
framework (or a user's hand formula) does instead; the diagnosis re-runs the
reference under them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Conventions:
    """How the reference computes; each field is one documented convention."""

    #: variance used to normalize: ``biased`` (divide by n) or ``unbiased`` (n - 1).
    normalize_variance: Literal["biased", "unbiased"] = "biased"
    #: variance fed into the moving variance.
    moving_variance: Literal["biased", "unbiased"] = "biased"
    #: ``inside``: (x - mean) / sqrt(var + eps); ``outside``: / (sqrt(var) + eps).
    epsilon: Literal["inside", "outside"] = "inside"
    #: ``keep_old``: momentum is the weight of the old statistic (Keras, Flax);
    #: ``weight_new``: it is the weight of the new one (PyTorch).
    momentum: Literal["keep_old", "weight_new"] = "keep_old"
    #: ``two_pass``: mean((x - mean)^2); ``one_pass``: mean(x^2) - mean(x)^2.
    variance_algorithm: Literal["two_pass", "one_pass"] = "two_pass"
    #: dtype the statistics are computed in.
    compute_dtype: str = "float64"
    #: statistic an RMS normalization divides by: ``mean_square`` mean(x^2) (the
    #: RMSNorm paper); ``variance``: the centred variance, x not centred (Keras's
    #: deprecated ``LayerNormalization(rms_scaling=True)``).
    rms_statistic: Literal["mean_square", "variance"] = "mean_square"
    #: group norm's channel split: ``contiguous``: channel c is in group
    #: c // (C / groups); ``strided``: in group c % groups.
    group_split: Literal["contiguous", "strided"] = "contiguous"
    #: the batch variance an op reports (``batch_variance``): ``normalize``, the one
    #: that normalized; ``moving``, the one fed to the moving update (TF's fused kernel).
    reported_variance: Literal["normalize", "moving"] = "normalize"

    def with_(self, **changes) -> "Conventions":
        return replace(self, **changes)


CANONICAL = Conventions()


def moments(x: np.ndarray, axes: tuple[int, ...], conv: Conventions = CANONICAL):
    """Mean and *biased* variance over ``axes`` (kept as size-1 dims)."""
    dtype = np.float32 if conv.compute_dtype == "bfloat16" else np.dtype(conv.compute_dtype)
    xc = np.asarray(x, dtype=dtype)
    mean = xc.mean(axis=axes, keepdims=True)
    if conv.variance_algorithm == "one_pass":
        var = (xc * xc).mean(axis=axes, keepdims=True) - mean * mean
    else:
        var = np.square(xc - mean).mean(axis=axes, keepdims=True)
    return mean.astype(np.float64), var.astype(np.float64)


def count(x: np.ndarray, axes: tuple[int, ...]) -> int:
    return int(np.prod([x.shape[a] for a in axes])) if axes else 1


def unbias(var: np.ndarray, n: int) -> np.ndarray:
    """Bessel's correction n / (n - 1); n == 1 gives inf/nan as NumPy does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return var * (n / (n - 1)) if n > 1 else var * np.float64("inf")


def normalize(x, mean, var, epsilon: float, gamma, beta, conv: Conventions = CANONICAL):
    with np.errstate(divide="ignore", invalid="ignore"):
        if conv.epsilon == "inside":
            inv = 1.0 / np.sqrt(var + epsilon)
        else:
            inv = 1.0 / (np.sqrt(var) + epsilon)
        return (x - mean) * inv * gamma + beta


def update(moving, batch, momentum, conv: Conventions = CANONICAL, steps: int = 1):
    """One moving-average update. ``momentum == "cumulative"``: the cumulative
    average over ``steps`` training steps (this one included), whatever ``conv``."""
    if momentum == "cumulative":
        keep = 1.0 - 1.0 / steps
    else:
        keep = momentum if conv.momentum == "keep_old" else 1.0 - momentum
    return keep * moving + (1.0 - keep) * batch


# -- standardization and its gradient ------------------------------------------------


def inverse_std(stat, epsilon: float, conv: Conventions = CANONICAL):
    """1 / sqrt(stat + eps) (epsilon inside) or 1 / (sqrt(stat) + eps) (outside)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if conv.epsilon == "inside":
            return 1.0 / np.sqrt(stat + epsilon)
        return 1.0 / (np.sqrt(stat) + epsilon)


def _inverse_std_derivative(stat, epsilon: float, conv: Conventions):
    with np.errstate(divide="ignore", invalid="ignore"):
        if conv.epsilon == "inside":
            return -0.5 * (stat + epsilon) ** -1.5
        root = np.sqrt(stat)
        return -0.5 / (root * (root + epsilon) ** 2)


@dataclass
class Standardized:
    """``xhat = (x - shift) * inv`` with ``inv = inverse_std(stat)``, over ``axes``.

    ``shift`` is the mean (0 for RMS); ``stat`` the variance (or mean square)
    used; ``stat_center`` the value ``stat`` is taken around (mean, or 0 for a
    mean square) and ``stat_factor`` its divisor correction (n / (n - 1) when
    unbiased). ``from_batch``: the statistics depend on x (their gradient flows).
    """

    xhat: np.ndarray
    shift: np.ndarray | float
    stat: np.ndarray
    inv: np.ndarray
    axes: tuple[int, ...]
    n: int
    from_batch: bool
    centred: bool = True
    stat_center: np.ndarray | float = 0.0
    stat_factor: float = 1.0
    mean: np.ndarray | None = None


def standardize(x, axes: tuple[int, ...], epsilon: float, conv: Conventions = CANONICAL,
                rms: bool = False) -> Standardized:
    """Batch statistics over ``axes`` (kept as size-1 dims) and the standardized x.

    ``rms``: no centring; divide by the root of mean(x^2), or of the variance when
    ``conv.rms_statistic == "variance"``. Honours ``conv``'s variance algorithm,
    compute dtype, normalize_variance and epsilon placement.
    """
    x = np.asarray(x, dtype=np.float64)
    n = count(x, axes)
    mean, var = moments(x, axes, conv)
    factor = n / (n - 1) if conv.normalize_variance == "unbiased" and n > 1 else 1.0
    if conv.normalize_variance == "unbiased":
        var = unbias(var, n)
    if rms and conv.rms_statistic == "mean_square":
        dtype = np.float32 if conv.compute_dtype == "bfloat16" else np.dtype(conv.compute_dtype)
        xc = np.asarray(x, dtype=dtype)
        stat = (xc * xc).mean(axis=axes, keepdims=True).astype(np.float64)
        center, factor = 0.0, 1.0
    else:
        stat, center = var, mean
    shift = 0.0 if rms else mean
    inv = inverse_std(stat, epsilon, conv)
    with np.errstate(invalid="ignore"):
        xhat = (x - shift) * inv
    return Standardized(xhat, shift, stat, inv, axes, n, True, not rms, center, factor, mean)


def standardize_with(x, mean, var, epsilon: float, conv: Conventions = CANONICAL) -> Standardized:
    """Standardize with given (moving) statistics; they do not depend on x."""
    x = np.asarray(x, dtype=np.float64)
    inv = inverse_std(var, epsilon, conv)
    with np.errstate(invalid="ignore"):
        xhat = (x - mean) * inv
    return Standardized(xhat, mean, var, inv, (), 1, False, mean=mean)


def standardize_grad(st: Standardized, x, g, epsilon: float, conv: Conventions = CANONICAL) -> np.ndarray:
    """d(sum(g * xhat)) / dx, analytically, for ``st`` computed from ``x``.

    With ``a`` = 1 when the mean is subtracted, ``v = c * mean((x - b*mu)^2)``:
    ``dx = inv * (g - a*mean(g)) + inv'(v) * c * (2/n) * (x - b*mu) * sum(g * (x - a*mu))``.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not st.from_batch:
            return g * st.inv
        g_mean = g.mean(axis=st.axes, keepdims=True) if st.centred else 0.0
        dx = st.inv * (g - g_mean)
        weight = (g * (x - st.shift)).sum(axis=st.axes, keepdims=True)
        dstat = _inverse_std_derivative(st.stat, epsilon, conv) * st.stat_factor * (2.0 / st.n)
        return dx + dstat * (x - st.stat_center) * weight


def sum_to(values: np.ndarray, keep_axes: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Sum over every axis not in ``keep_axes``, reshaped to ``shape`` (parameter gradients)."""
    drop = tuple(a for a in range(values.ndim) if a not in keep_axes)
    return np.asarray(values, dtype=np.float64).sum(axis=drop).reshape(shape)
