"""The Keras 3 adapters (keras-tensorflow, keras-jax, keras-torch, keras-numpy), on the real Keras.

Keras picks its backend once per process, so each backend runs in a fresh
subprocess (``KERAS_BACKEND=<backend>``) that evaluates every case below and
prints the results as JSON; the tests judge that JSON. A backend whose
framework is not importable in this environment is skipped, and so is the
whole file where Keras is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]

#: backend -> modules it needs (the Keras numpy backend imports scipy and jax)
NEEDS = {
    "tensorflow": ("tensorflow",),
    "jax": ("jax",),
    "torch": ("torch",),
    "numpy": ("numpy", "scipy", "jax"),
}
BACKENDS = list(NEEDS)
#: backends whose keras.ops.moments uses the one-pass E[x^2] - E[x]^2 formula, and
#: whose type promotion turns float64 into float32 inside BatchNormalization
ONE_PASS = {"torch", "numpy"}

CASES = """
id: seed-000/inference-by-default
op: batch_norm
source: seeds/000
dtype: float64
attributes:
  feature_axes: -1
  epsilon: {framework_default: 1.0e-3}
  momentum: {framework_default: 0.99}
  center: false
  scale: false
mode: {framework_default: inference}
inputs:
  x: [[3.0, 4.0]]
expected:
  y: {values: [[2.99850112, 3.9980015]], rtol: 1.0e-8, atol: 1.0e-8}
  moving_mean: reference
  moving_variance: reference
---
id: seed-000/two-samples-one-feature
op: batch_norm
source: seeds/000
dtype: float32
attributes:
  feature_axes: -1
  epsilon: {framework_default: 1.0e-3}
  momentum: {framework_default: 0.99}
  center: false
  scale: false
mode: training
inputs:
  x: [[3.0], [4.0]]
expected:
  y: [[-0.99800634], [0.99800587]]
  moving_mean: [0.035]
  moving_variance: [0.9925]
---
id: channels-first
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: 1, momentum: 0.9}
params: {gamma: [0.5, 1.0, 2.0], beta: [1.0, 0.0, -1.0]}
state: {moving_mean: [0.1, 0.2, 0.3], moving_variance: [1.0, 2.0, 3.0]}
mode: training
inputs:
  x: {generate: normal, seed: 3, shape: [2, 3, 2, 2], loc: 1.0, scale: 2.0}
expected: reference
---
id: middle-axis-3d
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: 1, center: false}
params: {gamma: [2.0, 3.0]}
steps:
  - mode: training
    inputs: {x: {generate: uniform, seed: 4, shape: [3, 2, 4], low: -1.0, high: 3.0}}
    expected: reference
  - mode: inference
    inputs: {x: {generate: uniform, seed: 5, shape: [1, 2, 4]}}
    expected: reference
---
id: momentum-three-steps-then-inference
op: batch_norm
source: test, numbers by hand
dtype: float32
attributes: {feature_axes: -1, momentum: 0.9, center: false, scale: false}
steps:
  - mode: training
    inputs: {x: [[1.0], [3.0]]}
    expected: {y: [[-0.9995003], [0.9995003]], moving_mean: [0.2], moving_variance: [1.0]}
  - mode: training
    inputs: {x: [[0.0], [4.0]]}
    expected: {moving_mean: [0.38], moving_variance: [1.3]}
  - mode: training
    inputs: {x: [[2.0], [2.0]]}
    expected: {y: [[0.0], [0.0]], moving_mean: [0.542], moving_variance: [1.17]}
  - mode: inference
    inputs: {x: [[1.542]]}
    expected: {y: [[0.9241055]], moving_mean: [0.542], moving_variance: [1.17]}
