"""JSON Schema of a case document, and validation that reports file:line: field.

The schema states the shape of a document; rules that need the data (gamma
length against the feature shape, axes against the input's rank, ragged
arrays) live in :mod:`conformance.load`. ``conformance schema`` prints it.
"""

from __future__ import annotations

import re

import jsonschema

from . import ops
from .dtypes import DTYPES
from .errors import CaseError
from .ops.common import setting_schema
from .yamlload import Document

NUMBER = {"type": "number"}
NESTED = {"anyOf": [NUMBER, {"type": "array", "items": {"$ref": "#/$defs/nested"}}]}
GENERATOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["generate", "shape"],
    "properties": {
        "generate": {"enum": ["normal", "uniform", "arange", "constant"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "seed": {"type": "integer", "minimum": 0},
        "loc": NUMBER, "scale": NUMBER,  # normal
        "low": NUMBER, "high": NUMBER,  # uniform
        "start": NUMBER, "step": NUMBER,  # arange
        "value": NUMBER,  # constant
    },
}
ARRAY = {"anyOf": [{"$ref": "#/$defs/nested"}, GENERATOR]}
TOLERANCE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rtol": {"type": "number", "minimum": 0},
        "atol": {"type": "number", "minimum": 0},
        "condition_aware": {"anyOf": [{"type": "boolean"}, {"type": "number", "exclusiveMinimum": 0}]},
    },
}
EXPECTED_VALUE = {
    "anyOf": [
        {"const": "reference"},
        {"$ref": "#/$defs/nested"},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["values"],
            "properties": {
                "values": {"anyOf": [{"const": "reference"}, {"$ref": "#/$defs/nested"}]},
                "dtype": {"enum": list(DTYPES)},
                "rtol": {"type": "number", "minimum": 0},
                "atol": {"type": "number", "minimum": 0},
            },
        },
    ]
}
MODE = setting_schema({"enum": ["training", "inference"]})

# -- sweeps (docs/case-format.md, "Sweeps"): one document, several cases ------------------
#: Fields a sweep may vary: everything else (op, id, source, expected...) is the
#: meaning of the case and stays fixed.
SWEEP_FIELD = r"^(dtype|mode|tolerance|(attributes|params|state|inputs)\.[a-z_]+)$"
#: A bundle: a named axis whose values each set several fields together (a layout
#: is an input shape AND a channel axis).
SWEEP_BUNDLE = (r"^(?!(id|op|description|source|dtype|tags|attributes|params|state|mode|inputs|expected|steps"
                r"|tolerance|sweep)$)[a-z][a-z0-9_]*$")
#: A value's label in the expanded case id ``<id>/dtype=float16,layout=nchw``.
SWEEP_LABEL = r"^[a-z0-9_.+-]+$"
SWEEP_VALUES = {"anyOf": [{"type": "array", "minItems": 1}, {"type": "object", "minProperties": 1}]}
SWEEP = {
    "type": "object",
    "minProperties": 1,
    "description": "cartesian product: each key a field (a list of values, or label: value) or a bundle "
                   "(label: {field: value, ...}); every expanded case has `expected: reference`",
    "$comment": "fields dtype, mode, tolerance, attributes.NAME, params.NAME, state.NAME, inputs.NAME; "
                "or a bundle name (lowercase word) whose labels each set several fields",
    "additionalProperties": False,
    "patternProperties": {
        SWEEP_FIELD: SWEEP_VALUES,
        SWEEP_BUNDLE: {"type": "object", "minProperties": 1,
                       "additionalProperties": {"type": "object", "minProperties": 1}},
    },
}


def _expected(outputs) -> dict:
    return {
        "anyOf": [
            {"const": "reference"},
            {"type": "object", "additionalProperties": False, "minProperties": 1,
             "properties": {name: EXPECTED_VALUE for name in outputs}},
        ]
    }


