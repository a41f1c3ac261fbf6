"""The HTML report: one self-contained ``index.html`` per run.

Contract: ``render_html(record)`` returns a complete HTML document that needs
nothing at view time (no network, no other file): the CSS, the JavaScript and
the charting library (uPlot, vendored under ``html_assets/``) are inlined, and
the run's data is embedded as one JSON block.

The page holds, rendered here (so it reads without JavaScript too):

* counts per adapter and status;
* the case × adapter grid, one coloured cell per result (divergences shaded by
  the magnitude of their worst relative error);
* the environment: each framework's version, API, device, and run time.

and, built by ``report.js`` from the embedded data: filters (operator, status,
adapter, text), sorting, the case panel a click on a cell opens (the case's
YAML, abridged inputs, expected vs actual, error figures, diagnosis, message,
notes, the command that reproduces the result), and the plots: moving
statistics over the steps of multi-step cases and each divergence's
elementwise error (heatmap and histogram).

Why uPlot: 51 KB minified, MIT, maintained, and it draws on canvas in
milliseconds. Plots are drawn in the browser only when a case is opened, so a
run of ~4000 results costs the report writer no plotting at all, and the file
carries numbers, not pictures (matplotlib SVGs for a few hundred divergences
would add megabytes and tens of seconds of rendering).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
import shlex
from importlib import resources
from pathlib import Path

from .. import results as results_io
from ..results import Result, RunRecord

#: every status, in display order; unknown statuses are shown too (class ``s-other``)
STATUS_ORDER = ("pass", "diverge", "expected-divergence", "xpass", "error", "unsupported", "skipped")
SYMBOL = {"pass": "✓", "diverge": "✗", "expected-divergence": "≈", "xpass": "!", "error": "⚠",
          "unsupported": "–", "skipped": "·"}
#: divergence shades: level n when the worst relative error is below LEVELS[n - 1]
LEVELS = (1e-6, 1e-3, 1e-1, 1.0)
DATA_OPEN = '<script type="application/octet-stream" id="report-data" data-encoding="gzip+base64">'
ASSETS = ("uPlot.min.css", "report.css", "uPlot.iife.min.js", "report.js")


def _asset(name: str) -> str:
    return (resources.files("conformance.report") / "html_assets" / name).read_text(encoding="utf-8")


def _num(value) -> float | None:
    """A figure from an OutputComparison: floats, or "nan"/"inf" strings once read back from JSON."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def magnitude(result: Result) -> float | None:
    """The worst relative error over the result's diverging outputs: None when none diverges,
    inf when one has no figures (a shape mismatch) or a NaN."""
    worst = None
    for o in (result.outputs or {}).values():
        if o.get("status") != "diverge":
            continue
        rel = _num(o.get("max_rel_error"))
        rel = math.inf if rel is None or math.isnan(rel) else rel
        worst = rel if worst is None else max(worst, rel)
    return worst


def level(result: Result) -> int:
    """1 (tiny) … 5 (huge or shape) for a divergence's cell shade."""
    mag = magnitude(result)
    if mag is None:
        return 5
    return next((i + 1 for i, bound in enumerate(LEVELS) if mag < bound), 5)


def case_yaml(summary: dict, roots: list[Path]) -> str | None:
    """The text of the YAML document that defines the case (``---`` separated), or None if unreadable."""
    path, line = summary.get("path"), summary.get("line")
    if not path:
        return None
    candidates = [Path(path)] if Path(path).is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        try:
            lines = candidate.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        if not isinstance(line, int) or not 1 <= line <= len(lines):
            return "\n".join(lines)
        start = max((i + 1 for i in range(line - 1) if lines[i].rstrip() == "---"), default=0)
        end = next((i for i in range(line, len(lines)) if lines[i].rstrip() == "---"), len(lines))
        return "\n".join(lines[start:end]).strip("\n")
    return None


def repro_command(summary: dict, case_id: str, adapter: str) -> str:
    """The command that re-runs this one (case, adapter) (``-k`` matches ids containing the text)."""
    path = summary.get("path") or "cases"
    return f"conformance run {shlex.quote(str(path))} -a {shlex.quote(adapter)} -k {shlex.quote(case_id)}"


def _adapters(record: RunRecord) -> list[str]:
    names = list(record.adapters)
    return names + sorted({r.adapter for r in record.results} - set(names))


def _cases(record: RunRecord) -> list[str]:
    return sorted(set(record.cases) | {r.case for r in record.results})


def _statuses(record: RunRecord) -> list[str]:
    seen = {r.status for r in record.results}
    return list(STATUS_ORDER) + sorted(seen - set(STATUS_ORDER))


