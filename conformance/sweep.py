"""Sweeps: one case document that expands into the cartesian product of swept values.

:func:`expand` returns ``[doc]`` for a plain document, else one
:class:`SweptDocument` per combination, each then checked and built exactly as
a hand-written case (:mod:`conformance.load`). The format is documented in
docs/case-format.md ("Sweeps").
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass

import numpy as np

from .errors import CaseError, CaseErrors
from .schema import SWEEP_FIELD, SWEEP_LABEL, validate_sweep
from .yamlload import Document, format_path

#: The most cases one sweep may expand into: beyond that, split it (a reviewer reads it).
MAX_SWEEP_CASES = 64


@dataclass
class SweptDocument(Document):
    """One combination of a sweep: the base document with the swept fields set.

    ``labels`` are ``(name, label)`` pairs, in the sweep's key order; the case id
    is the document's id plus :attr:`suffix`, ``/dtype=float16,layout=nchw`` (no
    brackets: they are glob classes in known-divergence declarations and markup
    in the terminal). Lines of swept fields point at the
    value inside the ``sweep`` block, and every error names the combination.
    """

    labels: tuple = ()

    @property
    def suffix(self) -> str:
        return "/" + ",".join(f"{name}={label}" for name, label in self.labels)

    def error(self, path: tuple, message: str) -> CaseError:
        exc = CaseError(self.file, self.line(path), format_path(path), f"{message} (sweep case {self.suffix[1:]})")
        exc.bare, exc.sweep_case = message, self.suffix[1:]
        return exc


def merge_errors(errors: list[CaseError], total: int) -> list[CaseError]:
    """One error per (line, field, message) over a sweep's cases, naming which cases have it."""
    groups: dict = {}
    for e in errors:
        groups.setdefault((e.file, e.line, e.field, getattr(e, "bare", e.message)), []).append(e)
    merged = []
    for (file, line, field, bare), same in groups.items():
        if not hasattr(same[0], "bare"):
            merged.append(same[0])
        elif len(same) == total:
            merged.append(CaseError(file, line, field, f"{bare} (every sweep case)"))
        else:
            more = f" and {len(same) - 1} more" if len(same) > 1 else ""
            merged.append(CaseError(file, line, field, f"{bare} (sweep case {same[0].sweep_case}{more})"))
    return merged


