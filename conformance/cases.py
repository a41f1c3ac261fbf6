"""The canonical case: what a case file means once it has been loaded.

A :class:`Case` is framework-neutral. Arrays are float64 NumPy arrays that
hold values already rounded to the case's dtype, so the reference and every
framework see exactly the same numbers. Axes are stored both ways (the Keras
sense, ``feature_axes``, kept; the ``tf.nn.moments`` sense, ``reduction_axes``,
reduced), as non-negative indices. Attributes left to the framework carry the
value the expected outputs assume, with ``framework_default`` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compare import Tolerance


@dataclass(frozen=True)
class Setting:
    """An attribute value; ``framework_default`` means "do not pass it"."""

    value: Any
    framework_default: bool = False


@dataclass
class Expected:
    """One expected output of one step."""

    values: np.ndarray
    dtype: str
    source: str  # "case" (written in the file) or "reference" (float64 reference)
    tolerance: Tolerance


@dataclass
class Step:
    """One call on the layer: its mode, its inputs, the outputs it must give."""

    mode: Setting  # value "training" | "inference" (None for ops without modes)
    inputs: dict[str, np.ndarray]
    expected: dict[str, Expected] = field(default_factory=dict)


@dataclass
class Case:
    id: str
    op: str
    source: str
    dtype: str
    path: str
    line: int | None
    attributes: dict[str, Setting]
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    steps: list[Step]
    tolerance: Tolerance
    description: str = ""
    tags: tuple[str, ...] = ()

    # -- conveniences for adapters -------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        """The attribute's value (the assumed one when left to the framework)."""
        setting = self.attributes.get(name)
        return default if setting is None else setting.value

    def is_default(self, name: str) -> bool:
        """True when the case leaves ``name`` to the framework's own default."""
        setting = self.attributes.get(name)
        return bool(setting and setting.framework_default)

    @property
    def ndim(self) -> int:
        return self.steps[0].inputs["x"].ndim

    @property
    def feature_axes(self) -> tuple[int, ...]:
        return self.attr("feature_axes")

    @property
    def reduction_axes(self) -> tuple[int, ...]:
        return self.attr("reduction_axes")

    @property
    def feature_shape(self) -> tuple[int, ...]:
        shape = self.steps[0].inputs["x"].shape
        return tuple(shape[a] for a in self.feature_axes)

    @property
    def param_axes(self) -> tuple[int, ...]:
        """Axes gamma and beta span (batch norm: the kept axes; layer norm: the normalized ones)."""
        return self.attr("param_axes", self.feature_axes)

    @property
    def param_shape(self) -> tuple[int, ...]:
        shape = self.steps[0].inputs["x"].shape
        return tuple(shape[a] for a in self.param_axes)

    @property
    def param_broadcast_shape(self) -> tuple[int, ...]:
        """Shape that makes gamma/beta broadcast against x (1 on the other axes)."""
        shape = [1] * self.ndim
        for axis, size in zip(self.param_axes, self.param_shape):
            shape[axis] = size
        return tuple(shape)

    def has_param(self, name: str) -> bool:
        """True when the op applies parameter ``name`` (gamma off when scale is false...)."""
        from . import ops

        return name in ops.get(self.op).active_params(self)

    @property
    def broadcast_shape(self) -> tuple[int, ...]:
        """Shape that makes a feature-shaped array broadcast against x (1 on reduced axes)."""
        shape = [1] * self.ndim
        for axis, size in zip(self.feature_axes, self.feature_shape):
            shape[axis] = size
        return tuple(shape)

    def output_key(self, step: int, name: str) -> str:
        """Name of an output in results: ``y``, or ``step2.y`` in multi-step cases."""
        return name if len(self.steps) == 1 else f"step{step + 1}.{name}"

    def summary(self) -> dict:
        """A JSON-able, abridged description for reports."""
        return {
            "op": self.op,
            "source": self.source,
            "description": self.description,
            "dtype": self.dtype,
            "path": self.path,
            "line": self.line,
            "attributes": {
                k: ({"framework_default": _plain(s.value)} if s.framework_default else _plain(s.value))
                for k, s in self.attributes.items()
            },
            "params": {k: abridge(v) for k, v in self.params.items()},
            "state": {k: abridge(v) for k, v in self.state.items()},
            "steps": [
                {
                    "mode": ({"framework_default": s.mode.value} if s.mode.framework_default else s.mode.value),
                    "inputs": {k: abridge(v) for k, v in s.inputs.items()},
                }
                for s in self.steps
            ],
            "tags": list(self.tags),
        }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def abridge(values: np.ndarray, limit: int = 8) -> dict:
    """Shape, the first ``limit`` values (flattened) and simple statistics."""
    a = np.asarray(values, dtype=np.float64)
    flat = a.ravel()
    out: dict = {"shape": list(a.shape), "head": [float(v) for v in flat[:limit]]}
    if flat.size > limit:
        finite = flat[np.isfinite(flat)]
        if finite.size:
            out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()))
    return out