---
id: explicit-epsilon
op: batch_norm
source: test, numbers by hand
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.5, center: false, scale: false}
mode: inference
inputs: {x: [[3.0, 4.0]]}
expected: {y: [[2.4494897, 3.2659863]], moving_mean: [0.0, 0.0], moving_variance: [1.0, 1.0]}
---
id: multi-axis-kept
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: [1, 2]}
mode: training
inputs: {x: {generate: arange, shape: [2, 3, 4]}}
expected: reference
---
id: ill-conditioned-training
op: batch_norm
source: test
dtype: float32
attributes: {feature_axes: -1, center: false, scale: false}
tolerance: {condition_aware: true}
mode: training
inputs: {x: [[10000.0, 1.0], [10001.0, 2.0], [10002.0, 3.0], [10003.0, 4.0]]}
expected: reference
---
id: half-mixed-precision
op: batch_norm
source: test
dtype: float16
attributes: {feature_axes: 1}
params: {gamma: [1.5, 2.0], beta: [0.5, -1.0]}
steps:
  - mode: training
    inputs: {x: [[1.0, 2.0], [3.0, 5.0], [4.0, 8.0]]}
    expected: reference
  - mode: inference
    inputs: {x: [[1.0, 2.0], [3.0, 5.0], [4.0, 8.0]]}
    expected: reference
---
id: moments/two-axes-keepdims
op: moments
source: test
dtype: bfloat16
attributes: {reduction_axes: [0, 2], keepdims: true}
inputs: {x: {generate: arange, shape: [2, 3, 2]}}
expected: reference
---
id: moments/channels-first
op: moments
source: test
dtype: float32
attributes: {feature_axes: 1}
inputs: {x: {generate: normal, seed: 7, shape: [4, 3, 2, 2]}}
expected: reference
---
id: moments/ill-conditioned
op: moments
source: test
dtype: float32
attributes: {reduction_axes: 0}
inputs: {x: [[10000.0, 1.0], [10001.0, 2.0], [10002.0, 3.0], [10003.0, 4.0]]}
expected: reference
---
id: moments/no-reduction-axis
op: moments
source: test
dtype: float32
attributes: {feature_axes: 0}
inputs: {x: [1.0, 2.0, 3.0]}
expected: reference
---
id: moments/bfloat16-scalar
op: moments
source: test
dtype: bfloat16
attributes: {reduction_axes: [0, 1]}
inputs: {x: {generate: arange, shape: [2, 3]}}
expected: reference
---
id: bn/frozen-layer-trains-as-inference
op: batch_norm
source: "by hand: (x - 1) / sqrt(4) for x = [3, 5] gives [1, 2] (epsilon 0); the state is unchanged"
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, trainable: false}
state: {moving_mean: [1.0], moving_variance: [4.0]}
mode: training
inputs: {x: [[3.0], [5.0]]}
expected: {y: [[1.0], [2.0]], moving_mean: [1.0], moving_variance: [4.0]}
---
id: bn/cumulative-momentum
op: batch_norm
source: "by hand: batches [0, 2] then [4, 8]: cumulative mean 1 then 3.5"
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, momentum: cumulative}
steps:
  - mode: training
    inputs: {x: [[0.0], [2.0]]}
    expected: {moving_mean: [1.0]}
  - mode: training
    inputs: {x: [[4.0], [8.0]]}
    expected: {moving_mean: [3.5]}
---
id: bn/untracked
op: batch_norm
source: "by hand: batch [0, 2] has mean 1, variance 1 -> [-1, 1] (epsilon 0)"
dtype: float32
attributes: {feature_axes: -1, epsilon: 0.0, track_running_stats: false}
mode: inference
inputs: {x: [[0.0], [2.0]]}
expected: {y: [[-1.0], [1.0]]}
---
id: bn/gradient-training-then-inference
op: batch_norm
source: float64 reference (analytic gradients)
dtype: float32
attributes: {feature_axes: 1, momentum: 0.9}
params: {gamma: [1.5, -0.5, 1.0], beta: [0.0, 1.0, -1.0]}
state: {moving_mean: [0.5, -1.0, 0.0], moving_variance: [2.0, 0.25, 1.0]}
steps:
  - mode: training
    inputs: {x: {generate: normal, shape: [4, 3, 2], seed: 61}, dy: {generate: normal, shape: [4, 3, 2], seed: 62}}
    expected: reference
  - mode: inference
    inputs: {x: {generate: normal, shape: [4, 3, 2], seed: 63}, dy: {generate: normal, shape: [4, 3, 2], seed: 64}}
    expected: reference
