"""Keras 3: the normalization layers and ``keras.ops.moments``, one adapter per backend.

Keras 3 picks its backend once per process, from ``KERAS_BACKEND``, when
``keras`` is first imported; the harness runs each adapter in its own worker
process, so ``load()`` sets the variable, then imports the backend's framework
and Keras, and refuses to run if Keras is already loaded with another backend.

Translation (checked on Keras 3.15.1):

* batch_norm: ``BatchNormalization(axis, momentum, epsilon, center, scale)``.
  Keras 3 takes one integer axis (``__init__`` does ``int(axis)``), so a case
  that keeps several axes is ``Unsupported``; ``momentum``/``epsilon`` are
  passed as they are (Keras's momentum weighs the old value, the canonical
  convention). ``trainable: false``: ``layer.trainable = False`` then
  ``training=True``. ``momentum: cumulative`` and ``track_running_stats:
  false`` have no Keras counterpart: ``Unsupported``. Outputs ``y``,
  ``moving_mean``, ``moving_variance`` after each call (the layer does not
  expose the batch statistics).
* layer_norm: ``LayerNormalization(axis=normalized axes, epsilon, center,
  scale[, rms_scaling=True])``; gamma/beta span ``axis``, so ``param_axes`` !=
  normalized axes is ``Unsupported``.
* rms_norm: ``RMSNormalization(axis, epsilon)``; it always has a ``scale``
  weight, left at ones for ``scale: false``.
* group_norm: ``GroupNormalization(groups, axis=channel, epsilon, center, scale)``.
* instance_norm: ``GroupNormalization(groups=-1, axis=channel, ...)``, with
  ``center = scale = affine``; no running statistics, so
  ``track_running_stats: true`` is ``Unsupported``; the layer has no
  ``training`` argument (both modes use the instance statistics).
* one axis is passed as ``-1`` when it is the last one (as a user writes it),
  otherwise as its index; several normalized axes as a list.
* attributes the case leaves to the framework are not passed at all.
* gradients (``dx``/``dgamma``/``dbeta`` expected): the backend's own autodiff
  around the same layer call, see :mod:`adapters.keras_autodiff`; the numpy
  backend has none (``Unsupported``).
* dtype: a layer's dtype policy defaults to ``float32`` and casts its inputs
  and output to it, so a float64 case builds the layer with ``dtype="float64"``
  and a float16/bfloat16 case with Keras's mixed-precision policy
  (``"mixed_float16"``/``"mixed_bfloat16"``: compute in the half type,
  variables, hence moving statistics and parameter gradients, in float32),
  which is how a Keras user gets that precision. Note: on the jax, torch and
  numpy backends Keras 3's type promotion maps float64 to float32
  (``backend.result_type``), so the layers compute a float64 call in float32
  and cast the result back; the report shows it, the adapter does not hide it.
* JAX computes in float32 unless x64 mode is on (Keras then silently gives
  float32 for a float64 layer), so the keras-jax adapter turns
  ``jax_enable_x64`` on at load, as a user who wants float64 must.
* mode (batch_norm): ``layer(x, training=True/False)``; a step left to the
  framework calls ``layer(x)`` (Keras: inference outside ``fit``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

from .keras_autodiff import call_with_gradients

#: backend name -> (module to import, distribution whose version is reported)
BACKENDS = {
    "tensorflow": ("tensorflow", "tensorflow"),
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
    "numpy": ("numpy", "numpy"),
}
GRADIENTS = ("dx", "dgamma", "dbeta")


class KerasAdapter(Adapter):
    """Base of the Keras adapters; subclasses set ``name`` and ``backend``."""

    framework = "keras"
    api = ("keras.layers.BatchNormalization, LayerNormalization, RMSNormalization, GroupNormalization "
           "/ keras.ops.moments")
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
        try:
            return np.array(self.keras.ops.convert_to_numpy(value), copy=True)
        except ValueError:
            if self.backend != "tensorflow" or not hasattr(value, "numpy"):
                raise
            # Keras's convert_to_numpy is np.array(tensor), which raises "object __array__
            # method not producing an array" for a 0-d bfloat16 EagerTensor; .numpy() reads it.
            self.note("keras.ops.convert_to_numpy failed on a 0-d bfloat16 tensor (ValueError): read with "
                      "tensor.numpy() instead")
            return np.array(value.numpy(), copy=True)

    def _policy(self, case, cls: str) -> dict:
        """The ``dtype=`` a Keras user passes to compute in the case's dtype."""
        floatx = self.keras.config.floatx()
        if case.dtype == floatx:
            return {}
        if case.dtype in ("float16", "bfloat16"):
            policy = f"mixed_{case.dtype}"
            self.note(f"{cls}(dtype={policy!r}): Keras's mixed-precision policy computes in "
                      f"{case.dtype} and keeps the variables in float32 (the default policy, {floatx}, "
                      f"would cast the {case.dtype} input and output to {floatx})")
        else:
            policy = case.dtype
            self.note(f"{cls}(dtype={policy!r}): the default dtype policy ({floatx}) "
                      f"would cast the {case.dtype} input and output to {floatx}")
        if self.backend == "jax" and case.dtype == "float64":
            self.note("jax_enable_x64 turned on (without it JAX, so Keras, computes float64 in float32)")
        return {"dtype": policy}

    # -- operators ----------------------------------------------------------------------
    def run_batch_norm(self, case):
        if len(case.feature_axes) != 1:
            raise Unsupported(
                f"Keras 3 takes one integer axis only: BatchNormalization(axis=...) does int(axis), "
                f"and the case keeps axes {list(case.feature_axes)}")
        if case.attr("momentum") == "cumulative":
            raise Unsupported("Keras BatchNormalization has no cumulative moving average: momentum is a float "
                              "weighing the old moving value (PyTorch's momentum=None has no Keras counterpart)")
        if not case.attr("track_running_stats", True):
            raise Unsupported("Keras BatchNormalization always keeps moving statistics and normalizes with them "
                              "in inference (there is no track_running_stats=False)")
        kwargs: dict = {"axis": self._axis(case.feature_axes[0], case.ndim)}
        for name in ("momentum", "epsilon", "center", "scale"):
            self._pass(case, name, kwargs)
        layer = self._layer("BatchNormalization", kwargs, case)
        self._assign(layer.gamma if layer.scale else None, case, "gamma")
        self._assign(layer.beta if layer.center else None, case, "beta")
        layer.moving_mean.assign(self._tensor(case.state["moving_mean"], layer.moving_mean.dtype))
        layer.moving_variance.assign(self._tensor(case.state["moving_variance"], layer.moving_variance.dtype))
        if not case.attr("trainable", True):
            layer.trainable = False
            self.note("layer.trainable = False (a frozen layer: Keras runs training=True as inference)")

        def call_kwargs(step):
            if step.mode.framework_default:
                self.note("layer(x) called without training= (Keras's default)")
                return {}
            return {"training": step.mode.value == "training"}

        def moving(layer):
            return {"moving_mean": self._numpy(layer.moving_mean).reshape(case.feature_shape),
                    "moving_variance": self._numpy(layer.moving_variance).reshape(case.feature_shape)}

        return self._steps(case, layer, {"gamma": layer.gamma, "beta": layer.beta}, call_kwargs, moving)

    def run_layer_norm(self, case):
        if case.param_axes != case.reduction_axes:
            raise Unsupported(
                f"Keras LayerNormalization's gamma and beta span the normalized axes (axis=...): "
                f"param_axes {list(case.param_axes)} != normalized axes {list(case.reduction_axes)}")
        kwargs: dict = {"axis": self._axes(case.reduction_axes, case.ndim)}
        for name in ("epsilon", "center", "scale"):
            self._pass(case, name, kwargs)
        if case.attr("rms_scaling"):
            kwargs["rms_scaling"] = True
            self.note("rms_scaling=True is deprecated in Keras 3.15: its own warning says it divides by the "
                      "variance, not the root mean square (passed as a user of the argument does)")
        layer = self._layer("LayerNormalization", kwargs, case)
        self._assign(layer.gamma, case, "gamma")
        self._assign(layer.beta, case, "beta")
        return self._steps(case, layer, {"gamma": layer.gamma, "beta": layer.beta})

    def run_rms_norm(self, case):
        if case.param_axes != case.reduction_axes:
            raise Unsupported(
                f"Keras RMSNormalization's scale spans the normalized axes (axis=...): "
                f"param_axes {list(case.param_axes)} != normalized axes {list(case.reduction_axes)}")
        kwargs: dict = {"axis": self._axes(case.reduction_axes, case.ndim)}
        self._pass(case, "epsilon", kwargs)
        layer = self._layer("RMSNormalization", kwargs, case)
        if case.has_param("gamma"):
            self._assign(layer.scale, case, "gamma")
        else:
            self.note("scale: false -> RMSNormalization always has a scale weight: left at its initial ones")
        return self._steps(case, layer, {"gamma": layer.scale})

    def run_group_norm(self, case):
        kwargs: dict = {"groups": int(case.attr("groups")), "axis": self._axis(case.feature_axes[0], case.ndim)}
        for name in ("epsilon", "center", "scale"):
            self._pass(case, name, kwargs)
        layer = self._layer("GroupNormalization", kwargs, case)
        self._assign(layer.gamma, case, "gamma")
        self._assign(layer.beta, case, "beta")
        return self._steps(case, layer, {"gamma": layer.gamma, "beta": layer.beta})

    def run_instance_norm(self, case):
        if case.attr("track_running_stats"):
            raise Unsupported("Keras has no instance norm with running statistics: GroupNormalization(groups=-1) "
                              "keeps none (track_running_stats: true cannot be expressed)")
        kwargs: dict = {"groups": -1, "axis": self._axis(case.feature_axes[0], case.ndim)}
        self._pass(case, "epsilon", kwargs)
        if case.is_default("affine"):
            self.note("affine left to the framework: GroupNormalization's center and scale default to True "
                      "(gamma ones, beta zeros)")
        else:
            kwargs["center"] = kwargs["scale"] = bool(case.attr("affine"))
        layer = self._layer("GroupNormalization", kwargs, case)
        self.note("GroupNormalization(groups=-1) is Keras's instance norm: one channel per group; it has no "
                  "training argument, so both modes normalize with the instance statistics")
        self._assign(layer.gamma, case, "gamma")
        self._assign(layer.beta, case, "beta")
        return self._steps(case, layer, {"gamma": layer.gamma, "beta": layer.beta})

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

    # -- shared by the layers -----------------------------------------------------------
    @staticmethod
    def _axis(axis: int, ndim: int) -> int:
        """One axis as a Keras user writes it: -1 for the last one."""
        return -1 if axis == ndim - 1 else axis

    @classmethod
    def _axes(cls, axes, ndim: int):
        """Normalized axes: an int for one axis, else the list."""
        return cls._axis(axes[0], ndim) if len(axes) == 1 else list(axes)

    @staticmethod
    def _pass(case, name: str, kwargs: dict) -> None:
        """Pass an attribute unless the case leaves it to the framework."""
        if name in case.attributes and not case.is_default(name):
            value = case.attr(name)
            kwargs[name] = bool(value) if name in ("center", "scale") else float(value)

    def _layer(self, cls: str, kwargs: dict, case):
        kwargs = {**kwargs, **self._policy(case, cls)}
        self.note(f"{cls}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")")
        layer = getattr(self.keras.layers, cls)(**kwargs)
        layer.build(tuple(case.steps[0].inputs["x"].shape))
        return layer

    def _assign(self, variable, case, name: str) -> None:
        """Set a weight to the case's values when the op applies it."""
        if variable is not None and case.has_param(name):
            values = np.asarray(case.params[name], dtype=np.float64).reshape(tuple(variable.shape))
            variable.assign(self._tensor(values, variable.dtype))

    def _steps(self, case, layer, variables: dict, call_kwargs=None, extra=None) -> list[dict]:
        """Call the layer once per step; gradients (L = sum(dy * y)) where the step expects them."""
        outputs = []
        for step in case.steps:
            x = self._tensor(step.inputs["x"], case.dtype)
            kwargs = call_kwargs(step) if call_kwargs else {}
            wanted = [n for n in GRADIENTS if n in step.expected]
            if wanted:
                targets = [n for n in wanted if n != "dx"]
                missing = [n for n in targets if variables.get(n[1:]) is None]
                if missing:
                    raise Unsupported(f"the Keras layer has no weight for {', '.join(missing)}")
                dy = self._tensor(step.inputs["dy"], case.dtype)
                y, dx, grads = call_with_gradients(self, layer, x, dy, kwargs,
                                                   [variables[n[1:]] for n in targets])
                out = {"y": self._numpy(y), "dx": dx, **dict(zip(targets, grads))}
                for name, grad in list(out.items())[1:]:
                    if grad is None:
                        raise RuntimeError(f"no gradient reached {name} (the backend returned None)")
                    out[name] = self._numpy(grad)
                out = {k: v for k, v in out.items() if k == "y" or k in wanted}
            else:
                out = {"y": self._numpy(layer(x, **kwargs))}
            if extra:
                out.update(extra(layer))
            outputs.append(out)
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
