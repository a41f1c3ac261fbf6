"""The regression gate: compare a run with a stored baseline.

A baseline keeps, per adapter and per framework version, each case's outcome
(``pass``, ``diverge``, ``error``, ``unsupported``; a declared divergence
counts as the divergence it is) and, for divergences, the max abs error of
each diverging output::

    {"schema_version": 1,
     "adapters": {"torch.nn": {"torch 2.13.0": {"batch_norm/hand/...": {"status": "diverge",
                                                                        "errors": {"moving_variance": 0.0108}}}}}}

:func:`check` fails the gate on a new divergence or error (a case or adapter
the baseline does not have that diverges or errors, or a pass or an
unsupported result that now diverges or errors, or a divergence that now
errors), on an output that newly diverges, and on an error that grew beyond
``growth`` times its baseline. It lists improvements (divergences that now
pass, errors that shrank) and other changes without failing. An adapter whose
framework version has no section is compared with the newest section stored
for it, and the report says so; ``update`` adds or replaces the sections of
the versions in the run and keeps the others.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .results import Result, RunRecord, dumps

SCHEMA_VERSION = 1
DEFAULT_GROWTH = 2.0
BAD = ("diverge", "error")


@dataclass
class GateReport:
    failures: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [f"gate: {'PASSED' if self.passed else 'FAILED'}: {self.compared} results compared, "
               f"{len(self.failures)} regressions, {len(self.improvements)} improvements, {len(self.changes)} other changes"]
        for title, items in (("regression", self.failures), ("improved", self.improvements),
                             ("changed", self.changes), ("note", self.notes)):
            out += [f"  {title}: {item}" for item in items]
        return out


def version_key(info: dict) -> str:
    return f"{info.get('framework', '?')} {info.get('version', '?')}"


def _errors(result: Result) -> dict[str, float | None]:
    """Output key → max abs error for every diverging output (None where shapes differ)."""
    return {k: o.get("max_abs_error") for k, o in result.outputs.items() if o.get("status") == "diverge"}


def entry(result: Result) -> dict:
    out: dict = {"status": result.outcome}
    if result.outcome == "diverge":
        out["errors"] = _errors(result)
    elif result.outcome == "error":
        out["message"] = result.message[:200]
    return out


def read(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"baseline schema_version {data.get('schema_version')!r}, this harness reads {SCHEMA_VERSION}")
    return data


def update(record: RunRecord, path: str | Path) -> dict:
    """Write the run's results into the baseline at ``path`` (kept: other adapters and versions)."""
    path = Path(path)
    data = read(path) if path.exists() else {"schema_version": SCHEMA_VERSION, "adapters": {}}
    for name, info in record.adapters.items():
        if info.get("status") in ("skipped", "error"):
            continue
        section = {r.case: entry(r) for r in record.results if r.adapter == name and r.status != "skipped"}
        data["adapters"].setdefault(name, {})[version_key(info)] = dict(sorted(section.items()))
    data["adapters"] = dict(sorted(data["adapters"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(data) + "\n", encoding="utf-8")
    return data


def _number(value) -> float:
    """A stored error: a number, "inf"/"nan" (JSON has neither), or None (shapes differ)."""
    return math.inf if value is None else float(value)


def _compare(key: str, old: dict, new: dict, growth: float, report: GateReport) -> None:
    was, now = old["status"], new["status"]
    if was != now:
        text = f"{key}: {was} -> {now}"
        if now in BAD and not (was == "error" and now == "error"):
            report.failures.append(text + (f" ({new.get('message', '')})" if now == "error" else ""))
        elif now == "pass":
            report.improvements.append(text)
        else:
            report.changes.append(text)
        return
    if now != "diverge":
        return
    before, after = old.get("errors", {}), new.get("errors", {})
    for output, err in after.items():
        if output not in before:
            report.failures.append(f"{key}: {output} newly diverges (max abs error {err})")
            continue
        a, b = _number(err), _number(before[output])
        if a > b * growth + 1e-300 and not (math.isinf(a) and math.isinf(b)):
            report.failures.append(f"{key}: {output} error grew {b:.3g} -> {a:.3g} (bound: x{growth:g})")
        elif a * growth < b:
            report.improvements.append(f"{key}: {output} error shrank {b:.3g} -> {a:.3g}")
    for output in before:
        if output not in after:
            report.improvements.append(f"{key}: {output} no longer diverges")


def check(record: RunRecord, baseline: dict, growth: float = DEFAULT_GROWTH) -> GateReport:
    """Compare ``record`` with ``baseline`` (as :func:`read` returns it)."""
    report = GateReport()
    stored = baseline.get("adapters", {})
    for name, info in record.adapters.items():
        if info.get("status") in ("skipped",):
            continue
        versions = stored.get(name)
        if not versions:
            report.notes.append(f"{name}: not in the baseline; its results count as new")
            section: dict = {}
        elif version_key(info) in versions:
            section = versions[version_key(info)]
        else:
            fallback = list(versions)[-1]
            report.notes.append(f"{name}: no baseline for {version_key(info)}; compared with {fallback}")
            section = versions[fallback]
        for result in (r for r in record.results if r.adapter == name and r.status != "skipped"):
            key = f"{result.case} on {name}"
            report.compared += 1
            now = entry(result)
            if result.case in section:
                _compare(key, section[result.case], now, growth, report)
            elif now["status"] in BAD:
                report.failures.append(f"{key}: new {now['status']} (not in the baseline)")
            else:
                report.changes.append(f"{key}: new case, {now['status']}")
    return report
