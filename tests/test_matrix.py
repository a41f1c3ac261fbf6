"""The semantics matrix is read off results: passes, diagnoses, errors, dtypes."""

from __future__ import annotations

from conformance import diagnosis, matrix, ops
from conformance.adapter import Array
from conformance.cli import main
from conformance.dtypes import round_to
from conformance.evaluate import judge
from conformance.load import load_cases
from conformance.results import Result, RunRecord, write

PROBE = "batch_norm/layout/nchw-channels-first-train-train-infer"


def _result(case, adapter, *variant_names) -> Result:
    """A result as an adapter with these conventions would give it (the variant's reference)."""
    applied = diagnosis.apply(tuple(diagnosis.by_name(n) for n in variant_names), case)
    produced = [{k: Array(round_to(v, case.dtype), case.dtype) for k, v in step.items()}
                for step in ops.get(case.op).reference(*applied)]
    outputs, status, message = judge(case, produced)
    result = Result(case.id, adapter, status, outputs, message)
    if status == "diverge":
        result.diagnosis = diagnosis.diagnose(case, produced)
    return result


def test_cells_come_from_passes_diagnoses_and_errors(in_repo, tmp_path):
    (case,) = [c for c in load_cases(["cases/batch_norm/reference-layouts.yaml"]) if c.id == PROBE]
    results = [_result(case, "canon"), _result(case, "torchlike", "unbiased-moving-variance"),
               Result(PROBE, "crashy", "error", message="RuntimeError: no (at x.py:1)")]
    record = RunRecord("r1", "t0", adapters={a: {"framework": "fw", "version": "1"} for a in
                                             ("canon", "torchlike", "crashy")},
                       cases={case.id: case.summary()}, results=results)
    row = next(r for r in matrix.ROWS if r.case == PROBE)
    assert [matrix.cell(row, r) for r in results] == ["biased (n)", "unbiased (n - 1)", "raises: RuntimeError: no"]
    page = matrix.render(record, in_repo / "docs")
    line = next(li for li in page.splitlines() if li.startswith("| variance in the moving update"))
    assert f"[`{PROBE}`](../cases/batch_norm/reference-layouts.yaml#L{case.line})" in line
    assert line.endswith("| biased (n) | unbiased (n - 1) | raises: RuntimeError: no |")
    assert "| default epsilon |" in page and " – |" in page, "a probe absent from the run reads –"

    write(record, tmp_path / "results.json")
    assert main(["matrix", str(tmp_path / "results.json"), "-o", str(tmp_path / "m.md")]) == 0
    assert "unbiased (n - 1)" in (tmp_path / "m.md").read_text()


def test_every_probe_case_exists_in_the_corpus(in_repo):
    ids = {c.id for c in load_cases(["cases"])}
    assert [row.case for row in matrix.ROWS if row.case not in ids] == []
