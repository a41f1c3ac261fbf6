"""Known-divergence declarations: loading, judging, version bounds, stale entries."""

from __future__ import annotations

import pytest

from conformance import known
from conformance.cli import main
from conformance.errors import CaseErrors
from conformance.results import Result, RunRecord

DECLS = """
- case: bn/*
  adapter: torch.*
  outputs: [moving_variance]
  when: "torch>=2.0"
  reason: unbiased running variance
  link: https://example.org/doc
- case: [bn/raises, bn/exactly]
  adapter: torch.nn
  expect: error
  reason: batch of one raises
- case: bn/renamed-long-ago
  adapter: torch.nn
  reason: a case that no longer exists
"""


@pytest.fixture
def declarations(tmp_path):
    folder = tmp_path / "known-divergences"
    folder.mkdir()
    (folder / "torch.yaml").write_text(DECLS)
    return known.load([folder])


def _result(case, status, diverging=("moving_variance",), adapter="torch.nn"):
    outputs = {"y": {"status": "pass"}} | {k: {"status": "diverge"} for k in diverging}
    return Result(case=case, adapter=adapter, status=status, outputs=outputs)


def _record(results, version="2.13.0"):
    adapters = {r.adapter: {"framework": "torch", "version": version, "status": "ok"} for r in results}
    return RunRecord("r", "now", adapters=adapters, results=results)


def test_declared_divergence_pass_and_extra_output(declarations):
    rec = _record([_result("bn/a", "diverge", ("step2.moving_variance",)), _result("bn/b", "pass", ()),
                   _result("bn/c", "diverge", ("moving_variance", "y")), _result("bn/raises", "error", ()),
                   _result("bn/exactly", "pass", ())])
    known.apply(rec, declarations)
    status = {r.case: r.status for r in rec.results}
    assert status == {"bn/a": "expected-divergence", "bn/b": "pass", "bn/c": "diverge",
                      "bn/raises": "expected-divergence", "bn/exactly": "xpass"}, \
        "a glob declares a cause (bn/b passing is fine); a case named exactly that passes is an xpass"
    assert rec.results[0].declared["link"] == "https://example.org/doc"
    assert "covers moving_variance only, not y" in rec.results[2].notes[0]
    known.apply(rec, declarations)  # idempotent: re-judging stored results changes nothing
    assert {r.case: r.status for r in rec.results} == status
    known.apply(rec, [])
    assert [r.status for r in rec.results] == ["diverge", "pass", "diverge", "error", "pass"]


def test_version_bound_and_stale_entries(declarations):
    old = _record([_result("bn/a", "diverge")], version="1.13.1")
    known.apply(old, declarations)
    assert old.results[0].status == "diverge", "torch>=2.0 does not cover torch 1.13"
    rec = _record([_result("bn/a", "diverge"), _result("bn/raises", "error", ())])
    known.apply(rec, declarations)
    warnings = known.stale(rec, declarations)
    assert len(warnings) == 1 and "bn/renamed-long-ago" in warnings[0] and "torch.yaml:12" in warnings[0]
    passing = _record([_result("bn/a", "pass", ()), _result("bn/raises", "error", ())])
    known.apply(passing, declarations)
    assert any("torch.yaml:2: stale declaration: bn/* on torch.* covers no divergence" in w
               for w in known.stale(passing, declarations))


@pytest.mark.parametrize("text, message", [
    ("- case: a\n  adapter: b\n", "torch.yaml:1: [0]: 'reason' is a required property"),
    ("- case: a\n  adapter: b\n  reason: r\n  when: torch >>= 2\n", "torch.yaml:4: [0].when: not a version bound"),
    ("- case: a\n  adapter: b\n  reason: r\n  expect: crash\n", "torch.yaml:4: [0].expect: 'crash' is not one of"),
    ("- case: a\n  adapter: b\n  reason: r\n  diagnosis: [eps-typo]\n", "torch.yaml:4: [0].diagnosis: unknown variant"),
])
def test_bad_declarations_name_file_line_and_field(tmp_path, text, message):
    (tmp_path / "torch.yaml").write_text(text)
    with pytest.raises(CaseErrors) as info:
        known.load([tmp_path / "torch.yaml"])
    assert message in str(info.value)


def test_run_reads_known_divergences_beside_the_cases(tmp_path, in_repo, capsys):
    cases = tmp_path / "cases"
    (cases / "known-divergences").mkdir(parents=True)
    (cases / "c.yaml").write_text(
        "id: t/diverge\nop: batch_norm\nsource: by hand\nattributes: {feature_axes: -1, epsilon: 0.0}\n"
        "mode: training\ninputs: {x: [[0.0], [2.0]]}\n"
        "expected: {y: [[-1.0], [1.0]], moving_mean: [0.5], moving_variance: [1.0]}\n")
    (cases / "known-divergences" / "numpy.yaml").write_text(
        "- case: t/diverge\n  adapter: numpy\n  outputs: [moving_mean]\n  reason: the case is wrong on purpose\n"
        "- case: t/gone\n  adapter: numpy\n  reason: stale\n")
    assert main(["run", str(cases), "-a", "numpy", "--report-dir", str(tmp_path / "r"), "--run-id", "x"]) == 0
    out = capsys.readouterr().out
    assert "stale declaration" in out and "t/gone" in out
    md = (tmp_path / "r" / "x" / "report.md").read_text()
    assert "## Known divergences" in md and "the case is wrong on purpose" in md


def test_a_declared_diagnosis_must_be_the_one_found(tmp_path):
    (tmp_path / "k.yaml").write_text("- case: '*'\n  adapter: torch.nn\n  diagnosis: [unbiased-moving-variance]\n"
                                     "  reason: running_var is unbiased\n")
    decls = known.load([tmp_path / "k.yaml"])
    right, wrong = _result("a", "diverge"), _result("b", "diverge")
    right.diagnosis = {"matches": [{"variants": ["unbiased-moving-variance", "pytorch-defaults"]}]}
    wrong.diagnosis = {"matches": [{"variants": ["epsilon-outside-sqrt"]}]}
    rec = _record([right, wrong])
    known.apply(rec, decls)
    assert [r.status for r in rec.results] == ["expected-divergence", "diverge"]
    assert "expects the diagnosis unbiased-moving-variance" in rec.results[1].notes[0]