---
id: bn/gradient-frozen
op: batch_norm
source: "float64 reference: a frozen layer's training step is inference, dx = dy * gamma / sqrt(mv + epsilon)"
dtype: float32
attributes: {feature_axes: -1, trainable: false}
params: {gamma: [2.0, -1.0], beta: [0.5, 0.0]}
state: {moving_mean: [1.0, -1.0], moving_variance: [4.0, 0.5]}
mode: training
inputs: {x: {generate: normal, shape: [5, 2], seed: 65}, dy: {generate: normal, shape: [5, 2], seed: 66}}
expected: reference
---
id: ln/two-trailing-axes-with-gradients
op: layer_norm
source: float64 reference
dtype: float32
attributes: {reduction_axes: [1, 2], epsilon: 1.0e-5}
params: {gamma: {generate: normal, shape: [3, 4], seed: 1, loc: 1.0}, beta: {generate: normal, shape: [3, 4], seed: 2}}
inputs: {x: {generate: normal, shape: [2, 3, 4], seed: 3, loc: 0.5}, dy: {generate: normal, shape: [2, 3, 4], seed: 4}}
expected: reference
---
id: ln/first-axis
op: layer_norm
source: "by hand: column [1, 3] -> [-1, 1]; column [2, 6] -> [-1, 1] (epsilon 0); gamma [1, 3] spans axis 0"
dtype: float32
attributes: {reduction_axes: 0, epsilon: 0.0}
params: {gamma: [1.0, 3.0]}
inputs: {x: [[1.0, 2.0], [3.0, 6.0]]}
expected: {y: [[-1.0, -1.0], [3.0, 3.0]]}
---
id: ln/rms-scaling
op: layer_norm
source: "by hand: mean(x^2) = 5, y = [1, 3] / sqrt(5) (epsilon 0)"
dtype: float32
attributes: {reduction_axes: -1, epsilon: 0.0, rms_scaling: true}
inputs: {x: [[1.0, 3.0]]}
expected: {y: [[0.44721359549995793, 1.3416407864998738]]}
---
id: ln/params-on-last-axis-only
op: layer_norm
source: float64 reference
dtype: float32
attributes: {reduction_axes: [1, 2], param_axes: -1}
inputs: {x: {generate: normal, shape: [2, 3, 4], seed: 26}}
expected: reference
---
id: ln/half-gradients
op: layer_norm
source: float64 reference
dtype: float16
attributes: {reduction_axes: -1}
params: {gamma: [1.0, 2.0, -1.0, 0.5], beta: [0.0, 0.5, 1.0, -0.5]}
inputs: {x: {generate: normal, shape: [3, 4], seed: 5}, dy: {generate: normal, shape: [3, 4], seed: 6}}
expected: reference
---
id: rms/last-axis-with-gradients
op: rms_norm
source: float64 reference
dtype: float32
attributes: {reduction_axes: -1, epsilon: {framework_default: 1.0e-6}}
params: {gamma: [1.0, 2.0, 0.5, -1.0, 3.0]}
inputs: {x: {generate: normal, shape: [3, 5], seed: 7}, dy: {generate: normal, shape: [3, 5], seed: 8}}
expected: reference
---
id: rms/first-axis-no-scale
op: rms_norm
source: "by hand: columns [1, 3] and [2, 6] divided by their RMS sqrt(5) and sqrt(20): [0.4472136, 1.3416408] each"
dtype: float32
attributes: {reduction_axes: 0, epsilon: 0.0, scale: false}
inputs: {x: [[1.0, 2.0], [3.0, 6.0]]}
expected: {y: [[0.4472135955, 0.4472135955], [1.3416407865, 1.3416407865]]}
---
id: gn/nchw-with-gradients
op: group_norm
source: float64 reference
dtype: float32
attributes: {feature_axes: 1, groups: 2, epsilon: 1.0e-5}
params: {gamma: [1.0, 2.0, 0.5, -1.0], beta: [0.0, 1.0, -1.0, 0.5]}
inputs:
  x: {generate: normal, shape: [2, 4, 3, 2], seed: 9, loc: 1.0}
  dy: {generate: normal, shape: [2, 4, 3, 2], seed: 10}
