"""Known divergences: declared once, with the reason and a link.

Declarations live beside the cases, in ``cases/known-divergences/*.yaml`` (one
file per framework, as array-api-tests keeps its ``xfails.txt``). Each file is
a YAML list::

    - case: batch_norm/layout/nchw-*          # case id, or a list of them; shell-style globs allowed
      adapter: torch.nn                       # adapter name; glob allowed ("torch.*")
      outputs: [moving_variance]              # optional: the outputs that may differ
      diagnosis: [unbiased-moving-variance]   # optional: the variants the diagnosis must name
      when: "torch>=2.0"                      # optional: version bound on the adapter's framework
      expect: diverge                         # optional: diverge (default) or error
      reason: running_var is updated with the unbiased batch variance
      link: https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html

:func:`apply` turns a covered ``diverge`` (or ``error``, with ``expect: error``)
into ``expected-divergence``, trying every declaration that covers the result;
it is idempotent, so stored results can be re-judged against edited
declarations. A ``pass`` reads ``xpass`` when a declaration names its case
*exactly*: a glob declares a cause (where these cases diverge, it is because
of this), not that each of them diverges. :func:`stale` lists declarations
that cover no result of an adapter that ran, and globs that cover no
divergence.
``outputs`` entries match an output key with or without its ``stepN.`` prefix;
a divergence in an output the declaration does not name stays a ``diverge``.
With ``diagnosis``, a divergence is covered only when one of its diagnosis
matches includes every variant named: the declaration then says *why* the
adapter differs, and a different divergence on the same case is not hidden.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jsonschema
from packaging.requirements import InvalidRequirement, Requirement

from .diagnosis import catalog
from .errors import CaseError, CaseErrors
from .results import Result, RunRecord
from .yamlload import Document, load_documents

DIRNAME = "known-divergences"

SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["case", "adapter", "reason"],
        "properties": {
            "case": {"oneOf": [{"type": "string", "minLength": 1},
                               {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}]},
            "adapter": {"type": "string", "minLength": 1},
            "outputs": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "diagnosis": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "when": {"type": "string"},
            "expect": {"enum": ["diverge", "error"]},
            "reason": {"type": "string", "minLength": 1},
            "link": {"type": "string"},
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@dataclass(frozen=True)
class Declaration:
    case: tuple[str, ...]  # case-id patterns
    adapter: str
    reason: str
    file: str
    line: int | None
    outputs: tuple[str, ...] = ()
    diagnosis: tuple[str, ...] = ()
    when: Requirement | None = None
    expect: str = "diverge"
    link: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def covers(self, case: str, adapter: str) -> bool:
        return fnmatch.fnmatchcase(adapter, self.adapter) and any(fnmatch.fnmatchcase(case, p) for p in self.case)

    def names_exactly(self, case: str) -> bool:
        return case in self.case

    @property
    def is_glob(self) -> bool:
        return any(c in p for p in self.case for c in "*?[")

    def applies_to(self, info: dict) -> bool:
        """True when the adapter's framework (``info`` from RunRecord.adapters) meets ``when``."""
        if self.when is None:
            return True
        if _canonical(info.get("framework", "")) != _canonical(self.when.name) or not info.get("version"):
            return False
        return self.when.specifier.contains(info["version"], prereleases=True)

    def names(self, output_key: str) -> bool:
        return not self.outputs or output_key in self.outputs or output_key.split(".", 1)[-1] in self.outputs

    def explained_by(self, diagnosis: dict | None) -> bool:
        if not self.diagnosis:
            return True
        matches = (diagnosis or {}).get("matches", [])
        return any(set(self.diagnosis) <= set(m.get("variants", ())) for m in matches)

    def to_json(self) -> dict:
        return {"reason": self.reason, "link": self.link, "file": self.file, "line": self.line,
                "kind": self.expect, "when": str(self.when) if self.when else ""}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def default_paths(case_paths: Iterable[str | Path]) -> list[Path]:
    """For each case file or folder, the nearest ``known-divergences/`` in it or above it."""
    found: list[Path] = []
    for p in map(Path, case_paths):
        start = p.resolve() if p.is_dir() else p.resolve().parent
        for folder in (d / DIRNAME for d in (start, *start.parents)):
            if folder.is_dir():
                if folder not in found:
                    found.append(folder)
                break
    cwd = Path.cwd()
    return [f.relative_to(cwd) if f.is_relative_to(cwd) else f for f in found]


