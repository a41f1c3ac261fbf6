"""Sweeps: one document expands into the cartesian product of its swept values.

Checks the expansion (count, order, values set), the derived ids, that every
expanded case gets the float64 reference, and that mistakes are one line naming
file, line and field, with the sweep case they occur in.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from conformance.cli import main
from conformance.errors import CaseErrors
from conformance.load import cases_from_text, load_cases
from conformance.sweep import MAX_SWEEP_CASES
from conformance.ops import get
from conformance.reference import CANONICAL

from .conftest import REPO

SWEEP = """\
id: t/sweep
op: group_norm
description: "dtype x layout x groups"
source: float64 reference
attributes:
  epsilon: 1.0e-5
sweep:
  dtype: [float32, float64]
  layout:
    nchw: {attributes.feature_axes: 1, inputs.x: {generate: normal, shape: [2, 4, 3], seed: 1}}
    nhwc:
      attributes.feature_axes: -1
      inputs.x: {generate: normal, shape: [2, 3, 4], seed: 1}
  attributes.groups: [1, 2, 4]
expected: reference
"""


def test_expands_into_the_cartesian_product_in_written_order():
    cases = cases_from_text(SWEEP)
    assert len(cases) == 2 * 2 * 3
    assert [c.id for c in cases[:4]] == [
        "t/sweep/dtype=float32,layout=nchw,groups=1",
        "t/sweep/dtype=float32,layout=nchw,groups=2",
        "t/sweep/dtype=float32,layout=nchw,groups=4",
        "t/sweep/dtype=float32,layout=nhwc,groups=1",
    ]
    assert cases[-1].id == "t/sweep/dtype=float64,layout=nhwc,groups=4"
    assert len({c.id for c in cases}) == len(cases)


def test_each_case_gets_its_values_and_its_own_reference():
    by_id = {c.id: c for c in cases_from_text(SWEEP)}
    nhwc = by_id["t/sweep/dtype=float64,layout=nhwc,groups=2"]
    assert nhwc.dtype == "float64"
    assert nhwc.feature_axes == (2,) and nhwc.attr("groups") == 2
    assert nhwc.steps[0].inputs["x"].shape == (2, 3, 4)
    assert nhwc.attr("epsilon") == 1e-5  # the fixed part is shared
    nchw = by_id["t/sweep/dtype=float32,layout=nchw,groups=4"]
    assert nchw.feature_axes == (1,) and nchw.steps[0].inputs["x"].shape == (2, 4, 3)
    for case in (nhwc, nchw):
        expected = case.steps[0].expected["y"]
        assert expected.source == "reference"
        np.testing.assert_array_equal(expected.values, get(case.op).reference(case, CANONICAL)[0]["y"])
    # different groups really are different cases
    g1 = by_id["t/sweep/dtype=float64,layout=nhwc,groups=1"].steps[0].expected["y"].values
    assert not np.allclose(g1, nhwc.steps[0].expected["y"].values)


def test_a_bundle_sets_several_fields_together():
    """A bundle's values travel together: no nhwc input with the nchw channel axis."""
    pairs = {(c.feature_axes, c.steps[0].inputs["x"].shape) for c in cases_from_text(SWEEP)}
    assert pairs == {((1,), (2, 4, 3)), ((2,), (2, 3, 4))}


def test_labels_of_values_and_of_mappings():
    text = """\
id: t/labels
op: layer_norm
description: "labels"
source: float64 reference
sweep:
  attributes.reduction_axes: [-1, [0, 1]]
  attributes.center: [true, false]
  attributes.epsilon: [1.0e-5, 0.1]
  inputs.x:
    small: {generate: normal, shape: [2, 3], seed: 1}
expected: reference
"""
    ids = [c.id for c in cases_from_text(text)]
    assert ids[0] == "t/labels/reduction_axes=-1,center=true,epsilon=1e-05,x=small"
    assert ids[-1] == "t/labels/reduction_axes=0+1,center=false,epsilon=0.1,x=small"
    assert len(ids) == 8


def test_steps_may_be_swept_over_their_shared_fields():
    text = """\
id: t/steps
op: batch_norm
description: "train then infer in two dtypes"
source: float64 reference
attributes: {feature_axes: -1}
sweep:
  dtype: [float16, float32]
steps:
  - {mode: training, inputs: {x: [[1.0], [3.0]]}, expected: reference}
  - {mode: inference, inputs: {x: [[2.0]]}, expected: {y: reference, moving_mean: {values: reference, rtol: 1.0e-3}}}
"""
    cases = cases_from_text(text)
    assert [c.id for c in cases] == ["t/steps/dtype=float16", "t/steps/dtype=float32"]
    assert cases[0].steps[0].expected["moving_mean"].dtype == "float32"  # half input: float32 statistics
    assert cases[1].steps[1].expected["moving_mean"].tolerance.rtol == 1e-3


def test_a_document_without_sweep_is_unchanged():
    (case,) = cases_from_text("""\
id: t/plain
op: moments
source: by hand
attributes: {reduction_axes: [0]}
inputs: {x: [[1.0], [3.0]]}
expected: {mean: [2.0], variance: [1.0]}
""")
    assert case.id == "t/plain"