expected: reference
---
id: gn/nhwc-default-epsilon
op: group_norm
source: float64 reference
dtype: float32
attributes: {feature_axes: -1, groups: 3, epsilon: {framework_default: 1.0e-3}, center: false}
params: {gamma: [1.0, 2.0, 0.5, -1.0, 3.0, 1.5]}
inputs: {x: {generate: normal, shape: [2, 2, 2, 6], seed: 11}}
expected: reference
---
id: in/hand
op: instance_norm
source: "by hand: channel [1, 3] -> [-1, 1]; channel [0, 4] -> [-1, 1] (epsilon 0)"
dtype: float32
attributes: {feature_axes: 1, epsilon: 0.0}
mode: inference
inputs: {x: [[[1.0, 3.0], [0.0, 4.0]]]}
expected: {y: [[[-1.0, 1.0], [-1.0, 1.0]]]}
---
id: in/affine-default-channels-last
op: instance_norm
source: float64 reference
dtype: float32
attributes: {feature_axes: -1, epsilon: 1.0e-3, affine: {framework_default: false}}
mode: training
inputs: {x: {generate: normal, shape: [2, 5, 3], seed: 12}}
expected: reference
---
id: in/affine-with-gradients
op: instance_norm
source: float64 reference
dtype: float32
attributes: {feature_axes: 1, epsilon: 1.0e-5, affine: true}
params: {gamma: [1.5, -0.5], beta: [0.25, 1.0]}
mode: training
inputs: {x: {generate: normal, shape: [3, 2, 4], seed: 13}, dy: {generate: normal, shape: [3, 2, 4], seed: 14}}
expected: reference
---
id: in/tracked
op: instance_norm
source: float64 reference
dtype: float32
attributes: {feature_axes: 1, track_running_stats: true}
mode: training
inputs: {x: {generate: normal, shape: [2, 2, 3], seed: 15}}
expected: reference
"""

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from conformance.evaluate import evaluate
    from conformance.load import cases_from_text
    from adapters import keras_adapter as ka

    backend, cases_text = sys.argv[1], sys.stdin.read()
    classes = {c.backend: c for c in (ka.KerasTensorflowAdapter, ka.KerasJaxAdapter,
                                      ka.KerasTorchAdapter, ka.KerasNumpyAdapter)}
    adapter = classes[backend]()
    adapter.load()
    out = {"environment": adapter.environment(), "results": {}}
    cases = cases_from_text(cases_text)
    for case in cases:
        out["results"][case.id] = evaluate(case, adapter).to_json()

    # error capture: step 2 gets 3 features where the layer was built for 1
    # (the loader refuses such a file, so the case is altered after loading)
    case = next(c for c in cases if c.id == "momentum-three-steps-then-inference")
    case.id = "error/feature-size-changes"
    case.steps[1].inputs["x"] = np.zeros((2, 3))
    out["results"][case.id] = evaluate(case, adapter).to_json()

    # Keras is now imported with `backend`: another backend must refuse to load
    other = classes["numpy" if backend != "numpy" else "tensorflow"]()
    try:
        other.load()
        out["other_backend"] = "loaded"
    except RuntimeError as exc:
        out["other_backend"] = str(exc)
    print("@@RESULT@@" + json.dumps(out))
""")


def _available(backend: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in NEEDS[backend])


_cache: dict[str, dict] = {}


def run_backend(backend: str) -> dict:
    if not _available(backend):
        pytest.skip(f"Keras {backend} backend needs {', '.join(NEEDS[backend])}: not all importable here")
    if backend not in _cache:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
        proc = subprocess.run([sys.executable, "-c", SCRIPT, backend], input=CASES, capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=300)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")]
        assert proc.returncode == 0 and lines, f"worker for {backend} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        _cache[backend] = json.loads(lines[-1][len("@@RESULT@@"):])
    return _cache[backend]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def run(backend) -> dict:
    return run_backend(backend)


def result(run: dict, case_id: str) -> dict:
    return run["results"][case_id]


def head(res: dict, name: str) -> list[float]:
    return res["outputs"][name]["actual_head"]


# -- environment and loading --------------------------------------------------------------


