"""Operators the harness knows. Each module defines one operator:

``NAME``, ``ATTRIBUTES`` (JSON schema of its ``attributes``), ``INPUTS``,
``OUTPUTS`` (output name → short description), ``PARAMS`` and ``STATE``
(names with their default fill values), ``default_outputs(mode)``, ``output_dtype(name, case)``,
``check(case, doc)`` for rules a schema cannot state, ``output_shape(name,
case, x_shape)``, ``reference(case, conventions)`` and ``condition(case,
step_index, inputs)``.
"""

from __future__ import annotations

from types import ModuleType

from . import batch_norm, moments

OPS: dict[str, ModuleType] = {m.NAME: m for m in (batch_norm, moments)}


def get(name: str) -> ModuleType:
    return OPS[name]
