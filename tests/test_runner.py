"""Worker isolation: a raising, aborting, hanging or missing framework costs one case, never the run."""

from __future__ import annotations

import json

import pytest

from conformance import runner
from conformance.load import load_cases
from conformance.report import write_reports

CASES = """
id: t/first
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0}
mode: training
inputs: {x: [[0.0], [2.0]]}
expected: {y: [[-1.0], [1.0]]}
---
id: t/abort-and-hang-here
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0}
mode: training
inputs: {x: [[0.0], [2.0]]}
expected: {y: [[-1.0], [1.0]]}
---
id: t/third
op: batch_norm
source: by hand
attributes: {feature_axes: -1, epsilon: 0.0}
mode: training
inputs: {x: [[1.0], [3.0]]}
expected: {y: [[-1.0], [1.0]]}
"""

SUPPORT = "tests.support.adapters"


@pytest.fixture
def cases(write_case, in_repo):
    return load_cases([write_case(CASES)])


def statuses(record):
    return {(r.case, r.adapter): r.status for r in record.results}


def test_abort_mid_case_yields_one_error_and_a_complete_report(cases, tmp_path):
    record = runner.run(cases, [f"{SUPPORT}:AbortOnSecondCase"], jobs=1)
    adapter = "test-abort"  # results carry the adapter's own name
    assert statuses(record) == {("t/first", adapter): "pass", ("t/abort-and-hang-here", adapter): "error",
                                ("t/third", adapter): "pass"}
    error = next(r for r in record.results if r.status == "error")
    assert "SIGABRT" in error.message
    paths = write_reports(record, tmp_path / "run")
    data = json.loads(paths["results"].read_text())
    assert len(data["results"]) == 3
    assert "t/abort-and-hang-here" in paths["markdown"].read_text()
    assert "<error" in paths["junit"].read_text()


def test_hang_past_timeout_is_an_error_and_the_worker_restarts(cases):
    adapter = f"{SUPPORT}:HangOnCase"
    record = runner.run(cases, [adapter], jobs=1, timeout=3)
    result = {r.case: r for r in record.results}
    assert result["t/abort-and-hang-here"].status == "error"
    assert "timed out after 3 s" in result["t/abort-and-hang-here"].message
    assert result["t/third"].status == "pass"


def test_raising_framework_is_an_error_with_its_message(cases):
    record = runner.run(cases, [f"{SUPPORT}:Raises"], jobs=1)
    assert {r.status for r in record.results} == {"error"}
    assert record.results[0].message.startswith("RuntimeError: framework exploded …")


def test_framework_not_installed_is_skipped(cases):
    record = runner.run(cases, [f"{SUPPORT}:NotInstalled"], jobs=1)
    assert {r.status for r in record.results} == {"skipped"}
    assert "not installed" in record.results[0].message
    assert record.adapters["test-missing"]["status"] == "skipped"


def test_adapters_run_in_parallel_and_each_gets_every_case(cases):
    names = ["numpy", f"{SUPPORT}:Raises", f"{SUPPORT}:NotInstalled"]
    record = runner.run(cases, names, jobs=2)
    assert len(record.results) == 9
    assert record.adapters["numpy"]["version"]
