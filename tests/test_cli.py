"""The command line: exit codes, report files, re-rendering and merging stored results."""

from __future__ import annotations

import json

from conformance.cli import main

PASSING = """
id: t/pass
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0}
mode: training
inputs: {x: [[0.0], [2.0]]}
expected: {y: [[-1.0], [1.0]], moving_mean: [0.01], moving_variance: [1.0]}
"""
DIVERGING = PASSING.replace("t/pass", "t/diverge").replace("[0.01]", "[0.5]")


def test_run_all_pass_exits_0_and_writes_every_report(write_case, in_repo, tmp_path, capsys):
    path = write_case(PASSING)
    assert main(["run", str(path), "--adapter", "numpy", "--report-dir", str(tmp_path / "reports"), "--run-id", "r1"]) == 0
    run = tmp_path / "reports" / "r1"
    assert {p.name for p in run.iterdir()} == {"results.json", "report.md", "junit.xml", "index.html", "summary.md"}
    assert (tmp_path / "reports" / "latest").resolve() == run.resolve()
    data = json.loads((run / "results.json").read_text())
    assert data["schema_version"] == 1
    entry = data["results"][0]
    assert {"case", "adapter", "status", "outputs", "message"} <= set(entry)
    assert set(entry["outputs"]["y"]) >= {"max_abs_error", "max_rel_error", "max_ulp", "mismatches"}
    assert data["adapters"]["numpy"]["version"]
    assert "numpy" in capsys.readouterr().out


def test_divergence_exits_1_and_is_detailed_in_markdown(write_case, in_repo, tmp_path):
    path = write_case(DIVERGING)
    assert main(["run", str(path), "-a", "numpy", "--report-dir", str(tmp_path), "--run-id", "r"]) == 1
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.index("## Matrix") < md.index("## Divergences")
    assert "### `t/diverge` on `numpy`" in md and "| `moving_mean` | diverge |" in md


def test_unknown_adapter_is_usage_error(write_case, in_repo, capsys):
    assert main(["run", str(write_case(PASSING)), "--adapter", "nope"]) == 2
    assert "unknown adapter nope" in capsys.readouterr().err


def test_report_rerenders_and_merges_stored_results(write_case, in_repo, tmp_path):
    a, b = write_case(PASSING, "a.yaml"), write_case(DIVERGING, "b.yaml")
    assert main(["run", str(a), "-a", "numpy", "--results", str(tmp_path / "a.json")]) == 0
    assert main(["run", str(b), "-a", "numpy", "--results", str(tmp_path / "b.json")]) == 1
    code = main(["report", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--report-dir", str(tmp_path / "out"),
                 "--run-id", "merged", "--adapter", "numpy", "--adapter", "elsewhere"])
    assert code == 1
    data = json.loads((tmp_path / "out" / "merged" / "results.json").read_text())
    got = {(r["case"], r["adapter"]): r["status"] for r in data["results"]}
    assert got == {("t/pass", "numpy"): "pass", ("t/diverge", "numpy"): "diverge",
                   ("t/pass", "elsewhere"): "skipped", ("t/diverge", "elsewhere"): "skipped"}


def test_report_rejects_unreadable_results(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["report", str(bad), "--report-dir", str(tmp_path)]) == 2
    assert "cannot read results" in capsys.readouterr().err


def test_list_shows_cases_and_adapters(write_case, capsys):
    assert main(["list", str(write_case(PASSING))]) == 0
    out = capsys.readouterr().out
    assert "t/pass" in out and "numpy" in out
