"""``conformance explain``: which convention produced these numbers?

The user gives an input, the parameters they know, and one or more observed
outputs (their own formula's, a framework's). For each observation this module
tries the canonical semantics in each candidate mode (the one given, or both
training and inference), then the diagnosis catalog, and answers with the
convention that reproduces the numbers and its formula. A question is a small
YAML document, a case without ``id``/``source``/``expected``::

    op: batch_norm                 # default batch_norm
    dtype: float64                 # default float64: printed numbers are not rounded to a dtype
    attributes: {epsilon: 1e-3}
    params: {gamma: [1.0055743], beta: [-0.016652612]}
    state: {moving_mean: [-0.089603029], moving_variance: [0.000436493]}
    mode: inference                # optional; omitted: both modes are tried
    inputs: {x: [[-0.077417567]]}
    observed:                      # named observations, each {output: values}
      my formula: {y: [[0.543057]]}
      tensorflow: {y: [[0.30664611]]}
    tolerance: {rtol: 1e-5, atol: 1e-6}   # optional: printed digits (this is the default)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .adapter import Array
from .diagnosis import by_name, diagnose, reference_outputs, residual
from .errors import CaseError, CaseErrors
from .load import build_case
from .reference import CANONICAL
from .yamlload import Document

DEFAULT_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
CANONICAL_FORMULA = {
    ("batch_norm", "training"): "y = gamma * (x - batch_mean) / sqrt(batch_variance + epsilon) + beta, "
                                "batch statistics biased (divide by n); epsilon inside the square root",
    ("batch_norm", "inference"): "y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta; "
                                 "epsilon inside the square root",
    ("moments", None): "mean = sum(x) / n; variance = sum((x - mean)^2) / n over the reduced axes",
}


@dataclass
class Explanation:
    name: str  # the observation's name
    mode: str | None
    verdict: str  # "canonical", "variant" or "unexplained"
    variants: list[str] = field(default_factory=list)
    text: str = ""
    formula: str = ""
    residual: float | None = None

    def lines(self) -> list[str]:
        out = [f"{self.name}: {self.text}"]
        if self.formula:
            out.append(f"    {self.formula}")
        return out


def _question_case(doc: Document, names: list[str], mode: str | None):
    data = {k: v for k, v in doc.data.items() if k != "observed"}
    data.setdefault("op", "batch_norm")
    data.setdefault("dtype", "float64")
    attributes = dict(data.get("attributes") or {})
    if "feature_axes" not in attributes and "reduction_axes" not in attributes:
        attributes["feature_axes"] = -1  # the Keras default axis
    data["attributes"] = attributes
    data.setdefault("tolerance", dict(DEFAULT_TOLERANCE))
    data.update(id="explain", source="conformance explain")
    if mode is not None:
        data["mode"] = mode
    data["expected"] = {name: "reference" for name in names}
    return build_case(Document(doc.file, data, doc.lines))


def _state_text(case) -> str:
    parts = [f"{k} {np.round(v, 8).tolist()}" for k, v in case.state.items()]
    initial = all(np.all(v == ops.get(case.op).STATE[k]) for k, v in case.state.items())
    return ", ".join(parts) + (" (their initial values)" if initial and parts else "")


def explain(doc: Document) -> list[Explanation]:
    """One Explanation per observation in the question ``doc``."""
    observed = doc.data.get("observed") if isinstance(doc.data, dict) else None
    if not isinstance(observed, dict) or not observed:
        raise CaseErrors([doc.error(("observed",), "give observed outputs: {name: {output: values}}")])
    op = ops.get(doc.data.get("op", "batch_norm")) if doc.data.get("op", "batch_norm") in ops.OPS else None
    if op is None:
        raise CaseErrors([doc.error(("op",), f"unknown op; one of {', '.join(ops.OPS)}")])
    if "mode" in doc.data or not op.HAS_MODE:
        modes = [doc.data.get("mode")]
    else:
        modes = ["training", "inference"]
    out = []
    for name, outputs in observed.items():
        if not isinstance(outputs, dict) or not outputs:
            raise CaseErrors([doc.error(("observed", name), "must map output names (y, ...) to values")])
        unknown = [k for k in outputs if k not in op.OUTPUTS]
        if unknown:
            raise CaseErrors([doc.error(("observed", name, unknown[0]), f"unknown output of {op.NAME}; "
                                                                        f"one of {', '.join(op.OUTPUTS)}")])
        out.append(_explain_one(doc, name, outputs, modes))
    return out


def _explain_one(doc: Document, name: str, outputs: dict, modes: list) -> Explanation:
    candidates = []
    for mode in modes:
        case = _question_case(doc, list(outputs), mode)
        try:
            produced = [{k: Array(np.asarray(v, dtype=np.float64).reshape(case.steps[0].expected[k].values.shape),
                                  case.steps[0].expected[k].dtype) for k, v in outputs.items()}]
        except ValueError as exc:
            raise CaseErrors([CaseError(doc.file, doc.line(("observed", name)), f"observed.{name}", str(exc))])
        formula = CANONICAL_FORMULA.get((case.op, mode), "")
        found_residual = residual(case, produced, reference_outputs(case, CANONICAL, None))
        if found_residual is not None:
            where = f" in {mode} mode" if mode else ""
            extra = f" with {_state_text(case)}" if mode == "inference" else ""
            return Explanation(name, mode, "canonical", [], f"the canonical semantics{where}{extra} "
                               f"(residual {found_residual:.2g})", formula, found_residual)
        found = diagnose(case, produced)
        for match in found["matches"]:
            candidates.append((len(match["variants"]), match["residual"], mode, match))
    if not candidates:
        return Explanation(name, None, "unexplained", [], "unexplained: no convention in the catalog, "
                           "nor any pair of them, reproduces these numbers")
    _, best, mode, match = min(candidates, key=lambda c: (c[0], c[1]))
    formulas = "; ".join(f for f in (by_name(v).formula for v in match["variants"]) if f)
    where = f" ({mode} mode)" if mode and len(modes) > 1 else ""
    return Explanation(name, mode, "variant", match["variants"],
                       f"{match['description']}{where} (residual {best:.2g})", formulas, best)
