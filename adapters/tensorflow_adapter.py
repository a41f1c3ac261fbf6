"""TensorFlow: the low-level ``tf.nn`` batch-norm APIs, as a user writes them.

Two rows:

* ``tf.nn`` — the seeds' path: ``tf.nn.moments(x, axes, keepdims=True)`` then
  ``tf.nn.batch_normalization``; the user keeps the moving statistics and
  updates them as ``momentum * old + (1 - momentum) * batch`` in TF ops, in the
  case's dtype. This API has no mode, no epsilon default and no momentum: a
  case that leaves any of those to "the framework" is unsupported.
* ``tf.nn.fused`` — ``tf.compat.v1.nn.fused_batch_norm`` (TF 2.21 exports it
  only under ``compat.v1``; Keras's fused path calls it). It needs a 4-D/5-D
  input with one channel axis (NHWC/NCHW), so other layouts are transposed and
  reshaped to ``(reduced, 1, 1, kept)`` NHWC and back. The moving update is
  the kernel's own ``exponential_avg_factor = 1 - momentum``. Its batch
  variance (and so its moving-variance update) is Bessel-corrected; that is
  reported as returned, not compensated.

Everything runs under ``tf.device("/CPU:0")`` so ``device()`` tells the truth.
"""

from __future__ import annotations

import math
import os

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

_STATS = ("moving_mean", "moving_variance", "batch_mean", "batch_variance")


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


class FusedLayout:
    """How a case's input is laid out for a fused (one channel axis) kernel.

    4-D/5-D inputs whose single kept axis is last or at 1 are passed as they are
    (NHWC/NDHWC or NCHW/NCDHW). Anything else is transposed to (reduced...,
    kept...) and reshaped to NHWC ``(prod(reduced), 1, 1, prod(kept))``;
    ``restore`` undoes it. Statistics per channel are the same numbers either
    way: the kernel reduces over every non-channel axis.
    """

    def __init__(self, case):
        nd, kept, red = case.ndim, tuple(case.feature_axes), tuple(case.reduction_axes)
        self.shape = tuple(case.steps[0].inputs["x"].shape)
        self.perm = None
        self.channels = int(math.prod(case.feature_shape))
        if nd in (4, 5) and kept == (nd - 1,):
            self.data_format = "NHWC" if nd == 4 else "NDHWC"
            self.channel_axis = nd - 1
            self.note = f"input passed as {self.data_format}"
        elif nd in (4, 5) and kept == (1,):
            self.data_format = "NCHW" if nd == 4 else "NCDHW"
            self.channel_axis = 1
            self.note = f"input passed as {self.data_format}"
        else:
            self.data_format = "NHWC"
            self.channel_axis = 3
            self.perm = red + kept
            self.inverse = tuple(int(i) for i in np.argsort(self.perm))
            moved = "" if self.perm == tuple(range(nd)) else f"transposed to axes {list(self.perm)} and "
            self.note = (f"fused kernel needs one channel axis: x {list(self.shape)} {moved}reshaped to "
                         f"NHWC {list(self.fused_shape(self.shape))} (reduced, 1, 1, kept)")

    def fused_shape(self, shape) -> tuple[int, ...]:
        if self.perm is None:
            return tuple(shape)
        return (int(math.prod(shape)) // max(self.channels, 1), 1, 1, self.channels)

    def to_fused(self, tf, x):
        if self.perm is None:
            return x
        return tf.reshape(tf.transpose(x, self.perm), self.fused_shape(x.shape))

    def restore(self, tf, y, shape):
        if self.perm is None:
            return y
        return tf.transpose(tf.reshape(y, [shape[a] for a in self.perm]), self.inverse)


class TensorflowNNAdapter(Adapter):
    name = "tf.nn"
    framework = "tensorflow"
    api = "tf.nn.moments(keepdims=True) + tf.nn.batch_normalization"

    def load(self) -> None:
        _tf()

    def _dtype(self, tf, case):
        return tf.as_dtype(case.dtype)

    def _axes(self, case) -> list[int]:
        return list(case.reduction_axes)

    def run_batch_norm(self, case):
        tf = _tf()
        if case.is_default("epsilon"):
            raise Unsupported("tf.nn.batch_normalization has no epsilon default (variance_epsilon is required)")
        if any(s.mode.framework_default for s in case.steps):
            raise Unsupported("tf.nn.batch_normalization has no mode: the caller picks batch or moving "
                              "statistics, so a framework-default mode cannot be expressed")
        training = any(s.mode.value == "training" for s in case.steps)
        if training and case.is_default("momentum"):
            raise Unsupported("the tf.nn path has no momentum: the moving statistics are updated by the "
                              "user, so there is no framework default")
        for name, arg in (("center", "offset"), ("scale", "scale")):
            if case.is_default(name):
                raise Unsupported(f"tf.nn.batch_normalization has no default for {arg} (a required argument)")
        dtype = self._dtype(tf, case)
        eps = float(case.attr("epsilon"))
        momentum = float(case.attr("momentum"))
        shape = list(case.broadcast_shape)
        axes = self._axes(case)
        outputs = []
        with tf.device("/CPU:0"):
            def const(values):
                return tf.reshape(tf.constant(np.asarray(values), dtype=dtype), shape)

            gamma = const(case.params["gamma"]) if case.attr("scale") else None
            beta = const(case.params["beta"]) if case.attr("center") else None
            moving_mean = const(case.state["moving_mean"])
            moving_var = const(case.state["moving_variance"])
            if gamma is None or beta is None:
                self.note("scale/center off -> scale/offset=None")
            for step in case.steps:
                x = tf.constant(step.inputs["x"], dtype=dtype)
                out = {}
                if step.mode.value == "training":
                    mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
                    out["y"] = tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)
                    # The user's update, with Python-float momentum as users write it.
                    moving_mean = momentum * moving_mean + (1 - momentum) * mean
                    moving_var = momentum * moving_var + (1 - momentum) * var
                    self.note(f"moving update written by hand: {momentum} * old + (1 - {momentum}) * batch")
                    out["batch_mean"], out["batch_variance"] = mean, var
                else:
                    out["y"] = tf.nn.batch_normalization(x, moving_mean, moving_var, beta, gamma, eps)
                    self.note("inference: tf.nn.batch_normalization with the moving statistics")
                out["moving_mean"], out["moving_variance"] = moving_mean, moving_var
                outputs.append(_numpy(out, case))
        return outputs

    def run_moments(self, case):
        tf = _tf()
        dtype = self._dtype(tf, case)
        kwargs = {} if case.is_default("keepdims") else {"keepdims": bool(case.attr("keepdims"))}
        outputs = []
        with tf.device("/CPU:0"):
            for step in case.steps:
                x = tf.constant(step.inputs["x"], dtype=dtype)
                mean, var = tf.nn.moments(x, axes=self._axes(case), **kwargs)
                outputs.append({"mean": np.asarray(mean), "variance": np.asarray(var)})
        return outputs


