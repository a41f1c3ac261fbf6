"""`conformance explain`: the two seed questions, answered from the user's own numbers."""

from __future__ import annotations

import json

from conformance.cli import main

SEED_004 = "docs/examples/explain-seed-004.yaml"
SEED_000 = "docs/examples/explain-seed-000.yaml"


def _explain(path, capsys) -> dict:
    assert main(["explain", path, "--json"]) == 0
    return {e["name"]: e for e in json.loads(capsys.readouterr().out)}


def test_seed_004_epsilon_outside_in_the_users_formula_inside_in_tensorflow(in_repo, capsys):
    got = _explain(SEED_004, capsys)
    user, tf = got["the user's formula"], got["tf.nn.batch_normalization"]
    assert user["verdict"] == "variant" and user["variants"] == ["epsilon-outside-sqrt"]
    assert user["formula"] == "y = gamma * (x - mean) / (sqrt(var) + epsilon) + beta"
    assert tf["verdict"] == "canonical" and "sqrt(moving_variance + epsilon)" in tf["formula"]


def test_seed_000_inference_mode_with_initial_moving_statistics(in_repo, capsys):
    got = _explain(SEED_000, capsys)
    keras = got["keras layer(x)"]
    assert keras["verdict"] == "canonical" and keras["mode"] == "inference"
    assert "moving_mean [0.0, 0.0], moving_variance [1.0, 1.0] (their initial values)" in keras["text"]
    assert got["the user's formula"]["variants"] == ["axes-swapped"]


def test_text_output_prints_the_formula(in_repo, capsys):
    assert main(["explain", SEED_004]) == 0
    out = capsys.readouterr().out
    assert "the user's formula: epsilon added outside the square root" in out
    assert "    y = gamma * (x - mean) / (sqrt(var) + epsilon) + beta" in out


def test_numbers_no_convention_explains(write_case, capsys):
    path = write_case("inputs: {x: [[1.0], [2.0]]}\nmode: training\nobserved:\n  mine: {y: [[7.0], [-3.0]]}\n")
    assert main(["explain", str(path)]) == 0
    assert "mine: unexplained" in capsys.readouterr().out


def test_bad_questions_name_the_field(write_case, capsys):
    assert main(["explain", str(write_case("inputs: {x: [[1.0]]}\n", "a.yaml"))]) == 2
    assert "a.yaml:1: observed: give observed outputs" in capsys.readouterr().err
    path = write_case("inputs: {x: [[1.0]]}\nobserved:\n  mine: {z: [1.0]}\n", "b.yaml")
    assert main(["explain", str(path)]) == 2
    assert "b.yaml:3: observed.mine.z: unknown output of batch_norm" in capsys.readouterr().err
    assert main(["explain", "no-such-file.yaml"]) == 2
