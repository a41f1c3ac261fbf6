"""Why does it differ: name the semantic variant that reproduces a divergence.

:func:`diagnose` re-runs the operator's float64 reference under each variant
of the catalog (``variants.yaml``: other conventions, other framework
defaults, swapped axes or modes) and then under each pair of variants, and
keeps those under which *every* output the adapter produced matches within
the case's own tolerance. Values are compared, not dtypes: a result that is
right in the wrong dtype is diagnosed as such.

The diagnosis is a dict stored on the result::

    {"summary": "step2.moving_variance: unbiased (n - 1) variance in the moving update (residual 3e-08)",
     "matches": [{"variants": ["unbiased-moving-variance"], "description": "...", "residual": 3e-08}]}

``summary`` is ``"unexplained"`` when no variant or pair reproduces the output.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import ops
from .cases import Case, Setting
from .compare import Tolerance, compare
from .dtypes import DEFAULT_TOLERANCE
from .reference import CANONICAL, Conventions
from .yamlload import parse_documents

CATALOG_PATH = Path(__file__).with_name("variants.yaml")
#: Above this many input elements, only single variants are tried (pairs cost ~25x more references).
PAIRS_UP_TO = 100_000
TRANSFORMS = ("swap_axes", "swap_modes")


@dataclass(frozen=True, eq=False)
class Variant:
    """One entry of the catalog."""

    name: str
    description: str
    formula: str = ""
    conventions: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    transform: str | None = None
    ops: tuple[str, ...] = ()
    #: compare at this dtype's default tolerance (a float64 case computed in float32)
    precision: str | None = None

    @property
    def size(self) -> int:
        """How much it changes: simpler explanations are listed first."""
        return len(self.conventions) + len(self.attributes) + bool(self.transform) + bool(self.precision)

    def conflicts(self, other: "Variant") -> bool:
        """Two variants that set the same thing cannot be combined."""
        return bool(set(self.conventions) & set(other.conventions) or set(self.attributes) & set(other.attributes)
                    or (self.transform and self.transform == other.transform))


@lru_cache(maxsize=None)
def catalog(path: str | None = None) -> tuple[Variant, ...]:
    """The variants of ``variants.yaml`` (or of ``path``), checked."""
    file = Path(path) if path else CATALOG_PATH
    (doc,) = parse_documents(file.read_text(encoding="utf-8"), str(file))
    fields = {f.name for f in dataclasses.fields(Conventions)}
    out = []
    for i, entry in enumerate(doc.data):
        unknown = set(entry.get("conventions", {})) - fields
        if unknown or entry.get("transform", TRANSFORMS[0]) not in TRANSFORMS or "name" not in entry:
            raise ValueError(f"{file}:{doc.line((i,))}: a variant needs a name, Conventions fields "
                             f"({', '.join(sorted(fields))}) and a transform in {TRANSFORMS}")
        out.append(Variant(name=entry["name"], description=entry.get("description", entry["name"]),
                           formula=entry.get("formula", ""), conventions=dict(entry.get("conventions", {})),
                           attributes=dict(entry.get("attributes", {})), transform=entry.get("transform"),
                           ops=tuple(entry.get("ops", ())), precision=entry.get("precision")))
    return tuple(out)


def by_name(name: str) -> Variant:
    for variant in catalog():
        if variant.name == name:
            return variant
    raise KeyError(name)


# -- applying variants ------------------------------------------------------------------
def _refill(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A constant array refilled to ``shape``; None when its values are not all equal."""
    flat = np.asarray(values).ravel()
    if flat.size and not np.all(flat == flat[0]):
        return None
    return np.full(shape, flat[0] if flat.size else 0.0)


def _swap_axes(case: Case) -> Case | None:
    attributes = dict(case.attributes)
    attributes["feature_axes"] = Setting(case.reduction_axes)
    attributes["reduction_axes"] = Setting(case.feature_axes)
    if "param_axes" in attributes:  # parameters follow the kept axes
        attributes["param_axes"] = Setting(case.reduction_axes)
    swapped = dataclasses.replace(case, attributes=attributes)
    params = {k: _refill(v, getattr(swapped, "param_shape", swapped.feature_shape)) for k, v in case.params.items()}
    state = {k: _refill(v, swapped.feature_shape) for k, v in case.state.items()}
    if any(v is None for v in (*params.values(), *state.values())):
        return None  # per-feature parameters cannot follow the axes: not a meaningful variant
    return dataclasses.replace(swapped, params=params, state=state)


def apply(variants: tuple[Variant, ...], case: Case) -> tuple[Case, Conventions, list[str] | None] | None:
    """The case, conventions and modes under ``variants``; None where they cannot apply."""
    op = ops.get(case.op)
    conv, modes = CANONICAL, None
    for v in variants:
        if v.ops and case.op not in v.ops:
            return None
        conv = conv.with_(**{k: (case.dtype if val == "$dtype" else val) for k, val in v.conventions.items()})
        if v.attributes:
            if any(name not in op.DEFAULTS for name in v.attributes):
                return None
            attributes = dict(case.attributes)
            attributes.update({k: Setting(val) for k, val in v.attributes.items()})
            case = dataclasses.replace(case, attributes=attributes)
        if v.transform == "swap_axes":
            case = _swap_axes(case)
            if case is None:
                return None
        elif v.transform == "swap_modes":
            if not op.HAS_MODE:
                return None
            modes = [{"training": "inference", "inference": "training"}.get(s.mode.value, s.mode.value)
                     for s in case.steps]
    return case, conv, modes


