"""Loading case files into canonical :class:`~conformance.cases.Case` objects.

``load_cases(paths)`` walks files and folders (``*.yaml``/``*.yml``), checks each
document against the schema, then the rules that need the data, and raises
:class:`CaseErrors` listing every mistake found, one line each. Expected values
marked ``reference`` are filled in from the float64 reference here, so every
loaded case carries concrete numbers. A document with a ``sweep`` block expands
into one case per combination of the swept values first (:mod:`conformance.sweep`).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np

from . import ops, sweep
from .cases import Case, Expected, Setting, Step
from .compare import DEFAULT_CONDITION_FACTOR, Tolerance
from .dtypes import DEFAULT_TOLERANCE, round_to
from .errors import CaseError, CaseErrors
from .reference import CANONICAL
from .schema import validate_document
from .yamlload import Document, load_documents, parse_documents

SHORTHAND = ("mode", "inputs", "expected")
#: Folders of declaration files, not cases (``cases/known-divergences/*.yaml``).
SKIP_DIR = "known-divergences"


def case_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every case file under ``paths``, sorted; a missing path is a CaseError.

    Folders named ``known-divergences`` below a given folder are skipped (they hold
    declarations, not cases); a file named explicitly is always taken.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()
                                and SKIP_DIR not in f.relative_to(p).parts[:-1]))
        elif p.is_file():
            files.append(p)
        else:
            raise CaseErrors([CaseError(str(p), None, "", "no such file or directory")])
    return files


def load_cases(paths: Iterable[str | Path]) -> list[Case]:
    """Load and check every case under ``paths``; raise CaseErrors on any mistake."""
    cases, errors, seen = [], [], {}
    for file in case_files(paths):
        try:
            docs = load_documents(file)
        except CaseError as exc:
            errors.append(exc)
            continue
        for doc in docs:
            built, doc_errors = build_cases(doc)
            errors.extend(doc_errors)
            for case, case_doc in built:
                if case.id in seen:
                    errors.append(case_doc.error(("id",), f"duplicate id {case.id!r} (first in {seen[case.id]})"))
                    continue
                seen[case.id] = f"{case.path}:{case.line}"
                cases.append(case)
    if errors:
        raise CaseErrors(errors)
    return cases


def cases_from_text(text: str, file: str = "<string>") -> list[Case]:
    """Cases from YAML text (tests and ``explain`` use this); same checks as files."""
    cases, errors = [], []
    for doc in parse_documents(text, file):
        built, doc_errors = build_cases(doc)
        cases.extend(case for case, _ in built)
        errors.extend(doc_errors)
    if errors:
        raise CaseErrors(errors)
    return cases


def build_cases(doc: Document) -> tuple[list[tuple[Case, Document]], list[CaseError]]:
    """The cases of one document (several if it sweeps), each with its document, and every error."""
    try:
        docs = sweep.expand(doc)
    except CaseErrors as exc:
        return [], exc.errors
    built, errors = [], []
    for one in docs:
        try:
            built.append((build_case(one), one))
        except CaseErrors as exc:
            errors.extend(exc.errors)
        except CaseError as exc:
            errors.append(exc)
    return built, (sweep.merge_errors(errors, len(docs)) if len(docs) > 1 else errors)


# -- arrays -------------------------------------------------------------------------


def _array(doc: Document, path: tuple, value, dtype: str) -> np.ndarray:
    """A nested list or a generator → float64 array rounded to ``dtype``."""
    if isinstance(value, dict):
        values = _generate(doc, path, value)
    else:
        try:
            values = np.array(value, dtype=np.float64)
        except (ValueError, TypeError):
            raise doc.error(path, "ragged array: every row must have the same length") from None
    return round_to(values, dtype)


def _generate(doc: Document, path: tuple, spec: dict) -> np.ndarray:
    shape = tuple(spec["shape"])
    kind = spec["generate"]
    if kind == "arange":
        start, step = spec.get("start", 0.0), spec.get("step", 1.0)
        return start + step * np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    if kind == "constant":
        if "value" not in spec:
            raise doc.error(path + ("value",), "a constant generator needs a value")
        return np.full(shape, float(spec["value"]))
    if "seed" not in spec:
        raise doc.error(path + ("seed",), f"a {kind} generator needs a seed (results must be reproducible)")
    rng = np.random.default_rng(spec["seed"])
    if kind == "normal":
        return rng.normal(spec.get("loc", 0.0), spec.get("scale", 1.0), size=shape)
    return rng.uniform(spec.get("low", 0.0), spec.get("high", 1.0), size=shape)


def _axis_list(doc: Document, attrs: dict, key: str, ndim: int) -> tuple[int, ...]:
    """``attrs[key]`` (an int or a list) → sorted non-negative axes; range and repeats checked."""
    raw = attrs[key]
    raw = [raw] if isinstance(raw, int) else list(raw)
    axes = []
    for i, a in enumerate(raw):
        if not -ndim <= a < ndim:
            raise doc.error(("attributes", key) + ((i,) if isinstance(attrs[key], list) else ()),
                            f"axis {a} is out of range for a {ndim}-D input")
        axes.append(a % ndim)
    if len(set(axes)) != len(axes):
        raise doc.error(("attributes", key), f"repeats an axis: {raw}")
    return tuple(sorted(axes))


def _channel_axes(doc: Document, attrs: dict, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Ops with one channel axis: axis 0 is the batch, the channel is kept, the rest reduced."""
    if "feature_axes" not in attrs:
        raise doc.error(("attributes",), "give feature_axes: the channel axis (axis 0 is the batch axis)")
    if ndim < 2:
        raise doc.error(("attributes", "feature_axes"), f"needs a batch axis and a channel axis; x is {ndim}-D")
    channel = _axis_list(doc, attrs, "feature_axes", ndim)
    if channel == (0,):
        raise doc.error(("attributes", "feature_axes"), "axis 0 is the batch axis; the channel axis must be another")
    return channel, tuple(a for a in range(1, ndim) if a not in channel)


