"""The Markdown report: the matrix first, then the details people need."""

from __future__ import annotations

from ..results import STATUSES, Result, RunRecord

SYMBOL = {"pass": "✅ pass", "diverge": "❌ diverge", "expected-divergence": "🔶 expected", "xpass": "❗ xpass",
          "error": "💥 error", "unsupported": "➖ unsupported", "skipped": "⏭ skipped", None: "·"}


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def values(head, limit: int = 6) -> str:
    if head is None:
        return "–"
    shown = ", ".join(fmt(v, 8) for v in head[:limit])
    return f"[{shown}{', …' if len(head) > limit else ''}]"


def render_markdown(record: RunRecord) -> str:
    adapters = list(record.adapters) or sorted({r.adapter for r in record.results})
    by_key = {(r.case, r.adapter): r for r in record.results}
    cases = sorted(record.cases) or sorted({r.case for r in record.results})
    out = [f"# Conformance report `{record.run_id}`", ""]
    out.append(f"{len(cases)} cases × {len(adapters)} adapters, started {record.started}, finished {record.finished}.")
    out.append("")
    out += _summary(record, adapters)
    out += ["## Matrix", "", "| case | " + " | ".join(f"`{a}`" for a in adapters) + " |",
            "|---|" + "---|" * len(adapters)]
    for case in cases:
        row = [SYMBOL.get(getattr(by_key.get((case, a)), "status", None), "?") for a in adapters]
        out.append(f"| `{case}` | " + " | ".join(row) + " |")
    out.append("")
    diverging = [r for r in record.results if r.status == "diverge"]
    if diverging:
        out += ["## Divergences", ""]
        for r in diverging:
            out += _divergence(r, record.cases.get(r.case, {}))
    declared = [r for r in record.results if r.status in ("expected-divergence", "xpass")]
    if declared:
        out += ["## Known divergences", "",
                "Declared in `known-divergences/`; an `xpass` passes although declared: the declaration is stale "
                "or the framework changed.", "",
                "| case | adapter | status | diagnosis | reason | declared at |", "|---|---|---|---|---|---|"]
        for r in declared:
            d = r.declared or {}
            reason = f"[{_cell(d.get('reason'))}]({d['link']})" if d.get("link") else _cell(d.get("reason"))
            out.append(f"| `{r.case}` | `{r.adapter}` | {r.status} | {_cell(_diagnosis(r))} | {reason} | "
                       f"{d.get('file')}:{d.get('line')} |")
        out.append("")
    problems = [r for r in record.results if r.status in ("error", "unsupported")]
    if problems:
        out += ["## Errors and unsupported", "", "| case | adapter | status | reason |", "|---|---|---|---|"]
        for r in problems:
            out.append(f"| `{r.case}` | `{r.adapter}` | {r.status} | {_cell(r.message)} |")
        out.append("")
    out += _environment(record)
    return "\n".join(out) + "\n"


def _summary(record: RunRecord, adapters: list[str]) -> list[str]:
    counts = record.counts()
    out = ["## Summary", "", "| adapter | framework | " + " | ".join(STATUSES) + " |",
           "|---|---|" + "---|" * len(STATUSES)]
    for a in adapters:
        info = record.adapters.get(a, {})
        fw = f"{info.get('framework', '?')} {info.get('version', '')}".strip() if info.get("status") != "skipped" else "not installed"
        row = counts.get(a, {})
        out.append(f"| `{a}` | {fw} | " + " | ".join(str(row.get(s, 0)) for s in STATUSES) + " |")
    return out + [""]


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _divergence(r: Result, case: dict) -> list[str]:
    out = [f"### `{r.case}` on `{r.adapter}`", ""]
    if case.get("source"):
        out.append(f"- source: {case['source']}")
    if r.api:
        out.append(f"- API: `{r.api}`")
    if case.get("attributes"):
        attrs = ", ".join(f"{k}={v}" for k, v in case["attributes"].items())
        out.append(f"- attributes: {attrs}")
    for i, step in enumerate(case.get("steps", [])):
        for name, arr in step.get("inputs", {}).items():
            label = f"step {i + 1} " if len(case["steps"]) > 1 else ""
            out.append(f"- {label}mode {step.get('mode')}, input `{name}` shape {tuple(arr['shape'])}: {values(arr['head'])}")
    for note in r.notes:
        out.append(f"- translation: {note}")
    out.append(f"- **diagnosis**: {_diagnosis(r)}")
    out += ["", "| output | status | expected | actual | max abs err | max rel err | max ULP | mismatches | worst index |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, o in r.outputs.items():
        out.append(f"| `{name}` | {o.get('status')} | {values(o.get('expected_head'))} | {values(o.get('actual_head'))} | "
                   f"{fmt(o.get('max_abs_error'))} | {fmt(o.get('max_rel_error'))} | {fmt(o.get('max_ulp'))} | "
                   f"{fmt(o.get('mismatches'))}/{o.get('size')} | {o.get('worst_index', '–')} |")
    out += ["", f"> {_cell(r.message)}", ""]
    return out


def _diagnosis(r: Result) -> str:
    """The diagnosis summary, or "unexplained"; "–" for results that were not diagnosed."""
    if r.outcome != "diverge":
        return "–"
    return (r.diagnosis or {}).get("summary", "unexplained")


def _environment(record: RunRecord) -> list[str]:
    env = record.environment
    out = ["## Environment", "", f"- Python {env.get('python', '?')} on {env.get('platform', '?')}", "",
           "| adapter | framework | version | API | device |", "|---|---|---|---|---|"]
    for name, info in record.adapters.items():
        if info.get("status") == "skipped":
            out.append(f"| `{name}` | skipped: {_cell(info.get('reason', ''))} | | | |")
        else:
            out.append(f"| `{name}` | {info.get('framework', '')} | {info.get('version', '')} | "
                       f"`{info.get('api', '')}` | {info.get('device', '')} |")
    return out + [""]
