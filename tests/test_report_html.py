"""The HTML report, the GitHub step summary and the error map behind the plots.

A constructed run of 3 cases × 3 adapters covers every status; outputs are real
``compare`` verdicts. The page is parsed with the standard library's HTML
parser (the browser test in tests/browser drives the JavaScript)."""

from __future__ import annotations

import shlex
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conformance.cli import _parser, main
from conformance.compare import ERROR_MAP_CAP, Tolerance, compare, error_map
from conformance.report import write_reports
from conformance.report.html import extract, render_html, repro_command
from conformance.report.summary import append_step_summary, render_summary
from conformance.results import Result, RunRecord

CASE_FILE = """\
# two cases in one file
id: batch_norm/demo/two-steps
op: batch_norm
source: "float64 reference"
steps:
  - mode: training
    inputs: {x: [[1.0, 2.0], [3.0, 5.0]]}
  - mode: training
    inputs: {x: [[0.0, 1.0], [4.0, 9.0]]}
---
id: batch_norm/demo/single
op: batch_norm
source: "hand"
mode: training
"""
TWO_STEPS, SINGLE, MOMENTS = "batch_norm/demo/two-steps", "batch_norm/demo/single", "moments/demo/axis-0"
ADAPTERS = ("alpha", "beta", "gamma")
TOL = Tolerance(rtol=1e-6, atol=1e-6)
DIAGNOSIS = "unbiased variance in the moving update (residual 3e-08)"
EXPECTED_COUNTS = {
    "alpha": {"pass": 2, "expected-divergence": 1},
    "beta": {"diverge": 1, "xpass": 1, "skipped": 1},
    "gamma": {"error": 1, "unsupported": 1, "diverge": 1},
}


def _arr(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"shape": list(a.shape), "head": [float(v) for v in a.ravel()[:8]]}