def _axes(doc: Document, attrs: dict, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    given = [k for k in ("feature_axes", "reduction_axes") if k in attrs]
    if len(given) != 1:
        what = "both" if given else "neither"
        raise doc.error(("attributes",), f"give exactly one of feature_axes (kept, Keras sense) "
                                         f"or reduction_axes (reduced, tf.nn.moments sense); found {what}")
    key = given[0]
    chosen = _axis_list(doc, attrs, key, ndim)
    other = tuple(a for a in range(ndim) if a not in chosen)
    return (chosen, other) if key == "feature_axes" else (other, chosen)


def _setting(value) -> Setting:
    if isinstance(value, dict):
        return Setting(value["framework_default"], framework_default=True)
    return Setting(value)


# -- building a case ------------------------------------------------------------------


def build_case(doc: Document) -> Case:
    """Check one document and build its Case."""
    errors = validate_document(doc)
    if errors:
        raise CaseErrors(errors)
    data = doc.data
    op = ops.get(data["op"])
    dtype = data.get("dtype", "float32")

    # Steps: either a `steps` list or the one-step shorthand at the top level.
    shorthand = [k for k in SHORTHAND if k in data]
    if "steps" in data and shorthand:
        raise doc.error((shorthand[0],), "give either `steps` or top-level mode/inputs/expected, not both")
    if "steps" in data:
        raw_steps, base = data["steps"], ("steps",)
    else:
        for key in ("inputs", "expected") + (("mode",) if op.HAS_MODE else ()):
            if key not in data:
                raise doc.error((), f"{key!r} is required (or give a `steps` list)")
        raw_steps, base = [{k: data[k] for k in shorthand}], ()

    def step_path(i: int, *rest) -> tuple:
        return (base + (i,) + rest) if base else rest

    inputs = [{name: _array(doc, step_path(i, "inputs", name), value, dtype)
               for name, value in s["inputs"].items()} for i, s in enumerate(raw_steps)]
    x0 = inputs[0]["x"]
    if x0.ndim == 0:
        raise doc.error(step_path(0, "inputs", "x"), "must be an array of at least one dimension")

    attrs = dict(data["attributes"])
    axis_keys = ("feature_axes", "reduction_axes", "param_axes")
    if getattr(op, "AXES", "kept_or_reduced") == "channel":
        feature_axes, reduction_axes = _channel_axes(doc, attrs, x0.ndim)
    else:
        feature_axes, reduction_axes = _axes(doc, attrs, x0.ndim)
    derived = {"feature_axes": feature_axes, "reduction_axes": reduction_axes}
    param_axes = (_axis_list(doc, attrs, "param_axes", x0.ndim) if "param_axes" in attrs
                  else derived[getattr(op, "PARAM_AXES", "feature_axes")])
    attributes = {k: Setting(v) for k, v in op.DEFAULTS.items()}
    attributes.update({k: _setting(v) for k, v in attrs.items() if k not in axis_keys})
    attributes["feature_axes"], attributes["reduction_axes"] = Setting(feature_axes), Setting(reduction_axes)
    attributes["param_axes"] = Setting(param_axes)
    feature_shape = tuple(x0.shape[a] for a in feature_axes)
    param_shape = tuple(x0.shape[a] for a in param_axes)

    # Axes whose sizes every step must share: those the parameters and the state span.
    fixed = sorted(set(param_axes if op.PARAMS else ()) | set(feature_axes if op.STATE or not op.PARAMS else ()))
    for i, step_inputs in enumerate(inputs):
        x = step_inputs["x"]
        if i and (x.ndim != x0.ndim or any(x.shape[a] != x0.shape[a] for a in fixed)):
            raise doc.error(step_path(i, "inputs", "x"),
                            f"shape {x.shape} does not fit step 1's {x0.shape} on axes {fixed} "
                            f"(the axes the parameters and state span)")
        if "dy" in step_inputs and step_inputs["dy"].shape != x.shape:
            raise doc.error(step_path(i, "inputs", "dy"),
                            f"has shape {step_inputs['dy'].shape}; the upstream gradient has x's shape {x.shape}")

    def feature_array(section: str, name: str, fill: float, shape: tuple, axes: tuple, what: str) -> np.ndarray:
        raw = data.get(section, {}).get(name)
        if raw is None:
            return np.full(shape, fill)
        values = _array(doc, (section, name), raw, dtype)
        if values.ndim == 0:
            return np.full(shape, float(values))
        if values.shape != shape:
            raise doc.error((section, name), f"has shape {values.shape}, the {what} shape is {shape} "
                                             f"(input dims {list(axes)} of {x0.shape})")
        return values

    if attributes.get("center") and not attributes["center"].value and "beta" in data.get("params", {}):
        raise doc.error(("params", "beta"), "is given but center is false (beta would be ignored)")
    if attributes.get("scale") and not attributes["scale"].value and "gamma" in data.get("params", {}):
        raise doc.error(("params", "gamma"), "is given but scale is false (gamma would be ignored)")
    what = "feature" if param_axes == feature_axes else "parameter"
    params = {n: feature_array("params", n, fill, param_shape, param_axes, what) for n, fill in op.PARAMS.items()}
    state = {n: feature_array("state", n, fill, feature_shape, feature_axes, "feature")
             for n, fill in op.STATE.items()}

    tol = data.get("tolerance", {})
    base_tol = DEFAULT_TOLERANCE[dtype]
    factor = tol.get("condition_aware", False)
    factor = DEFAULT_CONDITION_FACTOR if factor is True else float(factor or 0.0)
    tolerance = Tolerance(tol.get("rtol", base_tol["rtol"]), tol.get("atol", base_tol["atol"]), factor)

    steps = [Step(mode=_setting(s["mode"]) if "mode" in s else Setting(None), inputs=inputs[i])
             for i, s in enumerate(raw_steps)]
    case = Case(id=data["id"] + getattr(doc, "suffix", ""), op=op.NAME, source=data["source"], dtype=dtype, path=doc.file,
                line=doc.line(()), attributes=attributes, params=params, state=state, steps=steps,
                tolerance=tolerance, description=data.get("description", ""), tags=tuple(data.get("tags", ())))
    if hasattr(op, "check"):
        op.check(case, doc)
    _fill_expected(doc, case, op, raw_steps, step_path)
    return case


@contextmanager
def _quiet():
    """No RuntimeWarnings from NumPy on NaN, inf or empty input (the case asked for them)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _fill_expected(doc: Document, case: Case, op, raw_steps: list, step_path) -> None:
    reference = None
    for i, (raw, step) in enumerate(zip(raw_steps, case.steps)):
        wanted = raw["expected"]
        if wanted == "reference":
            wanted = {name: "reference" for name in op.default_outputs(step.mode.value, case, step)}
        for name in wanted:
            reason = op.why_not(case, i, name)
            if reason:
                raise doc.error(step_path(i, "expected", name), reason)
        for name, spec in wanted.items():
            path = step_path(i, "expected", name)
            spec = spec if isinstance(spec, dict) else {"values": spec}
            shape = op.output_shape(name, case, step.inputs["x"].shape)
            if spec["values"] == "reference":
                if reference is None:
                    with _quiet():  # NaN, inf and empty inputs are deliberate in edge cases
                        reference = op.reference(case, CANONICAL)
                values, source = reference[i][name], "reference"
            else:
                try:
                    values, source = np.array(spec["values"], dtype=np.float64), "case"
                except (ValueError, TypeError):
                    raise doc.error(path, "ragged array: every row must have the same length") from None
                if values.shape != shape:
                    raise doc.error(path, f"has shape {values.shape}, but {name} has shape {shape}")
            dtype = spec.get("dtype", op.output_dtype(name, case))
            tol = Tolerance(spec.get("rtol", case.tolerance.rtol), spec.get("atol", case.tolerance.atol),
                            case.tolerance.condition_factor)
            if tol.condition_factor:
                scale = float(np.nanmax(np.abs(values))) if values.size else 0.0
                with _quiet():
                    tol = tol.widened(case.dtype, op.condition(case, i), scale)
            step.expected[name] = Expected(values=np.asarray(values, dtype=np.float64), dtype=dtype,
                                           source=source, tolerance=tol)