def _label(value) -> str | None:
    """A value's label in the id: scalars as written, a list of scalars joined by '+'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        text = repr(value) if isinstance(value, float) else str(value)
        return text if re.match(SWEEP_LABEL, text) else None
    if isinstance(value, list) and value and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value):
        parts = [_label(v) for v in value]
        return "+".join(parts) if all(parts) else None
    return None


def _field_path(key: str) -> tuple:
    return tuple(key.split("."))


def _sweep_axes(doc: Document) -> list[tuple[str, list[tuple[str, dict, tuple]]]]:
    """Each sweep key → (name, [(label, {field path: value}, path of the value in the document)])."""
    sweep, axes, errors, swept = doc.data["sweep"], [], [], {}
    for key, values in sweep.items():
        at = ("sweep", key)
        bundle = not re.match(SWEEP_FIELD, key)  # the schema checked it is one or the other
        name = key if bundle else key.rsplit(".", 1)[-1]
        if isinstance(values, list):
            entries = [(_label(v), v, at + (i,)) for i, v in enumerate(values)]
            for (label, _, path), v in zip(entries, values):
                if label is None:
                    errors.append(doc.error(path, f"{str(v)[:40]} makes no id label: write the values as a "
                                                  f"mapping label: value (labels: lowercase, digits, _ . + -)"))
        else:
            entries = [(str(label), v, at + (label,)) for label, v in values.items()]
            for label, _, path in entries:
                if not re.match(SWEEP_LABEL, label):
                    errors.append(doc.error(path, f"label {label!r}: use lowercase letters, digits, _ . + -"))
        labels = [e[0] for e in entries]
        if len(set(labels)) != len(labels):
            errors.append(doc.error(at, f"two values have the same label: {labels}"))
        if any(name == other for other, _ in axes):
            errors.append(doc.error(at, f"another sweep key is also named {name!r} in the ids"))
        settings = []
        for label, value, path in entries:
            fields = value if bundle else {key: value}
            for field in fields:
                where = path + (field,) if bundle else at
                if bundle and not re.match(SWEEP_FIELD, str(field)):
                    errors.append(doc.error(where, "cannot be swept: a bundle sets dtype, mode, tolerance, "
                                                   "attributes.NAME, params.NAME, state.NAME or inputs.NAME"))
                elif swept.setdefault(field, key) != key:
                    errors.append(doc.error(where, f"is also swept by sweep.{swept[field]}"))
                elif _get(doc.data, _field_path(field)) is not _MISSING:
                    errors.append(doc.error(_field_path(field), f"is set here and swept in sweep.{key}: remove one"))
            settings.append((label, {_field_path(str(f)): v for f, v in fields.items()},
                             {_field_path(str(f)): (path + (f,) if bundle else path) for f in fields}))
        axes.append((name, settings))
    if errors:
        raise CaseErrors(list({(e.line, e.field, e.message): e for e in errors}.values()))
    return axes


_MISSING = object()


def _get(data: dict, path: tuple):
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _check_sweepable(doc: Document) -> None:
    """A sweep says what it covers, and all its expected values come from the reference."""
    data, errors = doc.data, validate_sweep(doc)
    if not str(data.get("description", "")).strip():
        errors.append(doc.error(("sweep",), "a sweep needs a description: say what the swept cases cover"))
    wanted = [(("expected",), data.get("expected"))] if "expected" in data else []
    steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    wanted += [(("steps", i, "expected"), s.get("expected")) for i, s in enumerate(steps) if isinstance(s, dict)]
    for path, expected in wanted:
        values = expected.values() if isinstance(expected, dict) else [expected]
        if not all(v == "reference" or (isinstance(v, dict) and v.get("values") == "reference") for v in values):
            errors.append(doc.error(path, "a sweep's expected outputs must all be `reference` "
                                          "(numbers written by hand cannot hold for every swept value)"))
    if errors:
        raise CaseErrors(errors)


def expand(doc: Document) -> list[Document]:
    """``[doc]`` when it does not sweep; else one :class:`SweptDocument` per combination.

    The combinations are the cartesian product of the sweep's keys, in the order
    written (the last key varies fastest). Raises CaseErrors for a malformed sweep.
    """
    if not isinstance(doc.data, dict) or "sweep" not in doc.data:
        return [doc]
    _check_sweepable(doc)
    axes = _sweep_axes(doc)
    total = int(np.prod([len(settings) for _, settings in axes]))
    if total > MAX_SWEEP_CASES:
        raise CaseErrors([doc.error(("sweep",), f"expands into {total} cases, more than {MAX_SWEEP_CASES}: "
                                                f"split it into documents a reviewer can read")])
    base = {k: v for k, v in doc.data.items() if k != "sweep"}
    base_lines = {p: n for p, n in doc.lines.items() if p[:1] != ("sweep",)}
    out = []
    for combination in itertools.product(*(settings for _, settings in axes)):
        data, lines = copy.deepcopy(base), dict(base_lines)
        labels = []
        for (name, _), (label, fields, paths) in zip(axes, combination):
            labels.append((name, label))
            for field, value in fields.items():
                parent = data
                for depth, part in enumerate(field[:-1]):
                    parent = parent.setdefault(part, {})
                    lines.setdefault(field[:depth + 1], doc.line(paths[field]))
                parent[field[-1]] = copy.deepcopy(value)
                source = paths[field]
                for p, n in doc.lines.items():
                    if p[:len(source)] == source:
                        lines[field + p[len(source):]] = n
        out.append(SweptDocument(doc.file, data, lines, labels=tuple(labels)))
    return out
