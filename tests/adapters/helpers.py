"""Helpers shared by the adapter tests: build a case from YAML text, load an
adapter, run it and judge the result with the real framework."""

from __future__ import annotations

from conformance.evaluate import evaluate
from conformance.load import cases_from_text


def one(text: str):
    """The single case in ``text`` (a ``source:`` line is added when missing)."""
    (case,) = cases_from_text(text if "\nsource:" in "\n" + text else "source: test\n" + text)
    return case


def make(adapter_cls):
    """A loaded adapter (its framework imported)."""
    adapter = adapter_cls()
    adapter.load()
    return adapter


def run(case, adapter_cls):
    """The judged Result of ``case`` on a fresh ``adapter_cls``."""
    return evaluate(case, make(adapter_cls))


def raw(case, adapter_cls):
    """The adapter's raw outputs (one dict per step)."""
    return make(adapter_cls).run(case)


def judge(adapter, text: str):
    """The judged Result of the case in ``text`` on an already loaded adapter."""
    return evaluate(one(text), adapter)