def _numpy(out: dict, case) -> dict:
    result = {}
    for name, value in out.items():
        arr = np.asarray(value)
        result[name] = arr.reshape(case.feature_shape) if name in _STATS else arr
    return result


class TensorflowFusedAdapter(Adapter):
    name = "tf.nn.fused"
    framework = "tensorflow"
    api = "tf.compat.v1.nn.fused_batch_norm"

    def load(self) -> None:
        _tf()

    def run_batch_norm(self, case):
        tf = _tf()
        for name, arg in (("center", "offset"), ("scale", "scale")):
            if case.is_default(name):
                raise Unsupported(f"fused_batch_norm has no default for {arg} (a required argument)")
        fused = tf.compat.v1.nn.fused_batch_norm
        layout = FusedLayout(case)
        self.note(layout.note)
        dtype = tf.as_dtype(case.dtype)
        # Scale, offset and statistics are float32 for half/bfloat16/float32 inputs (attr U).
        param_dtype = tf.float64 if case.dtype == "float64" else tf.float32
        kwargs = {"data_format": layout.data_format}
        if case.is_default("epsilon"):
            self.note("epsilon left to fused_batch_norm's default (0.001)")
        else:
            kwargs["epsilon"] = float(case.attr("epsilon"))
        if case.is_default("momentum"):
            factor = None
            self.note("momentum left to the default: exponential_avg_factor not passed "
                      "(default 1.0: the returned running statistics are the batch statistics)")
        else:
            factor = 1.0 - float(case.attr("momentum"))
            kwargs["exponential_avg_factor"] = factor
            self.note(f"momentum {case.attr('momentum')} -> exponential_avg_factor {factor:g}")

        def vec(values):
            return tf.constant(np.asarray(values, dtype=np.float64).ravel(), dtype=param_dtype)

        c = layout.channels
        outputs = []
        with tf.device("/CPU:0"):
            gamma = vec(case.params["gamma"]) if case.attr("scale") else tf.ones([c], param_dtype)
            beta = vec(case.params["beta"]) if case.attr("center") else tf.zeros([c], param_dtype)
            if not (case.attr("scale") and case.attr("center")):
                self.note("scale/center off -> scale=ones/offset=zeros (the API needs tensors)")
            moving_mean, moving_var = vec(case.state["moving_mean"]), vec(case.state["moving_variance"])
            for step in case.steps:
                x_np = step.inputs["x"]
                x = layout.to_fused(tf, tf.constant(x_np, dtype=dtype))
                step_kwargs = dict(kwargs)
                if step.mode.framework_default:
                    training = True
                    self.note("mode left to the default: is_training not passed (default True)")
                else:
                    training = step.mode.value == "training"
                    step_kwargs["is_training"] = training
                out = {}
                if training:
                    y, new_mean, new_var = fused(x, gamma, beta, mean=moving_mean, variance=moving_var,
                                                 **step_kwargs)
                    if factor is None or factor == 1.0:
                        batch_mean, batch_var = new_mean, new_var
                    else:
                        # With exponential_avg_factor != 1 the kernel returns only the running
                        # statistics; a second call with the default factor gives the batch ones.
                        plain = {k: v for k, v in step_kwargs.items() if k != "exponential_avg_factor"}
                        _, batch_mean, batch_var = fused(x, gamma, beta, **plain)
                        self.note("batch statistics from a second call with exponential_avg_factor=1.0")
                    moving_mean, moving_var = new_mean, new_var
                    out["batch_mean"], out["batch_variance"] = batch_mean, batch_var
                else:
                    step_kwargs.pop("exponential_avg_factor", None)
                    y, _, _ = fused(x, gamma, beta, mean=moving_mean, variance=moving_var, **step_kwargs)
                out["y"] = layout.restore(tf, y, x_np.shape)
                out["moving_mean"], out["moving_variance"] = moving_mean, moving_var
                outputs.append(_numpy(out, case))
        return outputs
