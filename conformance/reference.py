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


def update(moving, batch, momentum: float, conv: Conventions = CANONICAL):
    keep = momentum if conv.momentum == "keep_old" else 1.0 - momentum
    return keep * moving + (1.0 - keep) * batch