# -- matching ---------------------------------------------------------------------------
def reference_outputs(case: Case, conv: Conventions, modes) -> list[dict] | None:
    try:
        with np.errstate(all="ignore"):
            return ops.get(case.op).reference(case, conv, modes)
    except Exception:  # a variant the operator cannot compute (shapes, missing state): no match
        return None


def residual(case: Case, produced: list[dict], reference: list[dict] | None,
              precision: str | None = None) -> float | None:
    """Largest abs error when every produced output matches ``reference`` within tolerance, else None."""
    if reference is None:
        return None
    worst = 0.0
    for i, step in enumerate(case.steps):
        for name, exp in step.expected.items():
            actual = produced[i].get(name) if i < len(produced) else None
            if actual is None:
                continue
            if name not in reference[i]:
                return None
            cmp = compare(name, reference[i][name], actual.dtype, actual.values, actual.dtype,
                          _tolerance(exp, precision or actual.dtype))
            if cmp.status != "pass":
                return None
            worst = max(worst, cmp.max_abs_error or 0.0)
    return worst


def _tolerance(exp, dtype: str) -> Tolerance:
    """The case's tolerance, or the returned dtype's default where that is looser (float64 → float32)."""
    if dtype == exp.dtype or dtype not in DEFAULT_TOLERANCE:
        return exp.tolerance
    own = DEFAULT_TOLERANCE[dtype]
    return Tolerance(max(own["rtol"], exp.tolerance.rtol), max(own["atol"], exp.tolerance.atol))


def _restrict(outputs: list[dict], case: Case, produced: list[dict]) -> list[dict]:
    """Only the outputs that were compared: two variants that agree on them are one explanation."""
    return [{k: v for k, v in out.items() if k in step.expected and k in got}
            for out, step, got in zip(outputs, case.steps, produced)]


def _same(a: list[dict], b: list[dict]) -> bool:
    return all(k in y and np.array_equal(x[k], y[k], equal_nan=True) for x, y in zip(a, b) for k in x)


def diagnose(case: Case, produced: list[dict], *, max_combination: int = 2,
             variants: tuple[Variant, ...] | None = None) -> dict:
    """Variants (single, then pairs) that reproduce ``produced``: the outputs of each step as
    :class:`~conformance.adapter.Array`."""
    variants = catalog() if variants is None else variants
    if sum(x.size for step in case.steps for x in step.inputs.values()) > PAIRS_UP_TO:
        max_combination = 1
    canonical = reference_outputs(case, CANONICAL, None)
    if canonical is not None and residual(case, produced, canonical) is not None:
        dtypes = [f"{case.output_key(i, n)} is {got[n].dtype}, expected {exp.dtype}"
                  for i, (step, got) in enumerate(zip(case.steps, produced))
                  for n, exp in step.expected.items() if n in got and got[n].dtype != exp.dtype]
        return {"summary": "values match the canonical semantics; only the dtype differs: " + "; ".join(dtypes),
                "matches": [{"variants": [], "description": "canonical values in another dtype", "residual": 0.0}]}
    # Variants that change nothing on this case are dropped: they cannot explain anything.
    singles: dict[tuple[Variant, ...], list[dict]] = {}
    for v in variants:
        applied = apply((v,), case)
        outputs = reference_outputs(*applied) if applied else None
        if outputs is not None and canonical is not None and not _same(outputs, canonical):
            singles[(v,)] = outputs
    # Precision-only variants change no reference value: they are tried as they are.
    singles.update({(v,): canonical for v in variants if v.precision and not v.conventions and not v.attributes
                    and not v.transform})
    useful = sorted((combo[0] for combo in singles), key=lambda v: v.size)
    found: list[tuple[dict, list[dict]]] = []
    for size in range(1, max_combination + 1):
        for combo in itertools.combinations(useful, size):
            if any(a.conflicts(b) for a, b in itertools.combinations(combo, 2)):
                continue
            if combo in singles:
                outputs = singles[combo]
            else:
                applied = apply(combo, case)
                outputs = reference_outputs(*applied) if applied else None
            precision = next((v.precision for v in combo if v.precision), None)
            worst = residual(case, produced, outputs, precision)
            compared = _restrict(outputs, case, produced) if worst is not None else None
            if worst is not None and not any(_same(compared, seen) and not precision for _, seen in found):
                found.append(({"variants": [v.name for v in combo], "residual": worst,
                               "description": " and ".join(v.description for v in combo)}, compared))
        if found:
            break
    matches = [m for m, _ in found]
    return {"summary": summarize(case, produced, matches), "matches": matches}


def _diverging_outputs(case: Case, produced: list[dict]) -> list[str]:
    keys = []
    for i, step in enumerate(case.steps):
        for name, exp in step.expected.items():
            actual = produced[i].get(name) if i < len(produced) else None
            if actual is not None and compare(name, exp.values, actual.dtype, actual.values, actual.dtype,
                                              _tolerance(exp, actual.dtype)).status != "pass":
                keys.append(case.output_key(i, name))
    return keys


def summarize(case: Case, produced: list[dict], matches: list[dict], limit: int = 3) -> str:
    if not matches:
        return "unexplained"
    keys = _diverging_outputs(case, produced)
    head = f"{', '.join(keys)}: " if keys else ""
    shown = " or ".join(f"{m['description']} (residual {m['residual']:.2g})" for m in matches[:limit])
    more = f" (+{len(matches) - limit} more)" if len(matches) > limit else ""
    return head + shown + more