def _outputs(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> dict[str, dict]:
    return {k: compare(k, e, "float32", actual[k], "float32", TOL).to_json() for k, e in expected.items()}


def sample_record(case_file: Path) -> RunRecord:
    """3 cases × 3 adapters, every status once or more (counts in EXPECTED_COUNTS)."""
    lines = case_file.read_text().splitlines()
    line_of = {cid: lines.index(f"id: {cid}") + 1 for cid in (TWO_STEPS, SINGLE)}
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    state = {"moving_mean": _arr([0.0, 0.0]), "moving_variance": _arr([1.0, 1.0])}
    cases = {
        TWO_STEPS: {"op": "batch_norm", "source": "float64 reference", "description": "two training steps", "dtype": "float32",
                    "path": str(case_file), "line": line_of[TWO_STEPS], "attributes": {"momentum": 0.9, "epsilon": 1e-3},
                    "params": {}, "state": state, "tags": [],
                    "steps": [{"mode": "training", "inputs": {"x": _arr(x)}}, {"mode": "training", "inputs": {"x": _arr(x * 2)}}]},
        SINGLE: {"op": "batch_norm", "source": "hand", "description": "", "dtype": "float32", "path": str(case_file),
                 "line": line_of[SINGLE], "attributes": {}, "params": {}, "state": {}, "tags": ["seed"],
                 "steps": [{"mode": "training", "inputs": {"x": _arr(x)}}]},
        MOMENTS: {"op": "moments", "source": "hand", "description": "", "dtype": "float32", "path": "gone/missing.yaml",
                  "line": 3, "attributes": {}, "params": {}, "state": {}, "tags": [],
                  "steps": [{"mode": "training", "inputs": {"x": _arr(x)}}]},
    }
    steps_expected = {"step1.moving_mean": np.array([0.2, 0.35]), "step1.moving_variance": np.array([1.0, 0.925]),
                      "step2.moving_mean": np.array([0.58, 1.015]), "step2.moving_variance": np.array([1.1, 1.25])}
    biased = dict(steps_expected, **{"step2.moving_variance": np.array([1.2, 1.5])})
    y = np.linspace(-1.5, 1.5, 64).reshape(16, 4)
    declared = {"reason": "PyTorch keeps the unbiased variance", "link": "https://example.org/issue/1",
                "file": "known/torch.yaml", "line": 4}
    diagnosis = {"summary": DIAGNOSIS, "matches": [{"variants": ["unbiased-moving-variance"],
                                                    "description": "n/(n-1) in the moving variance", "residual": 3e-8}]}

    def res(case, adapter, status, outputs=None, **kw):
        return Result(case=case, adapter=adapter, status=status, outputs=outputs or {}, duration_s=0.01, **kw)

    results = [
        res(TWO_STEPS, "alpha", "pass", _outputs(steps_expected, steps_expected), notes=["momentum 0.9 → 0.9"]),
        res(TWO_STEPS, "beta", "diverge", _outputs(steps_expected, biased), message="step2.moving_variance: 2 of 2 values"),
        res(TWO_STEPS, "gamma", "error", message="RuntimeError: boom in the kernel"),
        res(SINGLE, "alpha", "expected-divergence", _outputs({"y": y}, {"y": y * 1.01})),
        res(SINGLE, "beta", "xpass", _outputs({"y": y}, {"y": y})),
        res(SINGLE, "gamma", "unsupported", message="no such layer"),
        res(MOMENTS, "alpha", "pass", _outputs({"mean": y}, {"mean": y})),
        res(MOMENTS, "beta", "skipped", message="framework not installed"),
        res(MOMENTS, "gamma", "diverge", _outputs({"mean": y}, {"mean": y + 100.0})),
    ]
    for r in results:
        r.diagnosis = diagnosis if (r.case, r.adapter) in {(TWO_STEPS, "beta"), (SINGLE, "alpha")} else None
        r.declared = declared if r.status in ("expected-divergence", "xpass") else None
    record = RunRecord(run_id="r-html", started="2026-01-01T00:00:00", finished="2026-01-01T00:01:00",
                       environment={"python": "3.11.7", "platform": "Linux-test", "machine": "x86_64"},
                       adapters={a: {"framework": f"fw-{a}", "version": "1.2.3", "api": f"{a}.bn", "device": "cpu",
                                     "status": "ready"} for a in ADAPTERS},
                       cases=cases, results=results)
    return record


@pytest.fixture
def record(tmp_path) -> RunRecord:
    path = tmp_path / "cases.yaml"
    path.write_text(CASE_FILE)
    return sample_record(path)


class Page(HTMLParser):
    """Collects every start tag (with attributes) and the text of <style>/<script> blocks."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.blocks: list[str] = []
        self._in: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        (self.blocks if self._in else self.text).append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def test_grid_has_one_cell_per_result_with_its_status(record):
    page = parse(render_html(record))
    cells = [a for t, a in page.tags if t == "td" and "cell" in a.get("class", "").split()]
    assert len(cells) == 9
    got: dict[str, dict[str, int]] = {}
    for a in cells:
        got.setdefault(a["data-adapter"], {}).setdefault(a["data-status"], 0)
        got[a["data-adapter"]][a["data-status"]] += 1
    assert got == EXPECTED_COUNTS
    rows = [a for t, a in page.tags if t == "tr" and "data-case" in a]
    assert [(r["data-case"], r["data-op"]) for r in rows] == [
        (SINGLE, "batch_norm"), (TWO_STEPS, "batch_norm"), (MOMENTS, "moments")]


def test_divergence_cells_are_shaded_by_error_magnitude(record):
    page = parse(render_html(record))
    shade = {(a["data-adapter"], a["data-status"]): a["class"] for t, a in page.tags if t == "td" and "cell" in a.get("class", "").split()}
    assert shade[("gamma", "diverge")].split()[-1] == "d5"  # relative error ≥ 1: the darkest
    assert shade[("beta", "diverge")].split()[-1] == "d4"  # worst relative error (1.5 - 1.25) / 1.25 = 0.2: in [0.1, 1)


def test_counts_table_matches_the_record(record):
    page = parse(render_html(record))
    cells = [(a["data-status"]) for t, a in page.tags if t == "td" and a.get("class") == "n" and "data-status" in a]
    assert len(cells) == 3 * 7  # 3 adapters × 7 statuses
    html_text = render_html(record)
    for adapter, statuses in EXPECTED_COUNTS.items():
        row = html_text.split(f'<tr data-adapter="{adapter}">', 1)[1].split("</tr>", 1)[0]
        for status in ("pass", "diverge", "expected-divergence", "xpass", "error", "unsupported", "skipped"):
            assert f'data-status="{status}">{statuses.get(status, 0)}</td>' in row, (adapter, status)


def test_page_is_self_contained(record):
    text = render_html(record)
    page = parse(text)
    for tag, attrs in page.tags:
        for key in ("src", "href", "data", "action", "poster"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
        assert not (tag == "link" and "stylesheet" in (attrs.get("rel") or "")), "external stylesheet"
        assert not (tag == "script" and attrs.get("src")), "external script"
    styles = "".join(b for b in page.blocks)
    assert "@import" not in styles and "url(http" not in styles.replace(" ", "")
    assert "uPlot" in styles and "function main(DATA)" in styles  # the library and our code are inlined


def test_embedded_data_carries_results_yaml_and_repro(record, tmp_path):
    data = extract(render_html(record))
    assert set(data["results"]) == {TWO_STEPS, SINGLE, MOMENTS}
    beta = data["results"][TWO_STEPS]["beta"]
    assert beta["diagnosis"]["summary"] == DIAGNOSIS
    assert beta["outputs"]["step2.moving_variance"]["error_map"]["shape"] == [1, 2]
    assert data["results"][SINGLE]["beta"]["declared"]["reason"].startswith("PyTorch")
    yaml_text = data["cases"][SINGLE]["yaml"]
    assert yaml_text.startswith("id: batch_norm/demo/single") and yaml_text.endswith("mode: training")
    assert "two-steps" not in yaml_text
    two = data["cases"][TWO_STEPS]["yaml"]
    assert two.startswith("# two cases in one file") and "single" not in two
    assert data["cases"][MOMENTS]["yaml"] is None  # file gone: the page says so instead
    assert beta["repro"] == repro_command(record.cases[TWO_STEPS], TWO_STEPS, "beta")


def test_repro_command_parses_to_exactly_this_result(record):
    cmd = repro_command(record.cases[TWO_STEPS], TWO_STEPS, "torch.nn")
    argv = shlex.split(cmd)
    assert argv[0] == "conformance"
    args = _parser().parse_args(argv[1:])
    assert (args.command, args.paths, args.adapters, args.select) == ("run", [record.cases[TWO_STEPS]["path"]], ["torch.nn"], TWO_STEPS)


def test_error_map_is_capped_pooled_and_keeps_the_worst():
    diff = np.zeros((300, 40))
    diff[123, 7] = 5.0
    diff[0, 0] = 1e-9
    m = error_map(diff)
    assert len(m["values"]) <= ERROR_MAP_CAP and m["shape"][0] * m["shape"][1] == len(m["values"])
    assert max(m["values"]) == 5.0 and m["block"][0] > 1
    h = m["hist"]
    assert h["zeros"] == diff.size - 2 and h["nonfinite"] == 0 and h["lo"] == -9
    assert sum(h["counts"]) == 2 and h["counts"][0] == 1 and h["counts"][-1] == 1


def test_error_map_only_for_value_divergences():
    e = np.ones((3, 4))
    assert "error_map" not in compare("y", e, "float32", e, "float32", TOL).to_json()
    bad = compare("y", e, "float32", e + np.eye(3, 4), "float32", TOL).to_json()
    assert bad["error_map"]["shape"] == [3, 4] and bad["error_map"]["values"][0] == 1.0
    shape = compare("y", e, "float32", np.ones(5), "float32", TOL).to_json()
    assert shape["status"] == "diverge" and "error_map" not in shape


def test_summary_counts_and_flags(record):
    text = render_summary(record)
    row = next(line for line in text.splitlines() if line.startswith("| `beta`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # columns: adapter, framework, then the statuses present in this run in display order
    header = next(line for line in text.splitlines() if line.startswith("| adapter"))
    names = [c.strip().split(" ", 1)[-1] for c in header.strip("|").split("|")]
    assert dict(zip(names, cells))["diverge"] == "1" and dict(zip(names, cells))["xpass"] == "1"
    assert dict(zip(names, cells))["pass"] == "·"
    assert "Passed although declared as known divergences" in text and "PyTorch keeps the unbiased variance" in text
    assert DIAGNOSIS in text and "RuntimeError: boom" in text
    assert text.index(f"`{MOMENTS}` | `gamma`") < text.index(f"`{TWO_STEPS}` | `beta`")  # worst first


def test_append_step_summary(tmp_path):
    target = tmp_path / "step.md"
    assert append_step_summary("# one", env={}) is None
    append_step_summary("# one", env={"GITHUB_STEP_SUMMARY": str(target)})
    append_step_summary("# two\n", env={"GITHUB_STEP_SUMMARY": str(target)})
    assert target.read_text() == "# one\n# two\n"


def test_write_reports_writes_html_and_summary(record, tmp_path, monkeypatch):
    target = tmp_path / "gh-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    paths = write_reports(record, tmp_path / "out" / "r1")
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert paths["summary"].read_text() == target.read_text()
    write_reports(record, tmp_path / "out" / "r2", step_summary=False)
    assert target.read_text() == paths["summary"].read_text()  # not appended again


def test_report_command_renders_html_from_stored_results(record, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    stored = write_reports(record, tmp_path / "first")["results"]
    main(["report", str(stored), "--report-dir", str(tmp_path / "again"), "--run-id", "re"])
    page = (tmp_path / "again" / "re" / "index.html").read_text()
    data = extract(page)
    assert data["results"][TWO_STEPS]["beta"]["outputs"]["step2.moving_variance"]["error_map"]["values"]
    assert (tmp_path / "again" / "re" / "summary.md").read_text().startswith("## Conformance `re`")