def test_environment_names_backend_and_versions(run, backend):
    import importlib.metadata as md

    env = run["environment"]
    assert env["framework"] == "keras"
    assert env["version"] == md.version("keras")
    assert env["backend"] == backend
    assert env["backend_version"] == md.version(backend)
    assert env["device"]


def test_loading_a_second_backend_in_the_same_process_is_refused(run, backend):
    assert "already imported" in run["other_backend"]
    assert repr(backend) in run["other_backend"]


def test_adapter_attributes():
    from adapters import keras_adapter as ka

    names = {c.name: c.backend for c in (ka.KerasTensorflowAdapter, ka.KerasJaxAdapter,
                                         ka.KerasTorchAdapter, ka.KerasNumpyAdapter)}
    assert names == {"keras-tensorflow": "tensorflow", "keras-jax": "jax", "keras-torch": "torch",
                     "keras-numpy": "numpy"}
    assert ka.KerasJaxAdapter.framework == "keras"
    assert issubclass(ka.KerasTorchAdapter, ka.KerasAdapter)


# -- seed 000 ---------------------------------------------------------------------------------


def test_seed_000_inference_by_default(run, backend):
    res = result(run, "seed-000/inference-by-default")
    notes = " | ".join(res["notes"])
    assert "without training=" in notes
    assert "dtype='float64'" in notes
    assert "epsilon" not in notes and "momentum" not in notes  # framework defaults: not passed
    assert res["outputs"]["y"]["actual_dtype"] == "float64"
    assert res["outputs"]["moving_mean"]["status"] == "pass"
    assert res["outputs"]["moving_variance"]["status"] == "pass"
    if backend == "tensorflow":
        assert res["status"] == "pass", res["message"]
        assert head(res, "y") == pytest.approx([2.99850112, 3.9980015], rel=1e-8)
    else:
        # Keras 3's type promotion maps float64 to float32 on these backends: the
        # layer computes in float32 and casts the result back to float64.
        assert res["status"] == "diverge" and res["message"].startswith("y:"), res["message"]
        assert 1e-8 < res["outputs"]["y"]["max_rel_error"] < 2e-7
        assert head(res, "y") == pytest.approx([2.99850112, 3.9980015], rel=2e-7)
        expected_f32 = [2.9985010623931885, 3.9980013370513916] if backend == "jax" else \
                       [2.9985013008117676, 3.9980015754699707]
        assert head(res, "y") == pytest.approx(expected_f32, rel=1e-15)
    if backend == "jax":
        assert "jax_enable_x64" in notes


def test_seed_000_two_samples_training(run):
    res = result(run, "seed-000/two-samples-one-feature")
    assert res["status"] == "pass", res["message"]
    assert head(res, "y") == pytest.approx([-0.99800634, 0.99800587], rel=1e-6)
    assert head(res, "moving_mean") == pytest.approx([0.035])
    assert head(res, "moving_variance") == pytest.approx([0.9925])
    assert res["outputs"]["y"]["actual_dtype"] == "float32"
    assert not any("dtype=" in n for n in res["notes"])  # float32 is Keras's default policy


# -- axes -------------------------------------------------------------------------------------


def test_channels_first_feature_axis_1_on_4d(run):
    res = result(run, "channels-first")
    assert res["status"] == "pass", res["message"]
    assert any("axis=1" in n and "momentum=0.9" in n for n in res["notes"])
    assert res["outputs"]["y"]["actual_shape"] == [2, 3, 2, 2]
    assert res["outputs"]["moving_mean"]["actual_shape"] == [3]


def test_middle_axis_of_3d_training_then_inference(run):
    res = result(run, "middle-axis-3d")
    assert res["status"] == "pass", res["message"]
    assert set(res["outputs"]) == {f"step{i}.{n}" for i in (1, 2) for n in ("y", "moving_mean", "moving_variance")}


def test_several_kept_axes_are_unsupported(run):
    res = result(run, "multi-axis-kept")
    assert res["status"] == "unsupported"
    assert "Keras 3 takes one integer axis only" in res["message"]
    assert "[1, 2]" in res["message"]


# -- momentum, epsilon, modes ---------------------------------------------------------------


