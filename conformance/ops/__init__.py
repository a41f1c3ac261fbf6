"""Operators the harness knows. Each module defines one operator:

``NAME``; ``INPUTS`` (required step inputs) and ``OPTIONAL_INPUTS`` (``dy``, the
upstream gradient); ``PARAMS`` and ``STATE`` (names with their default fill
values); ``HAS_MODE``; ``OUTPUTS`` (output name → short description);
``ATTRIBUTES`` (JSON schema of its ``attributes``) and ``DEFAULTS``;
``PARAM_AXES`` (which derived axes gamma/beta span: ``feature_axes`` or
``reduction_axes``; a ``param_axes`` attribute overrides it where the schema
allows one); ``AXES`` (``kept_or_reduced``, the default, or ``channel``: one
channel axis, axis 0 the batch axis, the others reduced);
``active_params(case)``; ``default_outputs(mode, case=None, step=None)``;
``why_not(case, step_index, name)`` (why an output cannot be expected of a
step, or None); ``check(case, doc)`` (optional: rules a schema cannot state,
raising ``doc.error``); ``output_shape(name, case, x_shape)``;
``output_dtype(name, case)``; ``reference(case, conv=CANONICAL, modes=None)``
(float64 outputs of every step, everything taken from its arguments) and
``condition(case, step_index)``.
"""

from __future__ import annotations

from types import ModuleType

from . import batch_norm, group_norm, instance_norm, layer_norm, moments, rms_norm

OPS: dict[str, ModuleType] = {m.NAME: m for m in (batch_norm, moments, layer_norm, group_norm,
                                                  instance_norm, rms_norm)}


def get(name: str) -> ModuleType:
    return OPS[name]
