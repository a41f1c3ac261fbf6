"""The pytest plugin: one item per (case, adapter), -k selection, divergences printed."""

from __future__ import annotations

import shutil

pytest_plugins = ["pytester"]

from .conftest import REPO


def test_items_selectable_by_k(pytester, monkeypatch):
    shutil.copytree(REPO / "cases", pytester.path / "cases")
    monkeypatch.chdir(pytester.path)
    result = pytester.runpytest("--conformance", "cases", "--conformance-adapter", "numpy", "-k", "two-samples", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*two-samples-one-feature?numpy? PASSED*"])


def test_failing_item_prints_the_divergence(pytester, monkeypatch):
    (pytester.path / "bad.yaml").write_text("""
id: t/wrong
op: batch_norm
source: by hand, deliberately wrong
attributes: {feature_axes: -1, epsilon: 0.0}
mode: training
inputs: {x: [[0.0], [2.0]]}
expected: {y: [[-1.0], [1.5]]}
""")
    monkeypatch.chdir(pytester.path)
    result = pytester.runpytest("--conformance", "bad.yaml", "--conformance-adapter", "numpy")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*diverge: t/wrong on numpy*", "*y: 1 of 2 values outside*", "*expected [-1.0, 1.5]*"])