def test_momentum_over_three_steps_then_inference(run):
    res = result(run, "momentum-three-steps-then-inference")
    assert res["status"] == "pass", res["message"]
    assert head(res, "step3.moving_mean") == pytest.approx([0.542], rel=1e-6)
    assert head(res, "step3.moving_variance") == pytest.approx([1.17], rel=1e-6)
    # inference does not move the statistics, and uses them
    assert head(res, "step4.moving_mean") == head(res, "step3.moving_mean")
    assert head(res, "step4.y") == pytest.approx([0.9241055], rel=1e-6)


def test_explicit_epsilon(run):
    res = result(run, "explicit-epsilon")
    assert res["status"] == "pass", res["message"]
    assert any("epsilon=0.5" in n for n in res["notes"])
    assert head(res, "y") == pytest.approx([2.4494897, 3.2659863], rel=1e-6)


def test_float16_uses_mixed_precision_policy(run):
    res = result(run, "half-mixed-precision")
    assert res["status"] == "pass", res["message"]
    assert any("mixed_float16" in n for n in res["notes"])
    assert res["outputs"]["step1.y"]["actual_dtype"] == "float16"
    assert res["outputs"]["step1.moving_variance"]["actual_dtype"] == "float32"


# -- real divergences -------------------------------------------------------------------------


def test_ill_conditioned_training(run, backend):
    res = result(run, "ill-conditioned-training")
    if backend in ONE_PASS:
        # keras.ops.moments is E[x^2] - E[x]^2 here: the variance of 10000..10003
        # cancels to 0 in float32, so y is divided by sqrt(0 + 1e-3), not sqrt(1.25 + 1e-3)
        assert res["status"] == "diverge"
        assert head(res, "y")[0] == pytest.approx(-47.434, rel=1e-3)
        assert head(res, "moving_variance")[0] == pytest.approx(0.99, rel=1e-6)
        assert res["outputs"]["moving_variance"]["worst_expected"] == pytest.approx(1.0025)
    else:
        assert res["status"] == "pass", res["message"]


def test_moments(run, backend):
    for cid in ("moments/two-axes-keepdims", "moments/channels-first"):
        res = result(run, cid)
        assert res["status"] == "pass", (cid, res["message"])
    assert result(run, "moments/two-axes-keepdims")["outputs"]["mean"]["actual_shape"] == [1, 3, 1]
    assert result(run, "moments/two-axes-keepdims")["outputs"]["mean"]["actual_dtype"] == "bfloat16"
    res = result(run, "moments/ill-conditioned")
    if backend in ONE_PASS:
        assert res["status"] == "diverge"
        assert head(res, "variance") == pytest.approx([0.0, 1.25])
    else:
        assert res["status"] == "pass", res["message"]


def test_moments_bfloat16_scalar_is_read(run, backend):
    res = result(run, "moments/bfloat16-scalar")
    assert res["outputs"]["mean"]["actual_shape"] == []
    assert res["outputs"]["mean"]["actual_dtype"] == "bfloat16"
    assert head(res, "mean") == [2.5]
    if backend == "tensorflow":
        # keras.ops.convert_to_numpy (np.array) raises on a 0-d bfloat16 EagerTensor
        assert res["status"] == "pass", res["message"]
        assert any("tensor.numpy()" in n for n in res["notes"])
    else:
        assert not any("tensor.numpy()" in n for n in res["notes"])


def test_moments_with_no_reduction_axis(run, backend):
    res = result(run, "moments/no-reduction-axis")
    if backend == "torch":
        # axes=[] becomes torch.mean(dim=[]), which reduces every axis
        assert res["status"] == "diverge"
        assert res["outputs"]["mean"]["actual_shape"] == [1]
        assert head(res, "mean") == pytest.approx([2.0])
    else:
        assert res["status"] == "pass", res["message"]


# -- errors -----------------------------------------------------------------------------------


def test_framework_exception_becomes_error(run):
    res = result(run, "error/feature-size-changes")
    assert res["status"] == "error"
    assert res["message"].startswith("ValueError:")
    assert "incompatible" in res["message"]


# -- batch_norm knobs -------------------------------------------------------------------------


