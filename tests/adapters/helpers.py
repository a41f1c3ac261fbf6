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


# Momentum 0.9 over three steps (training, training, inference), numbers by hand:
# step 1 x = [1, 3]: mean 2, var 1 -> moving (0.2, 1.0)
# step 2 x = [4, 8]: mean 6, var 4 -> moving (0.18 + 0.6 = 0.78, 0.9 + 0.4 = 1.3)
# step 3 inference x = 2: y = (2 - 0.78) / sqrt(1.3 + 0.001)
MOMENTUM = """
id: momentum
op: batch_norm
dtype: float64
attributes: {feature_axes: 1, epsilon: 0.001, momentum: 0.9, center: false, scale: false}
steps:
  - mode: training
    inputs: {x: [[1.0], [3.0]]}
    expected: {moving_mean: [0.2], moving_variance: [1.0]}
  - mode: training
    inputs: {x: [[4.0], [8.0]]}
    expected: {moving_mean: [0.78], moving_variance: [1.3]}
  - mode: inference
    inputs: {x: [[2.0]]}
    expected: {y: [[1.0695994782]], moving_mean: [0.78], moving_variance: [1.3]}
"""
