"""The regression gate: baselines per adapter and version, what fails it, what it reports."""

from __future__ import annotations

import json

import pytest

from conformance import gate
from conformance.cli import main
from conformance.results import Result, RunRecord

CASES = """
id: g/epsilon-matters
op: batch_norm
source: float64 reference
attributes: {feature_axes: -1, epsilon: 0.5}
mode: training
inputs: {x: [[0.0], [1.0], [5.0]]}
expected: reference
---
id: g/already-diverges
op: batch_norm
source: by hand, deliberately wrong moving mean (so the baseline holds a divergence)
attributes: {feature_axes: -1, epsilon: 0.0}
mode: training
inputs: {x: [[0.0], [2.0]]}
expected: {y: [[-1.0], [1.0]], moving_mean: [0.5], moving_variance: [1.0]}
"""
INJECTABLE = "tests.support.adapters:Injectable"


def test_injected_epsilon_change_fails_the_gate_naming_case_and_adapter(write_case, in_repo, tmp_path,
                                                                       monkeypatch, capsys):
    path, baseline = write_case(CASES), tmp_path / "baseline.json"
    run = ["run", str(path), "-a", INJECTABLE, "--results", str(tmp_path / "r.json"), "--baseline", str(baseline)]
    assert main(run + ["--update-baseline"]) == 0
    stored = json.loads(baseline.read_text())["adapters"]["test-injectable"]
    (section,) = stored.values()
    assert section["g/epsilon-matters"] == {"status": "pass"}
    assert section["g/already-diverges"]["status"] == "diverge"
    assert main(run) == 0, "an unchanged adapter passes its own baseline"
    capsys.readouterr()

    monkeypatch.setenv("CONFORMANCE_INJECT", "epsilon")
    assert main(run) == 1
    out = capsys.readouterr().out
    assert "gate: FAILED" in out
    assert "regression: g/epsilon-matters on test-injectable: pass -> diverge" in out
    assert "g/already-diverges" not in out.split("gate:")[1], "epsilon 0 -> 1e-5 barely moves it: no regression"


def _record(results: list[Result], version: str = "2.0") -> RunRecord:
    adapters = {r.adapter: {"framework": "fw", "version": version, "status": "ok"} for r in results}
    return RunRecord(run_id="r", started="now", adapters=adapters, results=results)


def _diverge(case: str, err: float, output: str = "y") -> Result:
    return Result(case=case, adapter="a", status="diverge", outputs={output: {"status": "diverge", "max_abs_error": err}})


@pytest.fixture
def baseline(tmp_path):
    base = _record([Result("ok", "a", "pass"), _diverge("off", 1e-3), Result("boom", "a", "error", message="x"),
                    Result("none", "a", "unsupported")])
    gate.update(base, tmp_path / "b.json")
    return gate.read(tmp_path / "b.json")


def test_same_results_pass(baseline):
    same = _record([Result("ok", "a", "pass"), _diverge("off", 1e-3), Result("boom", "a", "error"),
                    Result("none", "a", "unsupported")])
    report = gate.check(same, baseline)
    assert report.passed and report.compared == 4 and not report.changes


@pytest.mark.parametrize("now, failure", [
    (Result("ok", "a", "error", message="raised"), "ok on a: pass -> error"),
    (_diverge("ok", 1.0), "ok on a: pass -> diverge"),
    (_diverge("off", 2.5e-3), "off on a: y error grew 0.001 -> 0.0025"),
    (_diverge("off", 1e-3, output="moving_mean"), "off on a: moving_mean newly diverges"),
    (Result("off", "a", "error"), "off on a: diverge -> error"),
    (_diverge("none", 1.0), "none on a: unsupported -> diverge"),
    (_diverge("brand-new", 1.0), "brand-new on a: new diverge"),
])
def test_regressions_fail(baseline, now, failure):
    report = gate.check(_record([now]), baseline)
    assert not report.passed
    assert any(f.startswith(failure) for f in report.failures), report.failures


def test_improvements_and_declared_divergences_do_not_fail(baseline):
    declared = _diverge("off", 1.1e-3)
    declared.status = "expected-divergence"
    report = gate.check(_record([Result("boom", "a", "pass"), declared, Result("ok", "a", "xpass")]), baseline)
    assert report.passed
    assert report.improvements == ["boom on a: error -> pass"]
    shrunk = gate.check(_record([_diverge("off", 1e-4)]), baseline)
    assert shrunk.passed and "off on a: y error shrank" in shrunk.improvements[0]


def test_baselines_are_kept_per_framework_version(tmp_path, baseline):
    path = tmp_path / "b.json"
    gate.update(_record([_diverge("ok", 1.0)], version="3.0"), path)
    stored = gate.read(path)["adapters"]["a"]
    assert set(stored) == {"fw 2.0", "fw 3.0"}
    assert stored["fw 2.0"]["ok"] == {"status": "pass"}, "the other version's section is kept"
    assert gate.check(_record([_diverge("ok", 1.0)], version="3.0"), gate.read(path)).passed
    report = gate.check(_record([Result("ok", "a", "pass")], version="9.9"), gate.read(path))
    assert "no baseline for fw 9.9; compared with fw 3.0" in report.notes[0]


def test_gate_command_reads_results_and_rejects_a_bad_baseline(tmp_path, capsys):
    results = tmp_path / "r.json"
    from conformance import results as results_io

    results_io.write(_record([Result("ok", "a", "pass")]), results)
    (tmp_path / "bad.json").write_text("{}")
    assert main(["gate", str(results), "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "cannot read baseline" in capsys.readouterr().err
    assert main(["gate", str(results), "--baseline", str(tmp_path / "new.json"), "--update-baseline"]) == 0
    assert main(["gate", str(results), "--baseline", str(tmp_path / "new.json")]) == 0