def _op_rules(module) -> dict:
    names = tuple(module.INPUTS) + tuple(getattr(module, "OPTIONAL_INPUTS", ()))
    inputs = {"type": "object", "additionalProperties": False, "required": list(module.INPUTS),
              "properties": {name: ARRAY for name in names}}
    step = {"type": "object", "additionalProperties": False, "required": ["inputs", "expected"],
            "properties": {"mode": MODE, "inputs": inputs, "expected": _expected(module.OUTPUTS),
                           "description": {"type": "string"}}}
    if module.HAS_MODE:
        step["required"] = ["mode", "inputs", "expected"]
    named = lambda names: {"type": "object", "additionalProperties": False,
                           "properties": {n: ARRAY for n in names}}
    return {
        "if": {"properties": {"op": {"const": module.NAME}}, "required": ["op"]},
        "then": {"properties": {
            "attributes": module.ATTRIBUTES,
            "params": named(module.PARAMS),
            "state": named(module.STATE),
            "inputs": inputs,
            "expected": _expected(module.OUTPUTS),
            "steps": {"type": "array", "minItems": 1, "items": step},
        }},
    }


CASE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "conformance case",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "op", "source", "attributes"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.+/-]*$"},
        "op": {"enum": sorted(ops.OPS)},
        "description": {"type": "string"},
        "source": {"type": "string", "minLength": 1},
        "dtype": {"enum": list(DTYPES)},
        "tags": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "object"},
        "params": {"type": "object"},
        "state": {"type": "object"},
        "mode": MODE,
        "inputs": {"type": "object"},
        "expected": {},
        "steps": {"type": "array"},
        "tolerance": TOLERANCE,
        "sweep": SWEEP,
    },
    "allOf": [_op_rules(m) for m in ops.OPS.values()],
    "$defs": {"nested": NESTED},
}

_VALIDATOR = jsonschema.Draft202012Validator(CASE_SCHEMA)
_SWEEP_VALIDATOR = jsonschema.Draft202012Validator(SWEEP)


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        extra = sorted(k for k in set(error.instance) - set(error.schema.get("properties", {}))
                       if not any(p.search(k) for p in patterns))
        allowed = ", ".join(sorted(error.schema.get("properties", {}))) or error.schema.get("$comment", "")
        return f"unknown key {', '.join(map(repr, extra))} (allowed: {allowed})"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator in ("anyOf", "oneOf"):
        best = [e for e in (error.context or []) if e.validator not in ("type", "const", "anyOf", "oneOf")]
        if best:
            return _describe(best[0])
        if isinstance(error.instance, (str, bool)) and NUMBER in error.validator_value:
            return f"{_short(error.instance)} is not a number"
        return f"{_short(error.instance)} is not valid here"
    if error.validator == "enum":
        return f"{_short(error.instance)} is not one of {', '.join(map(str, error.validator_value))}"
    return error.message


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _leaf(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For anyOf/oneOf, the deepest alternative's error: it names the exact element."""
    def descendants(e):
        yield e
        for child in e.context or ():
            yield from descendants(child)

    if error.validator in ("anyOf", "oneOf") and error.context:
        deepest = max(descendants(error), key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            # report the alternative at that depth that explains it best
            at_depth = [e for e in descendants(error) if e.absolute_path == deepest.absolute_path]
            return next((e for e in at_depth if e.validator in ("anyOf", "oneOf")), deepest)
    return error


def validate_document(doc: Document) -> list[CaseError]:
    """All schema violations of one document, one CaseError each."""
    return _validate(_VALIDATOR, doc, doc.data, ())


def validate_sweep(doc: Document) -> list[CaseError]:
    """Schema violations of a document's ``sweep`` block (the fields it sets are checked once expanded).

    A key that cannot be swept is reported on its own line.
    """
    sweep = doc.data["sweep"]
    if not isinstance(sweep, dict):
        return _validate(_SWEEP_VALIDATOR, doc, sweep, ("sweep",))
    patterns = [re.compile(p) for p in SWEEP["patternProperties"]]
    wrong = [k for k in sweep if not any(p.search(str(k)) for p in patterns)]
    errors = [doc.error(("sweep", k), f"cannot be swept; sweep {SWEEP['$comment']}") for k in wrong]
    rest = {k: v for k, v in sweep.items() if k not in wrong}
    return errors + (_validate(_SWEEP_VALIDATOR, doc, rest, ("sweep",)) if rest else [])


def _validate(validator, doc: Document, data, base: tuple) -> list[CaseError]:
    errors = []
    for error in map(_leaf, validator.iter_errors(data)):
        path = base + tuple(error.absolute_path)
        errors.append(doc.error(path, _describe(error)))
    # An if/then failure is reported once per leaf; drop exact duplicates.
    unique = {(e.line, e.field, e.message): e for e in errors}
    return list(unique.values())