def load(paths: Iterable[str | Path]) -> list[Declaration]:
    """Declarations from files or folders of ``*.yaml``; CaseErrors lists every mistake."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.glob("*.y*ml") if f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise CaseErrors([CaseError(str(p), None, "", "no such file or directory")])
    declarations, errors = [], []
    for file in files:
        try:
            docs = load_documents(file)
        except CaseError as exc:
            errors.append(exc)
            continue
        for doc in docs:
            found, problems = _parse(doc)
            declarations += found
            errors += problems
    if errors:
        raise CaseErrors(errors)
    return declarations


def _parse(doc: Document) -> tuple[list[Declaration], list[CaseError]]:
    errors = [doc.error(tuple(e.absolute_path), e.message) for e in _VALIDATOR.iter_errors(doc.data)]
    if errors:
        return [], errors
    out, variants = [], {v.name for v in catalog()}
    for i, entry in enumerate(doc.data):
        unknown = [v for v in entry.get("diagnosis", ()) if v not in variants]
        if unknown:
            errors.append(doc.error((i, "diagnosis"), f"unknown variant {unknown[0]!r} (see conformance/variants.yaml)"))
            continue
        when = None
        if "when" in entry:
            try:
                when = Requirement(entry["when"])
            except InvalidRequirement as exc:
                errors.append(doc.error((i, "when"), f"not a version bound like 'torch>=2.0' ({exc})"))
                continue
        cases = entry["case"] if isinstance(entry["case"], list) else [entry["case"]]
        out.append(Declaration(case=tuple(cases), adapter=entry["adapter"], reason=entry["reason"],
                               file=doc.file, line=doc.line((i,)), outputs=tuple(entry.get("outputs", ())),
                               diagnosis=tuple(entry.get("diagnosis", ())),
                               when=when, expect=entry.get("expect", "diverge"), link=entry.get("link", "")))
    return out, errors


def _refusal(result: Result, decl: Declaration) -> str | None:
    """Why ``decl`` does not cover this divergence (None when it does)."""
    extra = [k for k, o in result.outputs.items() if o.get("status") == "diverge" and not decl.names(k)]
    if extra:
        return f"covers {', '.join(decl.outputs)} only, not {', '.join(extra)}"
    if not decl.explained_by(result.diagnosis):
        return f"expects the diagnosis {' + '.join(decl.diagnosis)}"
    return None


def judge(result: Result, declarations: list[Declaration], info: dict) -> None:
    """Re-judge one result; ``info`` is its adapter's entry in RunRecord.adapters (framework, version)."""
    outcome = result.outcome
    if outcome not in ("pass", "diverge", "error"):
        return
    result.status, result.declared = outcome, None
    found = [d for d in declarations if d.covers(result.case, result.adapter) and d.applies_to(info)]
    if outcome == "pass":
        exact = next((d for d in found if d.names_exactly(result.case)), None)
        if exact:
            result.status, result.declared = "xpass", exact.to_json()
        return
    refusals = []
    for decl in (d for d in found if d.expect == outcome):
        why = _refusal(result, decl) if outcome == "diverge" else None
        if why is None:
            result.status, result.declared = "expected-divergence", decl.to_json()
            return
        refusals.append(f"a known-divergence declaration ({decl.where}) {why}")
    for note in refusals[:1]:
        if note not in result.notes:
            result.notes.append(note)


def apply(record: RunRecord, declarations: list[Declaration]) -> None:
    """Re-judge every result against ``declarations`` (the first that matches its outcome wins)."""
    for result in record.results:
        judge(result, declarations, record.adapters.get(result.adapter, {}))


def stale(record: RunRecord, declarations: list[Declaration]) -> list[str]:
    """Warnings for declarations that cover no result of an adapter that ran in ``record``."""
    ran = {name for name, info in record.adapters.items() if info.get("status") not in ("skipped", "error")}
    warnings = []
    for decl in declarations:
        adapters = [a for a in ran if fnmatch.fnmatchcase(a, decl.adapter)]
        if not adapters or not all(decl.applies_to(record.adapters[a]) for a in adapters):
            continue  # its adapter did not run here, or the version bound excludes this run
        covered = [r for r in record.results if r.adapter in adapters and decl.covers(r.case, r.adapter)]
        what = f"{', '.join(decl.case)} on {decl.adapter}"
        if not covered:
            warnings.append(f"{decl.where}: stale declaration: no case matches {what}")
        elif all(r.status in ("unsupported", "skipped") for r in covered):
            warnings.append(f"{decl.where}: stale declaration: {what} is never run (unsupported)")
        elif decl.is_glob and not any(r.declared and r.declared.get("line") == decl.line
                                      and r.declared.get("file") == decl.file for r in covered):
            warnings.append(f"{decl.where}: stale declaration: {what} covers no divergence")
    return warnings

