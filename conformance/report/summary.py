"""A short GitHub-flavoured Markdown summary, for ``$GITHUB_STEP_SUMMARY``.

Contract: ``render_summary(record)`` returns Markdown of bounded size (GitHub
takes at most 1 MiB per step; every list is capped at ``LIMIT`` rows): a
headline, the counts per adapter, then the results that need a look (passes
declared as known divergences, errors, unexplained and explained divergences)
in collapsible sections. ``append_step_summary(text)`` appends it to the file
named by ``$GITHUB_STEP_SUMMARY`` when that variable is set.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..results import Result, RunRecord
from .html import STATUS_ORDER, counts, magnitude

EMOJI = {"pass": "✅", "diverge": "❌", "expected-divergence": "🟨", "xpass": "❗", "error": "💥",
         "unsupported": "➖", "skipped": "⏭"}
LIMIT = 60


def _cell(text) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ").strip()


def _short(text, n: int = 160) -> str:
    text = _cell(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _diagnosis(r: Result) -> str:
    d = r.diagnosis if isinstance(getattr(r, "diagnosis", None), dict) else None
    return _short(d.get("summary")) if d else ""


def _worst(r: Result) -> str:
    mag = magnitude(r)
    return "–" if mag is None else f"{mag:.3g}"


def _section(title: str, results: list[Result], header: str, row) -> list[str]:
    if not results:
        return []
    out = [f"<details><summary><b>{title} ({len(results)})</b></summary>", "", header,
           "|" + "---|" * (header.count("|") - 1)]
    out += [row(r) for r in results[:LIMIT]]
    if len(results) > LIMIT:
        out.append(f"\n… and {len(results) - LIMIT} more: see `index.html` or `report.md`.")
    return out + ["", "</details>", ""]


def render_summary(record: RunRecord) -> str:
    table = counts(record)
    statuses = [s for s in STATUS_ORDER if any(row.get(s) for row in table.values())]
    statuses += sorted({s for row in table.values() for s, n in row.items() if n} - set(statuses))
    n_cases = len(set(record.cases) | {r.case for r in record.results})
    total = {s: sum(row.get(s, 0) for row in table.values()) for s in statuses}
    headline = " · ".join(f"{EMOJI.get(s, '')} {total[s]} {s}" for s in statuses)
    out = [f"## Conformance `{record.run_id}`", "",
           f"{n_cases} cases × {len(table)} adapters = {len(record.results)} results: {headline}", ""]
    out += ["| adapter | framework | " + " | ".join(f"{EMOJI.get(s, '')} {s}" for s in statuses) + " |",
            "|---|---|" + "---:|" * len(statuses)]
    for adapter, row in table.items():
        info = record.adapters.get(adapter, {})
        fw = "not installed" if info.get("status") == "skipped" else f"{info.get('framework', '')} {info.get('version', '')}".strip()
        out.append(f"| `{adapter}` | {_cell(fw)} | " + " | ".join(str(row.get(s, 0)) if row.get(s) else "·" for s in statuses) + " |")
    out.append("")
    by_status = {s: [r for r in record.results if r.status == s] for s in statuses}
    key = lambda r: -(magnitude(r) or 0.0)  # noqa: E731
    out += _section("❗ Passed although declared as known divergences (stale declarations?)", by_status.get("xpass", []),
                    "| case | adapter | declared reason |",
                    lambda r: f"| `{r.case}` | `{r.adapter}` | {_short((getattr(r, 'declared', None) or {}).get('reason'))} |")
    out += _section("💥 Errors", by_status.get("error", []), "| case | adapter | message |",
                    lambda r: f"| `{r.case}` | `{r.adapter}` | {_short(r.message)} |")
    diverging = sorted(by_status.get("diverge", []), key=key)
    out += _section("❌ Divergences, worst first", diverging, "| case | adapter | worst rel. error | diagnosis |",
                    lambda r: f"| `{r.case}` | `{r.adapter}` | {_worst(r)} | {_diagnosis(r) or _short(r.message, 100)} |")
    out += _section("🟨 Expected divergences (declared)", by_status.get("expected-divergence", []),
                    "| case | adapter | reason |",
                    lambda r: f"| `{r.case}` | `{r.adapter}` | {_short((getattr(r, 'declared', None) or {}).get('reason'))} |")
    out.append("The full report, `index.html` (one self-contained file: matrix, filters, case details, plots), "
               "is in the run's report folder.")
    return "\n".join(out) + "\n"


def append_step_summary(text: str, env: dict | None = None) -> Path | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` if set; return the file written, else None."""
    target = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path