def counts(record: RunRecord) -> dict[str, dict[str, int]]:
    """adapter → status → count, for every adapter and every status seen."""
    table = {a: {s: 0 for s in _statuses(record)} for a in _adapters(record)}
    for r in record.results:
        table[r.adapter][r.status] += 1
    return table


def payload(record: RunRecord, roots: list[Path]) -> dict:
    """What ``report.js`` reads: the record, plus each case's YAML text and each result's repro command."""
    cases = {}
    for cid in _cases(record):
        summary = dict(record.cases.get(cid) or {})
        summary["yaml"] = case_yaml(summary, roots)
        cases[cid] = summary
    results = {}
    for r in record.results:
        data = {name: getattr(r, name) for name in r.__dataclass_fields__}  # shallow: asdict's deep copy is slow
        data["repro"] = repro_command(record.cases.get(r.case) or {}, r.case, r.adapter)
        data["magnitude"] = magnitude(r)
        results.setdefault(r.case, {})[r.adapter] = data
    return {"run_id": record.run_id, "started": record.started, "finished": record.finished,
            "environment": record.environment, "adapters": record.adapters, "adapter_order": _adapters(record),
            "statuses": _statuses(record), "cases": cases, "results": results}


def embed(data: dict) -> str:
    """JSON, gzip-compressed (about 15× smaller here), base64: safe inside <script>, read by report.js."""
    text = json.dumps(results_io._clean(data), separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def extract(page: str) -> dict:
    """The data embedded in a rendered page (the inverse of ``embed``; for tests and tools)."""
    start = page.index(DATA_OPEN) + len(DATA_OPEN)
    blob = page[start:page.index("</script>", start)]
    return json.loads(gzip.decompress(base64.b64decode(blob)).decode("utf-8"))


def render_html(record: RunRecord, case_roots: list[Path] | None = None) -> str:
    """The whole page. Case files are looked up relative to each of ``case_roots`` (default: the working directory)."""
    roots = case_roots or [Path.cwd()]
    e = html.escape
    styles = "\n".join(_asset(n) for n in ASSETS if n.endswith(".css"))
    scripts = "\n".join(f"<script>\n{_asset(n)}\n</script>" for n in ASSETS if n.endswith(".js"))
    total = len(_cases(record))
    adapters = _adapters(record)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Conformance {e(record.run_id)}</title>
<style>
{styles}
</style>
</head>
<body>
<header>
<h1>Conformance report <code>{e(record.run_id)}</code></h1>
<p class="meta">{total} cases × {len(adapters)} adapters · {len(record.results)} results ·
started {e(record.started or '?')} · finished {e(record.finished or '?')}</p>
<noscript><p class="warn">JavaScript is off: the grid and counts below are complete, but filters, sorting,
case details and plots need it.</p></noscript>
</header>
<main>
<section id="counts-section"><h2>Counts per adapter</h2>
{_counts_table(record)}
</section>
<section id="grid-section"><h2>Case × adapter matrix</h2>
<div id="controls"></div>
{_legend()}
<div class="grid-wrap">{_grid(record)}</div>
</section>
<section id="multistep-section" hidden><h2>Multi-step cases: state over the steps</h2>
<p class="hint">Each chart: one line per adapter, the expected values dashed; step 0 is the initial state.</p>
<div id="multistep"></div>
</section>
<section id="env-section"><h2>Environment</h2>
{_environment(record)}
</section>
</main>
<aside id="panel" hidden aria-live="polite"><button id="panel-close" title="close (Esc)">×</button>
<div id="panel-body"></div></aside>
{DATA_OPEN}{embed(payload(record, roots))}</script>
{scripts}
</body>
</html>
"""


def _chip(status: str, text: str | None = None) -> str:
    cls = status if status in STATUS_ORDER else "other"
    return f'<span class="chip s-{cls}">{html.escape(text if text is not None else status)}</span>'


def _counts_table(record: RunRecord) -> str:
    table = counts(record)
    statuses = _statuses(record)
    head = "".join(f"<th>{_chip(s)}</th>" for s in statuses)
    rows = []
    for adapter, row in table.items():
        info = record.adapters.get(adapter, {})
        fw = "not installed" if info.get("status") == "skipped" else f"{info.get('framework', '')} {info.get('version', '')}"
        cells = "".join(f'<td class="n" data-status="{html.escape(s)}">{row[s]}</td>' for s in statuses)
        rows.append(f'<tr data-adapter="{html.escape(adapter)}"><th><code>{html.escape(adapter)}</code></th>'
                    f"<td>{html.escape(fw.strip())}</td>{cells}<td class='n'>{sum(row.values())}</td></tr>")
    totals = "".join(f'<td class="n">{sum(row[s] for row in table.values())}</td>' for s in statuses)
    return (f'<table id="counts"><thead><tr><th>adapter</th><th>framework</th>{head}<th>total</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody><tfoot><tr><th>all</th><td></td>{totals}"
            f"<td class='n'>{len(record.results)}</td></tr></tfoot></table>")


def _legend() -> str:
    shades = "".join(f'<span class="chip s-diverge d{i}">{label}</span>' for i, label in
                     enumerate(("rel err < 1e-6", "< 1e-3", "< 0.1", "< 1", "≥ 1 or shape"), start=1))
    kinds = "".join(_chip(s, f"{SYMBOL[s]} {s}") for s in STATUS_ORDER if s != "diverge")
    return f'<p class="legend">{kinds} <span class="sep">diverge:</span> {shades}</p>'


def _grid(record: RunRecord) -> str:
    adapters = _adapters(record)
    by_key = {(r.case, r.adapter): r for r in record.results}
    e = html.escape
    head = "".join(f'<th class="ad" data-adapter="{e(a)}" title="sort by error magnitude on {e(a)}">'
                   f"<span>{e(a)}</span></th>" for a in adapters)
    rows = []
    for cid in _cases(record):
        summary = record.cases.get(cid) or {}
        cells = []
        for a in adapters:
            r = by_key.get((cid, a))
            if r is None:
                cells.append(f'<td class="cell s-missing" data-adapter="{e(a)}" data-status="missing"></td>')
                continue
            status = r.status if r.status in STATUS_ORDER else "other"
            shade = f" d{level(r)}" if r.status == "diverge" else ""
            mag = magnitude(r)
            tip = f"{cid} on {a}: {r.status}" + (f", worst rel err {mag:.3g}" if mag is not None else "")
            cells.append(f'<td class="cell s-{status}{shade}" data-adapter="{e(a)}" data-status="{e(r.status)}" '
                         f'data-mag="{"" if mag is None else (mag if math.isfinite(mag) else 1e308)}" '
                         f'title="{e(tip)}" tabindex="0">{SYMBOL.get(r.status, "?")}</td>')
        steps = len(summary.get("steps") or [])
        rows.append(f'<tr data-case="{e(cid)}" data-op="{e(str(summary.get("op", "")))}">'
                    f'<th class="case" scope="row"><code>{e(cid)}</code></th><td class="op">{e(str(summary.get("op", "")))}</td>'
                    f'<td class="dt">{e(str(summary.get("dtype", "")))}</td><td class="st">{steps or ""}</td>{"".join(cells)}</tr>')
    return (f'<table id="grid"><thead><tr><th data-sort="case">case</th><th data-sort="op">op</th>'
            f'<th>dtype</th><th title="steps">st</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _environment(record: RunRecord) -> str:
    e = html.escape
    env = record.environment or {}
    facts = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in env.items() if k != "parts")
    parts = env.get("parts") or []
    if parts:
        facts += f"<tr><th>merged from</th><td>{len(parts)} runs: {e(', '.join(str(p.get('run_id', '?')) for p in parts))}</td></tr>"
    time_by: dict[str, float] = {}
    n_by: dict[str, int] = {}
    for r in record.results:
        time_by[r.adapter] = time_by.get(r.adapter, 0.0) + (r.duration_s or 0.0)
        n_by[r.adapter] = n_by.get(r.adapter, 0) + 1
    rows = []
    for a in _adapters(record):
        info = record.adapters.get(a, {})
        backend = f"{info.get('backend', '')} {info.get('backend_version', '')}".strip()
        status = info.get("status", "")
        if status == "skipped":
            status = f"skipped: {info.get('reason', '')}"
        rows.append(f"<tr><th><code>{e(a)}</code></th><td>{e(str(info.get('framework', '')))}</td>"
                    f"<td>{e(str(info.get('version', '')))}</td><td>{e(backend)}</td><td><code>{e(str(info.get('api', '')))}</code></td>"
                    f"<td>{e(str(info.get('device', '')))}</td><td>{e(str(info.get('python', '')))}</td><td>{e(status)}</td>"
                    f"<td class='n'>{n_by.get(a, 0)}</td><td class='n'>{time_by.get(a, 0.0):.2f}</td></tr>")
    return (f'<table id="env"><tbody>{facts}</tbody></table>'
            f'<table id="adapters"><thead><tr><th>adapter</th><th>framework</th><th>version</th><th>backend</th>'
            f"<th>API</th><th>device</th><th>python</th><th>status</th><th>results</th><th>run time s</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