def test_frozen_layer_trains_as_inference(run):
    res = result(run, "bn/frozen-layer-trains-as-inference")
    assert res["status"] == "pass", res["message"]
    assert any("layer.trainable = False" in n for n in res["notes"])
    assert head(res, "y") == pytest.approx([1.0, 2.0])
    assert head(res, "moving_variance") == pytest.approx([4.0])


def test_knobs_keras_has_not_are_unsupported(run):
    res = result(run, "bn/cumulative-momentum")
    assert res["status"] == "unsupported"
    assert "no cumulative moving average" in res["message"]
    res = result(run, "bn/untracked")
    assert res["status"] == "unsupported"
    assert "track_running_stats" in res["message"]


# -- gradients ---------------------------------------------------------------------------------

GRADIENT_CASES = ("bn/gradient-training-then-inference", "bn/gradient-frozen", "ln/two-trailing-axes-with-gradients",
                  "rms/last-axis-with-gradients", "gn/nchw-with-gradients", "in/affine-with-gradients")
AUTODIFF = {"tensorflow": "tf.GradientTape", "jax": "jax.vjp of layer.stateless_call", "torch": "y.backward(dy)"}


@pytest.mark.parametrize("cid", GRADIENT_CASES)
def test_gradients_with_the_backends_autodiff(run, backend, cid):
    res = result(run, cid)
    if backend == "numpy":
        assert res["status"] == "unsupported"
        assert "numpy backend has no automatic differentiation" in res["message"]
        return
    assert res["status"] == "pass", res["message"]
    assert any(AUTODIFF[backend] in n for n in res["notes"]), res["notes"]
    grads = {k.split(".")[-1] for k in res["outputs"] if k.split(".")[-1].startswith("d")}
    assert "dx" in grads and "dgamma" in grads
    for key, out in res["outputs"].items():
        if key.split(".")[-1].startswith("d"):
            assert out["max_abs_error"] < 1e-5, (key, out)


def test_training_step_with_gradients_still_updates_the_moving_statistics(run, backend):
    if backend == "numpy":
        pytest.skip("no autodiff on the numpy backend")
    res = result(run, "bn/gradient-training-then-inference")
    assert res["outputs"]["step1.moving_mean"]["status"] == "pass"
    # the inference step normalizes with the statistics the training step left
    assert res["outputs"]["step2.moving_mean"]["actual_head"] == res["outputs"]["step1.moving_mean"]["actual_head"]
    assert res["outputs"]["step1.moving_mean"]["actual_head"] != pytest.approx([0.45, -0.9, 0.0])  # moved


def test_frozen_layer_gamma_still_has_a_gradient(run, backend):
    if backend == "numpy":
        pytest.skip("no autodiff on the numpy backend")
    res = result(run, "bn/gradient-frozen")
    assert res["status"] == "pass", res["message"]
    assert res["outputs"]["dgamma"]["actual_shape"] == [2]
    assert any(v != 0 for v in head(res, "dgamma"))


def test_half_precision_parameter_gradients_are_float32(run, backend):
    # mixed_float16 keeps gamma and beta in float32, so their gradients are float32
    res = result(run, "ln/half-gradients")
    if backend == "numpy":
        assert res["status"] == "unsupported"
        return
    assert res["status"] == "diverge"
    assert res["outputs"]["dx"]["status"] == "pass"
    assert res["outputs"]["dx"]["actual_dtype"] == "float16"
    for name in ("dgamma", "dbeta"):
        assert res["outputs"][name]["actual_dtype"] == "float32"
        assert "dtype float32, expected float16" in res["outputs"][name]["message"]


# -- layer_norm and rms_norm --------------------------------------------------------------------


def test_layer_norm_over_two_trailing_axes(run, backend):
    res = result(run, "ln/two-trailing-axes-with-gradients")
    assert any("LayerNormalization(axis=[1, 2], epsilon=1e-05" in n for n in res["notes"]), res["notes"]
    if backend == "numpy":  # the case asks for gradients
        assert res["status"] == "unsupported"
        return
    assert res["status"] == "pass", res["message"]
    assert res["outputs"]["dgamma"]["actual_shape"] == [3, 4]


