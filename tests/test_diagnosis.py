"""The diagnosis: which variant of the reference reproduces a divergence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conformance import diagnosis, ops
from conformance.adapter import Array
from conformance.diagnosis import catalog, diagnose
from conformance.dtypes import round_to
from conformance.load import cases_from_text, load_cases
from conformance.reference import CANONICAL

TRAIN_TWICE = """
id: d/train-twice
op: batch_norm
source: float64 reference
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.001, momentum: 0.99}
params: {gamma: [1.5, 0.5], beta: [0.25, -1.0]}
steps:
  - mode: training
    inputs: {x: {generate: normal, shape: [6, 2], seed: 1}}
    expected: reference
  - mode: training
    inputs: {x: {generate: normal, shape: [6, 2], seed: 2, loc: 3.0}}
    expected: reference
"""


def _as_framework(case, *variant_names):
    """What a framework with these conventions returns: the variant's reference, rounded to float32."""
    variants = tuple(diagnosis.by_name(n) for n in variant_names)
    applied = diagnosis.apply(variants, case)
    outputs = ops.get(case.op).reference(*applied)
    return [{k: Array(round_to(v, "float32"), "float32") for k, v in step.items()} for step in outputs]


@pytest.fixture
def case():
    (c,) = cases_from_text(TRAIN_TWICE)
    return c


@pytest.mark.parametrize("name", ["unbiased-moving-variance", "unbiased-normalize-variance", "epsilon-outside-sqrt",
                                  "momentum-inverted", "epsilon-1e-5", "modes-swapped"])
def test_each_single_convention_is_named(case, name):
    found = diagnose(case, _as_framework(case, name))
    assert found["matches"][0]["variants"] == [name]
    assert found["summary"].startswith("step1.") and "residual" in found["summary"]


def test_two_conventions_at_once_are_named_as_a_pair(case):
    found = diagnose(case, _as_framework(case, "unbiased-moving-variance", "pytorch-defaults"))
    assert [sorted(m["variants"]) for m in found["matches"]] == [["pytorch-defaults", "unbiased-moving-variance"]]


def test_noise_is_unexplained(case):
    produced = _as_framework(case)
    produced[1]["y"] = Array(produced[1]["y"].values + np.linspace(0.0, 0.5, produced[1]["y"].values.size)
                             .reshape(produced[1]["y"].values.shape), "float32")
    assert diagnose(case, produced) == {"summary": "unexplained", "matches": []}


def test_right_values_in_the_wrong_dtype_say_so(case):
    produced = [{k: Array(v.values, "float16") for k, v in step.items()} for step in _as_framework(case)]
    found = diagnose(case, produced)
    assert found["summary"].startswith("values match the canonical semantics; only the dtype differs")


def test_swapped_axes_reproduce_seed_000s_hand_formula():
    (case,) = [c for c in load_cases(["cases/batch_norm/seed-000-keras-modes.yaml"])
               if c.id == "batch_norm/seed-000/batch-size-one-training"]
    user = [{"y": Array(np.array([[-0.99800598, 0.99800598]]), "float32")}]
    assert "axes-swapped" in diagnose(case, user)["matches"][0]["variants"]


def test_every_catalog_entry_changes_some_bundled_case():
    """A variant that never changes the reference could never explain anything: a dead entry."""
    cases = load_cases(["cases"])
    dead = []
    for variant in catalog():
        if variant.precision:
            continue
        changed = False
        for case in cases:
            applied = diagnosis.apply((variant,), case)
            if applied is None:
                continue
            ref, canon = ops.get(case.op).reference(*applied), ops.get(case.op).reference(case, CANONICAL)
            if not diagnosis._same(ref, canon):
                changed = True
                break
        if not changed:
            dead.append(variant.name)
    assert not dead


def test_a_broken_catalog_entry_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "variants.yaml"
    bad.write_text("- name: ok\n  conventions: {epsilon: outside}\n- name: typo\n  conventions: {epsilon_place: outside}\n")
    with pytest.raises(ValueError, match=r"variants.yaml:3: a variant needs"):
        catalog(str(bad))


def test_diagnosis_reaches_the_result(case):
    from conformance.evaluate import judge

    produced = _as_framework(case, "unbiased-moving-variance")
    outputs, status, _ = judge(case, produced)
    assert status == "diverge"
    assert dataclasses.is_dataclass(case)
    assert diagnose(case, produced)["matches"][0]["variants"] == ["unbiased-moving-variance"]
