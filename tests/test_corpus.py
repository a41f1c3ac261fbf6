"""The bundled corpus: it validates, every seed scenario is there, and NumPy passes all of it."""

from __future__ import annotations

import pytest

from adapters.numpy_adapter import NumpyAdapter
from conformance.evaluate import evaluate
from conformance.load import load_cases
from conformance.reference import CANONICAL

from .conftest import REPO

CASES = load_cases([REPO / "cases"])


def test_corpus_is_not_empty_and_cites_sources():
    assert len(CASES) >= 30
    assert all(c.source.strip() for c in CASES)


@pytest.mark.parametrize("seed", ["000", "001", "002", "003", "004"])
def test_every_seed_has_cases(seed):
    assert any(f"seeds/{seed}" in c.source for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numpy_adapter_passes(case):
    result = evaluate(case, NumpyAdapter())
    if case.dtype == "bfloat16":  # NumPy has no bfloat16 nor autodiff: the things it cannot express
        assert (result.status, result.message) == ("unsupported", "NumPy has no bfloat16 dtype")
    elif any(name in s.expected for s in case.steps for name in ("dx", "dgamma", "dbeta")):
        assert (result.status, result.message) == ("unsupported", "NumPy has no automatic differentiation")
    else:
        assert result.status == "pass", result.message


@pytest.mark.parametrize("case", [c for c in CASES if any(e.source == "case" for s in c.steps for e in s.expected.values())],
                         ids=lambda c: c.id)
def test_written_expectations_agree_with_the_reference(case):
    """Numbers copied from a seed or worked by hand must agree with the float64 reference."""
    from conformance.compare import compare
    from conformance.ops import get

    produced = get(case.op).reference(case, CANONICAL)
    for step, out in zip(case.steps, produced):
        for name, exp in step.expected.items():
            c = compare(name, exp.values, exp.dtype, out[name], exp.dtype, exp.tolerance)
            assert c.status == "pass", (name, c.message)
