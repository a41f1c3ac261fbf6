"""Results: one per (case, adapter), and the run record that holds them.

Statuses, exactly one per (case, adapter):

``pass``                 the adapter ran and every output matched;
``diverge``              it ran and some output differs (shape, dtype or values);
``expected-divergence``  it diverged (or raised) as a known-divergence declaration says
                         it does (:mod:`conformance.known`);
``xpass``                it passed although a declaration says it diverges (flagged:
                         the declaration is out of date, or the framework was fixed);
``error``                the framework raised, crashed or hung (message kept);
``unsupported``          the adapter cannot express the case (reason kept);
``skipped``              the framework is not installed where the run happened.

A diverging result carries a ``diagnosis`` (:mod:`conformance.diagnosis`): the
semantic variants of the reference that reproduce the adapter's output, or
``unexplained``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("pass", "diverge", "expected-divergence", "xpass", "error", "unsupported", "skipped")
#: statuses that fail a run (exit code 1)
FAILING = ("diverge", "error")


@dataclass
class Result:
    case: str
    adapter: str
    status: str
    outputs: dict[str, dict] = field(default_factory=dict)
    message: str = ""
    api: str = ""
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    #: {"summary": str, "matches": [{"variants", "description", "residual"}]} for divergences
    diagnosis: dict | None = None
    #: the known-divergence declaration that covers this result (reason, link, file, line)
    declared: dict | None = None

    @property
    def outcome(self) -> str:
        """The status before declarations: ``diverge``, ``pass``, ``error``…"""
        if self.status == "expected-divergence":
            return "error" if self.declared and self.declared.get("kind") == "error" else "diverge"
        return "pass" if self.status == "xpass" else self.status

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Result":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class RunRecord:
    """Everything a report needs, so reports can be re-rendered without re-running."""

    run_id: str
    started: str
    environment: dict[str, Any] = field(default_factory=dict)  # python, platform, machine
    adapters: dict[str, dict] = field(default_factory=dict)  # name → framework, version, api, device
    cases: dict[str, dict] = field(default_factory=dict)  # id → Case.summary()
    results: list[Result] = field(default_factory=list)
    finished: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "started": self.started,
            "finished": self.finished,
            "environment": self.environment,
            "adapters": self.adapters,
            "cases": self.cases,
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: dict) -> "RunRecord":
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"results schema_version {data.get('schema_version')!r}, this harness reads {SCHEMA_VERSION}")
        return cls(run_id=data["run_id"], started=data["started"], finished=data.get("finished", ""),
                   environment=data.get("environment", {}), adapters=data.get("adapters", {}),
                   cases=data.get("cases", {}), results=[Result.from_json(r) for r in data["results"]])

    def counts(self) -> dict[str, dict[str, int]]:
        """adapter → status → count."""
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            table.setdefault(r.adapter, {s: 0 for s in STATUSES})
            table[r.adapter][r.status] = table[r.adapter].get(r.status, 0) + 1
        return table


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(data: Any) -> str:
    return json.dumps(_clean(data), indent=1, sort_keys=False, allow_nan=False)


def write(record: RunRecord, path: Path) -> None:
    path.write_text(dumps(record.to_json()) + "\n", encoding="utf-8")


def read(path: str | Path) -> RunRecord:
    return RunRecord.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def merge(records: list[RunRecord], run_id: str) -> RunRecord:
    """One record from several (other processes, environments or machines).

    A (case, adapter) present in several records keeps the most informative
    result: any real outcome beats ``skipped``.
    """
    merged = RunRecord(run_id=run_id, started=min((r.started for r in records), default=""))
    merged.finished = max((r.finished for r in records), default="")
    by_key: dict[tuple[str, str], Result] = {}
    for rec in records:
        merged.cases.update(rec.cases)
        for name, info in rec.adapters.items():
            if name not in merged.adapters or merged.adapters[name].get("status") == "skipped":
                merged.adapters[name] = info
        for key, value in rec.environment.items():
            merged.environment.setdefault(key, value)
        merged.environment.setdefault("parts", []).append({"run_id": rec.run_id, **rec.environment})
        for res in rec.results:
            key = (res.case, res.adapter)
            if key not in by_key or by_key[key].status == "skipped":
                by_key[key] = res
    if len(records) == 1:
        merged.environment.pop("parts", None)
    merged.results = sorted(by_key.values(), key=lambda r: (r.case, r.adapter))
    return merged