def test_the_bundled_sweeps_expand_with_unique_ids(in_repo):
    swept = [c for c in load_cases(["cases"]) if "=" in c.id]
    assert len(swept) > 100
    assert all(c.description for c in swept)
    assert all(e.source == "reference" for c in swept for s in c.steps for e in s.expected.values())


# -- mistakes: one line each, naming file, line, field (and the sweep case) --------------


def mutate(old: str, new: str, text: str = SWEEP) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


MISTAKES = {
    "value that fails only in some cases": (
        mutate("attributes.groups: [1, 2, 4]", "attributes.groups: [1, 3]",
               mutate("    nhwc:\n      attributes.feature_axes: -1\n      inputs.x: {generate: normal, shape: [2, 3, 4], seed: 1}\n",
                      "")), 11, "attributes.groups",
        r"3 groups do not divide the 4 channels of axis 1 \(sweep case dtype=float32,layout=nchw,groups=3 and 1 more\)"),
    "mistake in a bundle value": (
        mutate("seed: 1}}", "sed: 1}}"), 10, "inputs.x", r"unknown key 'sed' .*\(sweep case dtype=float32,layout=nchw,"),
    "mistake in the fixed part, every case": (
        mutate("epsilon: 1.0e-5", "epsilon: -1.0"), 6, "attributes.epsilon", r"less than the minimum.*\(every sweep case\)"),
    "field that cannot be swept": (
        mutate("  dtype: [float32, float64]", "  op: [layer_norm, rms_norm]"), 8, "sweep.op", r"cannot be swept"),
    "swept and also set": (
        mutate("attributes:\n  epsilon: 1.0e-5", "attributes:\n  epsilon: 1.0e-5\n  groups: 2"), 7,
        "attributes.groups", r"is set here and swept in sweep.attributes.groups: remove one"),
    "swept twice": (
        mutate("  attributes.groups: [1, 2, 4]", "  attributes.feature_axes: [1, 2]"), 14,
        "sweep.attributes.feature_axes", r"is also swept by sweep.layout"),
    "no description": (mutate('description: "dtype x layout x groups"\n', ""), 6, "sweep",
                       r"a sweep needs a description"),
    "written expected values": (mutate("expected: reference", "expected: {y: [1.0]}"), 15, "expected",
                                r"must all be `reference`"),
    "unlabelled generator values": (
        mutate("  attributes.groups: [1, 2, 4]", "  inputs.dy: [{generate: normal, shape: [2, 4, 3], seed: 2}]"), 14,
        "sweep.inputs.dy[0]", r"makes no id label: write the values as a mapping label: value"),
    "bad label": (mutate("    nhwc:\n", "    NHWC:\n"), 11, "sweep.layout.NHWC", r"label 'NHWC'"),
    "empty value list": (mutate("[1, 2, 4]", "[]"), 14, "sweep.attributes.groups", r"should be non-empty|is not valid"),
    "too many cases": (
        mutate("  attributes.groups: [1, 2, 4]", "  attributes.groups: [1, 2, 4]\n  attributes.epsilon: ["
               + ", ".join(f"{i}.0" for i in range(1, 12)) + "]").replace("  epsilon: 1.0e-5\n", ""), 6, "sweep",
        rf"expands into 132 cases, more than {MAX_SWEEP_CASES}"),
}


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_each_sweep_mistake_is_one_line_naming_file_line_and_field(kind, write_case, capsys):
    text, line, field, message = MISTAKES[kind]
    path = write_case(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    prefix = f"{path}:{line}: {field}:"
    assert err[0].startswith(prefix), (err[0], prefix)
    assert re.search(message, err[0]), err[0]
    assert "Traceback" not in err[0]


def test_duplicate_expanded_id_names_the_sweep_case(write_case, capsys):
    path = write_case(SWEEP + "---\n" + SWEEP)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 12
    assert re.search(r":17: id: duplicate id 't/sweep/dtype=float32,layout=nchw,groups=1' \(first in .*:1\)", err[0])


def test_sweep_errors_are_case_errors_from_text():
    with pytest.raises(CaseErrors) as info:
        cases_from_text(mutate("[1, 2, 4]", "[1, 3]"), "sweep.yaml")
    assert [e.line for e in info.value.errors] == [14, 14]  # nchw and nhwc name different axes


def test_the_documented_example_expands_as_documented():
    text = (REPO / "docs" / "case-format.md").read_text(encoding="utf-8")
    start = text.index("id: group_norm/sweep/dtype-layout-groups")
    example = text[start:text.index("```", start)].replace("id: group_norm/", "id: doc/")
    cases = cases_from_text(example)
    assert len(cases) == 32
    assert "doc/sweep/dtype-layout-groups/dtype=float16,layout=nhwc,groups=3" in {c.id for c in cases}


def test_the_schema_describes_sweeps(capsys):
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "sweep" in schema["properties"]


def test_no_bundle_name_shadows_a_case_field():
    from conformance.schema import CASE_SCHEMA, SWEEP_BUNDLE

    assert not [k for k in CASE_SCHEMA["properties"] if re.match(SWEEP_BUNDLE, k)]
    assert re.match(SWEEP_BUNDLE, "layout")
