"""`conformance validate` rejects malformed cases with one line naming file, line and field."""

from __future__ import annotations

import re

import pytest

from conformance.cli import main

GOOD = """\
id: t/good
op: batch_norm
source: by hand
dtype: float32
attributes:
  feature_axes: -1
  epsilon: 1.0e-3
params:
  gamma: [1.0, 2.0]
mode: training
inputs:
  x: [[1.0, 2.0], [3.0, 4.0]]
expected:
  y: reference
"""


def mutate(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


MISTAKES = {
    "unknown key": (mutate("dtype: float32", "dtype: float32\nfoo: 1"), 1, "", r"unknown key 'foo'"),
    "wrong gamma length": (mutate("gamma: [1.0, 2.0]", "gamma: [1.0, 2.0, 3.0]"), 9, "params.gamma",
                           r"shape \(3,\), the feature shape is \(2,\)"),
    "axis out of range": (mutate("feature_axes: -1", "feature_axes: 2"), 6, "attributes.feature_axes",
                          r"axis 2 is out of range for a 2-D input"),
    "ragged input": (mutate("x: [[1.0, 2.0], [3.0, 4.0]]", "x: [[1.0, 2.0], [3.0]]"), 12, "inputs.x",
                     r"ragged array"),
    "bad dtype": (mutate("dtype: float32", "dtype: float8"), 4, "dtype", r"'float8' is not one of"),
    "missing expected output": (mutate("expected:\n  y: reference\n", ""), 1, "", r"'expected' is required"),
    "non-numeric value": (mutate("x: [[1.0, 2.0], [3.0, 4.0]]", "x: [[1.0, two], [3.0, 4.0]]"), 12, "inputs.x[0][1]",
                          r"'two' is not a number"),
    "YAML syntax error": (mutate("x: [[1.0, 2.0], [3.0, 4.0]]", "x: [[1.0, 2.0], [3.0, 4.0]"), 13, "",
                          r"YAML syntax error"),
    "negative tolerance": (GOOD + "tolerance: {rtol: -1.0e-3}\n", 15, "tolerance.rtol",
                           r"-0.001 is less than the minimum of 0"),
    "both axis keys": (mutate("feature_axes: -1", "feature_axes: -1\n  reduction_axes: [0]"), 5, "attributes",
                       r"exactly one of feature_axes .* found both"),
    "unknown op": (mutate("op: batch_norm", "op: batchnorm"), 2, "op", r"'batchnorm' is not one of"),
    "duplicate key": (mutate("dtype: float32", "dtype: float32\ndtype: float64"), 5, "dtype", r"duplicate key"),
    "beta without center": (mutate("epsilon: 1.0e-3", "epsilon: 1.0e-3\n  center: false") .replace(
        "gamma: [1.0, 2.0]", "gamma: [1.0, 2.0]\n  beta: [0.0, 0.0]"), 11, "params.beta", r"center is false"),
    "expected shape": (mutate("y: reference", "y: [1.0, 2.0]"), 14, "expected.y", r"has shape \(2,\), but y has shape \(2, 2\)"),
    "batch stats in inference": (mutate("mode: training", "mode: inference").replace("y: reference", "batch_mean: reference"),
                                 14, "expected.batch_mean", r"no batch statistic in inference"),
    "generator without seed": (mutate("x: [[1.0, 2.0], [3.0, 4.0]]", "x: {generate: normal, shape: [4, 2]}"), 12,
                               "inputs.x.seed", r"needs a seed"),
}


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_each_mistake_is_one_line_naming_file_line_and_field(kind, write_case, capsys):
    text, line, field, message = MISTAKES[kind]
    path = write_case(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    prefix = f"{path}:{line}:" + (f" {field}:" if field else "")
    assert err[0].startswith(prefix), (err[0], prefix)
    assert re.search(message, err[0]), err[0]
    assert "Traceback" not in err[0]


def test_good_case_validates(write_case, capsys):
    assert main(["validate", str(write_case(GOOD))]) == 0
    assert "1 cases OK" in capsys.readouterr().out


def test_duplicate_id_across_files(write_case, capsys):
    first = write_case(GOOD, "a.yaml")
    write_case(GOOD, "b.yaml")
    assert main(["validate", str(first.parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r".*b\.yaml:1: id: duplicate id 't/good' \(first in .*a\.yaml:1\)", err), err


def test_all_mistakes_reported_at_once(write_case, capsys):
    text = mutate("dtype: float32", "dtype: float8\nfoo: 1")
    assert main(["validate", str(write_case(text))]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_missing_path_is_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


GROUP = """\
id: t/group
op: group_norm
source: by hand
attributes:
  feature_axes: 1
  groups: 2
inputs:
  x: [[1.0, 2.0, 3.0, 4.0]]
  dy: [[1.0, 0.0, 0.0, 0.0]]
expected:
  y: reference
"""

NORM_MISTAKES = {
    "groups do not divide C": (mutate("groups: 2", "groups: 3", GROUP), 6, "attributes.groups",
                               r"3 groups do not divide the 4 channels of axis 1"),
    "channel axis is the batch axis": (mutate("feature_axes: 1", "feature_axes: 0", GROUP), 5,
                                       "attributes.feature_axes", r"axis 0 is the batch axis"),
    "group norm takes no reduction_axes": (mutate("feature_axes: 1", "reduction_axes: 1", GROUP), 4, "attributes",
                                           r"unknown key 'reduction_axes'"),
    "dy shape": (mutate("dy: [[1.0, 0.0, 0.0, 0.0]]", "dy: [[1.0, 0.0]]", GROUP), 9, "inputs.dy",
                 r"has shape \(1, 2\); the upstream gradient has x's shape \(1, 4\)"),
    "gradient without dy": (mutate("  dy: [[1.0, 0.0, 0.0, 0.0]]\n", "", GROUP).replace("y: reference", "dx: reference"),
                            10, "expected.dx", r"give inputs.dy"),
    "dbeta without beta": (mutate("groups: 2", "groups: 2\n  center: false", GROUP).replace(
        "y: reference", "dbeta: reference"), 12, "expected.dbeta", r"there is no beta"),
    "moving stats without tracking": (GOOD.replace("mode: training", "mode: training").replace(
        "epsilon: 1.0e-3", "epsilon: 1.0e-3\n  track_running_stats: false").replace("y: reference", "moving_mean: reference"),
        15, "expected.moving_mean", r"track_running_stats is false"),
    "frozen layer has no batch statistics": (GOOD.replace("epsilon: 1.0e-3", "epsilon: 1.0e-3\n  trainable: false").replace(
        "y: reference", "batch_mean: reference"), 15, "expected.batch_mean", r"trainable is false"),
    "bad momentum word": (mutate("epsilon: 1.0e-3", "epsilon: 1.0e-3\n  momentum: cumulated"), 8, "attributes.momentum",
                          r"'cumulated' is not valid here|not one of|cumulative"),
    "beta with rms_scaling": ("""\
id: t/ln
op: layer_norm
source: by hand
attributes: {reduction_axes: -1, rms_scaling: true}
params:
  beta: [0.0, 0.0]
inputs: {x: [[1.0, 2.0]]}
expected: reference
""", 6, "params.beta", r"rms_scaling is true"),
    "layer norm gamma on the wrong axes": ("""\
id: t/ln
op: layer_norm
source: by hand
attributes: {reduction_axes: -1}
params:
  gamma: [1.0, 2.0, 3.0]
inputs: {x: [[1.0, 2.0]]}
expected: reference
""", 6, "params.gamma", r"has shape \(3,\), the parameter shape is \(2,\) \(input dims \[1\]"),
    "instance norm gamma without affine": ("""\
id: t/in
op: instance_norm
source: by hand
attributes: {feature_axes: 1}
params:
  gamma: [1.0]
mode: training
inputs: {x: [[[1.0, 2.0]]]}
expected: reference
""", 6, "params.gamma", r"affine is false"),
}


@pytest.mark.parametrize("kind", sorted(NORM_MISTAKES))
def test_normalization_family_mistakes_are_one_line(kind, write_case, capsys):
    text, line, field, message = NORM_MISTAKES[kind]
    path = write_case(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    prefix = f"{path}:{line}:" + (f" {field}:" if field else "")
    assert err[0].startswith(prefix), (err[0], prefix)
    assert re.search(message, err[0]), err[0]


def test_known_divergences_folders_are_not_case_files(write_case, capsys):
    case = write_case(GOOD)
    declarations = case.parent / "known-divergences"
    declarations.mkdir()
    (declarations / "torch.yaml").write_text("- adapter: torch.nn\n  case: t/good\n", encoding="utf-8")
    assert main(["validate", str(case.parent)]) == 0
    assert "1 cases OK" in capsys.readouterr().out
