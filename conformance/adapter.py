"""The seam between the core and a framework.

An adapter is a class with a ``name`` (its row in the report), the
``framework`` it drives and the ``api`` it calls, plus one method per operator,
``run_<op>(case) -> list[dict[str, array]]``: the outputs of each step of the
case, computed with the framework's own API in the case's dtype. An adapter:

* translates the canonical case faithfully (axes, momentum convention,
  defaults) and never compensates its framework's semantics;
* raises :class:`~conformance.errors.Unsupported` with a reason for what its
  framework cannot express, and lets the framework's own exceptions escape
  (they become ``error`` results);
* may record what it translated with ``self.note("...")``.

Adapters are found through the ``conformance.adapters`` entry-point group
(:mod:`conformance.registry`), so
a third-party package can add one without touching the core::

    [project.entry-points."conformance.adapters"]
    mylib = "mylib_conformance:MyLibAdapter"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import Unsupported

@dataclass
class Array:
    """An output array as float64 values plus the dtype the framework returned."""

    values: np.ndarray
    dtype: str

    @classmethod
    def of(cls, value: Any, dtype: str | None = None) -> "Array":
        if isinstance(value, Array):
            return value
        arr = np.asarray(value)
        return cls(arr.astype(np.float64), dtype or str(arr.dtype))


class Adapter:
    """Base class of adapters; subclasses set the class attributes and ``run_<op>``."""

    name: ClassVar[str]
    framework: ClassVar[str]  # import name, also used to look up the version
    distribution: ClassVar[str | None] = None  # pip name when it differs from framework
    api: ClassVar[str] = ""

    def __init__(self) -> None:
        self.notes: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        """Import the framework; an ImportError here marks the adapter ``skipped``."""
        importlib.import_module(self.framework)

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution or self.framework)
        except importlib.metadata.PackageNotFoundError:
            module = importlib.import_module(self.framework)
            return str(getattr(module, "__version__", "unknown"))

    def device(self) -> str:
        return "cpu"

    def environment(self) -> dict:
        return {"framework": self.distribution or self.framework, "version": self.version(),
                "api": self.api, "device": self.device(), "python": platform.python_version()}

    # -- running ------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """Record a translation step (shown in the report next to the result)."""
        if text not in self.notes:
            self.notes.append(text)

    def supports(self, op: str) -> bool:
        return callable(getattr(self, f"run_{op}", None))

    def run(self, case) -> list[dict[str, Array]]:
        self.notes = []
        method = getattr(self, f"run_{case.op}", None)
        if method is None:
            raise Unsupported(f"{self.api or self.name} has no {case.op}")
        steps = method(case)
        return [{k: Array.of(v) for k, v in step.items()} for step in steps]