def test_layer_norm_non_trailing_axis(run, backend):
    res = result(run, "ln/first-axis")
    assert any("LayerNormalization(axis=0," in n for n in res["notes"])
    if backend == "torch":
        # the torch backend hands any consecutive axes to F.layer_norm, which normalizes
        # the trailing ones: rows [1, 2] and [3, 6] -> [-1, 1] each, times gamma [1, 3]
        assert res["status"] == "diverge"
        assert head(res, "y") == pytest.approx([-1.0, 3.0, -1.0, 3.0], abs=1e-5)
    else:
        assert res["status"] == "pass", res["message"]
        assert head(res, "y") == pytest.approx([-1.0, -1.0, 3.0, 3.0], abs=1e-5)


def test_rms_scaling_divides_by_the_centred_variance(run):
    res = result(run, "ln/rms-scaling")
    assert any("rms_scaling=True" in n and "deprecated" in n for n in res["notes"])
    assert res["status"] == "diverge"
    assert head(res, "y") == pytest.approx([1.0, 3.0])  # [1, 3] / sqrt(var [1, 3] = 1)
    variants = [m["variants"] for m in res["diagnosis"]["matches"]]
    assert ["rms-centered-variance"] in variants


def test_layer_norm_params_on_other_axes_are_unsupported(run):
    res = result(run, "ln/params-on-last-axis-only")
    assert res["status"] == "unsupported"
    assert "param_axes [2] != normalized axes [1, 2]" in res["message"]


def test_rms_norm(run, backend):
    res = result(run, "rms/last-axis-with-gradients")
    assert any(n.startswith("RMSNormalization(axis=-1)") for n in res["notes"]), res["notes"]  # epsilon not passed
    assert res["status"] == ("unsupported" if backend == "numpy" else "pass"), res["message"]
    res = result(run, "rms/first-axis-no-scale")
    assert any("left at its initial ones" in n for n in res["notes"])
    if backend == "torch":
        # F.rms_norm(x, (2,)) normalizes the rows: [1, 2] / sqrt(2.5)
        assert res["status"] == "diverge"
        assert head(res, "y") == pytest.approx([0.6324555, 1.2649111] * 2, rel=1e-6)
    else:
        assert res["status"] == "pass", res["message"]


# -- group_norm and instance_norm ---------------------------------------------------------------


def test_group_norm(run, backend):
    res = result(run, "gn/nchw-with-gradients")
    assert any("GroupNormalization(groups=2, axis=1, epsilon=1e-05" in n for n in res["notes"]), res["notes"]
    assert res["status"] == ("unsupported" if backend == "numpy" else "pass"), res["message"]
    res = result(run, "gn/nhwc-default-epsilon")
    assert res["status"] == "pass", res["message"]
    assert any("GroupNormalization(groups=3, axis=-1, center=False, scale=True)" in n for n in res["notes"])


def test_instance_norm_is_group_norm_with_one_channel_per_group(run):
    res = result(run, "in/hand")
    assert res["status"] == "pass", res["message"]
    layer = "GroupNormalization(groups=-1, axis=1, epsilon=0.0, center=False, scale=False)"
    assert any(layer in n for n in res["notes"]), res["notes"]
    assert head(res, "y") == pytest.approx([-1.0, 1.0, -1.0, 1.0], abs=1e-6)
    res = result(run, "in/affine-default-channels-last")
    assert res["status"] == "pass", res["message"]
    assert any("center and scale default to True" in n for n in res["notes"])


def test_tracked_instance_norm_is_unsupported(run):
    res = result(run, "in/tracked")
    assert res["status"] == "unsupported"
    assert "GroupNormalization(groups=-1) keeps none" in res["message"]


# -- the known-divergence declarations ------------------------------------------------------------


def test_known_divergences_file_is_valid_and_cites_its_sources():
    import fnmatch

    from conformance import known

    decls = known.load([ROOT / "cases" / "known-divergences" / "keras.yaml"])
    assert decls
    for d in decls:
        assert d.reason and d.link.startswith("https://"), d
        assert any(fnmatch.fnmatchcase(name, d.adapter) for name in
                   ("keras-tensorflow", "keras-jax", "keras-torch", "keras-numpy")), d.adapter
