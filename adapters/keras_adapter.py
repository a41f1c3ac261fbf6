"""Keras 3: ``keras.layers.BatchNormalization`` and ``keras.ops.moments``, one adapter per backend.

Keras 3 picks its backend once per process, from ``KERAS_BACKEND``, when
``keras`` is first imported; the harness runs each adapter in its own worker
process, so ``load()`` sets the variable, then imports the backend's framework
and Keras, and refuses to run if Keras is already loaded with another backend.

Translation (checked on Keras 3.15.1):

* ``axis``: Keras 3 takes one integer axis (``__init__`` does ``int(axis)``;
  a list raises ``TypeError``), and reduces every other axis. A case that keeps
  several axes is ``Unsupported``.
* ``momentum``, ``epsilon``: passed as they are (Keras's convention is the
  canonical one: ``moving = momentum * moving + (1 - momentum) * batch``),
  and not passed at all when the case leaves them to the framework.
* dtype: a layer's dtype policy defaults to ``float32`` and casts its inputs
  and output to it, so a float64 case builds the layer with ``dtype="float64"``
  and a float16/bfloat16 case with Keras's mixed-precision policy
  (``"mixed_float16"``/``"mixed_bfloat16"``: compute in the half type,
  variables, hence moving statistics, in float32), which is how a Keras user
  gets that precision. Note: on the jax, torch and numpy backends Keras 3's
  type promotion maps float64 to float32 (``backend.result_type``), so the
  layer computes a float64 call in float32 and casts the result back; the
  report shows it, the adapter does not hide it.
* JAX computes in float32 unless x64 mode is on (Keras then silently gives
  float32 for a float64 layer), so the keras-jax adapter turns
  ``jax_enable_x64`` on at load, as a user who wants float64 must.
* mode: ``layer(x, training=True/False)``; a step left to the framework calls
  ``layer(x)`` (Keras: inference outside ``fit``).
* outputs: ``y``, ``moving_mean``, ``moving_variance`` read after each call;
  the layer does not expose the batch statistics.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

#: backend name -> (module to import, distribution whose version is reported)
BACKENDS = {
    "tensorflow": ("tensorflow", "tensorflow"),
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
    "numpy": ("numpy", "numpy"),
}


class KerasAdapter(Adapter):
    """Base of the Keras adapters; subclasses set ``name`` and ``backend``."""

    framework = "keras"
    api = "keras.layers.BatchNormalization / keras.ops.moments"
    backend: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._keras = None

    # -- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown Keras backend {self.backend!r}")
        loaded = sys.modules.get("keras")
        if loaded is not None:
            current = loaded.backend.backend()
            if current != self.backend:
                raise RuntimeError(
                    f"{self.name}: keras is already imported in this process with the {current!r} backend; "
                    f"Keras picks its backend once per process (KERAS_BACKEND), so run {self.name} "
                    f"in a fresh process")
        os.environ["KERAS_BACKEND"] = self.backend
        module = BACKENDS[self.backend][0]
        importlib.import_module(module)  # ImportError: the backend is not installed -> skipped
        if self.backend == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
        if self.backend == "numpy":  # keras/src/backend/numpy imports scipy and jax
            for needed in ("scipy", "jax"):
                try:
                    importlib.import_module(needed)
                except ImportError as exc:
                    raise ImportError(f"the Keras numpy backend needs scipy and jax ({exc})") from exc
        self._keras = importlib.import_module("keras")
        current = self._keras.backend.backend()
        if current != self.backend:
            raise RuntimeError(f"{self.name}: asked Keras for the {self.backend!r} backend, got {current!r}")

    @property
    def keras(self):
        if self._keras is None:
            self.load()
        return self._keras

    def backend_version(self) -> str:
        dist = BACKENDS[self.backend][1]
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return str(getattr(importlib.import_module(dist), "__version__", "unknown"))

    def device(self) -> str:
        if self._keras is None:
            return "cpu"
        try:
            t = self._keras.ops.zeros((1,))
            if self.backend == "torch":
                return str(t.device)
            if self.backend == "jax":
                return ",".join(sorted(d.platform for d in t.devices()))
            if self.backend == "tensorflow":
                return t.device.rsplit("device:", 1)[-1].split(":")[0].lower() or "cpu"
        except Exception:
            pass
        return "cpu"

    def environment(self) -> dict:
        env = super().environment()
        env["backend"] = self.backend
        env["backend_version"] = self.backend_version()
        return env

    # -- helpers ------------------------------------------------------------------------
    def _tensor(self, values, dtype: str):
        return self.keras.ops.convert_to_tensor(np.asarray(values, dtype=np.float64), dtype=dtype)

    def _numpy(self, value):
        """A NumPy copy (torch tensors share memory with the variables updated in place)."""
        if isinstance(value, self.keras.Variable):
            value = value.value
        return np.array(self.keras.ops.convert_to_numpy(value), copy=True)

    def _policy(self, case) -> dict:
        """The ``dtype=`` a Keras user passes to compute in the case's dtype."""
        floatx = self.keras.config.floatx()
        if case.dtype == floatx:
            return {}
        if case.dtype in ("float16", "bfloat16"):
            policy = f"mixed_{case.dtype}"
            self.note(f"BatchNormalization(dtype={policy!r}): Keras's mixed-precision policy computes in "
                      f"{case.dtype} and keeps the variables in float32 (the default policy, {floatx}, "
                      f"would cast the {case.dtype} input and output to {floatx})")
        else:
            policy = case.dtype
            self.note(f"BatchNormalization(dtype={policy!r}): the default dtype policy ({floatx}) "
                      f"would cast the {case.dtype} input and output to {floatx}")
        if self.backend == "jax" and case.dtype == "float64":
            self.note("jax_enable_x64 turned on (without it JAX, so Keras, computes float64 in float32)")
        return {"dtype": policy}

    # -- operators ----------------------------------------------------------------------
    def run_batch_norm(self, case):
        keras = self.keras
        if len(case.feature_axes) != 1:
            raise Unsupported(
                f"Keras 3 takes one integer axis only: BatchNormalization(axis=...) does int(axis), "
                f"and the case keeps axes {list(case.feature_axes)}")
        axis = case.feature_axes[0]
        kwargs: dict = {"axis": -1 if axis == case.ndim - 1 else axis}
        for name in ("momentum", "epsilon", "center", "scale"):
            if name in case.attributes and not case.is_default(name):
                value = case.attr(name)
                kwargs[name] = bool(value) if name in ("center", "scale") else float(value)
        kwargs.update(self._policy(case))
        self.note("BatchNormalization(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")")
        layer = keras.layers.BatchNormalization(**kwargs)
        layer.build(tuple(case.steps[0].inputs["x"].shape))
        if layer.scale:
            layer.gamma.assign(self._tensor(case.params["gamma"], layer.gamma.dtype))
        if layer.center:
            layer.beta.assign(self._tensor(case.params["beta"], layer.beta.dtype))
        layer.moving_mean.assign(self._tensor(case.state["moving_mean"], layer.moving_mean.dtype))
        layer.moving_variance.assign(self._tensor(case.state["moving_variance"], layer.moving_variance.dtype))

        outputs = []
        for step in case.steps:
            x = self._tensor(step.inputs["x"], case.dtype)
            if step.mode.framework_default:
                self.note("layer(x) called without training= (Keras's default)")
                y = layer(x)
            else:
                y = layer(x, training=step.mode.value == "training")
            outputs.append({
                "y": self._numpy(y),
                "moving_mean": self._numpy(layer.moving_mean).reshape(case.feature_shape),
                "moving_variance": self._numpy(layer.moving_variance).reshape(case.feature_shape),
            })
        return outputs

    def run_moments(self, case):
        keras = self.keras
        kwargs = {}
        if not case.is_default("keepdims"):
            kwargs["keepdims"] = bool(case.attr("keepdims"))
        outputs = []
        for step in case.steps:
            x = self._tensor(step.inputs["x"], case.dtype)
            mean, variance = keras.ops.moments(x, axes=list(case.reduction_axes), **kwargs)
            outputs.append({"mean": self._numpy(mean), "variance": self._numpy(variance)})
        return outputs


class KerasTensorflowAdapter(KerasAdapter):
    name = "keras-tensorflow"
    backend = "tensorflow"


class KerasJaxAdapter(KerasAdapter):
    name = "keras-jax"
    backend = "jax"


class KerasTorchAdapter(KerasAdapter):
    name = "keras-torch"
    backend = "torch"


class KerasNumpyAdapter(KerasAdapter):
    name = "keras-numpy"
    backend = "numpy"
