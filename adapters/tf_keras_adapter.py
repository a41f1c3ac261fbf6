"""tf_keras (Keras 2): its normalization layers, as a Keras 2 user calls them.

* ``tf_keras`` —
  ``BatchNormalization(fused=False)``: ``axis`` is the case's kept axes (Keras 2
  accepts a list), so every layout is passed as it is; ``trainable: false`` is
  ``layer.trainable = False`` then ``layer(x, training=True)`` (tf_keras then
  runs inference: ``_get_training_value``); ``momentum: cumulative`` and
  ``track_running_stats: false`` have no tf_keras equivalent (unsupported).
  ``LayerNormalization(axis=reduction_axes, epsilon, center, scale)``: gamma and
  beta span ``axis``, so ``param_axes != reduction_axes`` is unsupported, and
  there is no ``rms_scaling`` (Keras 3 only). For float32 layers, trailing
  contiguous axes and epsilon >= 1.001e-5 the layer itself switches to
  ``fused_batch_norm`` (``layer._fused``, noted). ``GroupNormalization(groups,
  axis=channel, epsilon, center, scale)``; instance norm is
  ``GroupNormalization(groups=-1)`` (one channel per group; no running
  statistics, so ``track_running_stats: true`` is unsupported; ``affine`` →
  ``center``/``scale``). tf_keras 2.21 has no ``RMSNormalization``.
* ``tf_keras.fused`` — ``BatchNormalization(fused=True)`` only: the layer
  raises ``ValueError`` unless the input is 4-D with ``axis`` 1 or 3 (or 5-D
  with 1 or 4), and unless the compute dtype is float16/bfloat16/float32
  (float64 raises: an ``error`` result). Other layouts are transposed/reshaped
  to NHWC ``(reduced, 1, 1, kept)`` and back, as for ``tf.nn.fused``. In eager
  mode the layer then calls ``tf.compat.v1.nn.fused_batch_norm`` with
  ``exponential_avg_factor = 1 - momentum``; its moving variance takes the
  kernel's Bessel-corrected batch variance (reported, not compensated).

One layer per case, built on the (translated) input shape, in the case's dtype
(float16/bfloat16: the ``mixed_float16``/``mixed_bfloat16`` policy, as for Keras 3: compute in the
half type, variables in float32; tf_keras's LayerNormalization then computes its statistics in
float32, GroupNormalization does not);
gamma, beta and the moving statistics are assigned before the first call; each
step calls the layer (batch norm: ``training=`` from the step's mode, none when
the mode is left to the framework: Keras 2 then uses the learning phase, 0,
i.e. inference). Gradients: ``tf.GradientTape`` watching x, gamma and beta.
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

from .tf_common import FusedLayout, _tf, tape_gradients, to_numpy


def _assign(layer, values: dict) -> None:
    for name, value in values.items():
        var = getattr(layer, name)
        var.assign(np.asarray(value, dtype=np.float64).reshape(var.shape).astype(var.dtype.as_numpy_dtype))


class TfKerasAdapter(Adapter):
    name = "tf_keras"
    framework = "tf_keras"
    api = "tf_keras.layers.{BatchNormalization(fused=False), LayerNormalization, GroupNormalization}"
    fused = False

    def load(self) -> None:
        _tf()
        import tf_keras  # noqa: F401

    def _dtype_policy(self, case) -> str:
        """The layer ``dtype`` a Keras 2 user passes to compute in the case's dtype."""
        if case.dtype in ("float16", "bfloat16"):
            self.note(f"dtype='mixed_{case.dtype}': Keras's mixed-precision policy computes in {case.dtype} and "
                      "keeps the variables (gamma, beta, moving statistics) in float32")
            return f"mixed_{case.dtype}"
        return case.dtype

    def _layer_kwargs(self, case, names=("momentum", "epsilon", "center", "scale")) -> dict:
        """Constructor arguments given by the case (those left to the framework are not passed)."""
        kwargs = {"dtype": self._dtype_policy(case)}
        for name in names:
            if not case.is_default(name):
                value = case.attr(name)
                kwargs[name] = bool(value) if name in ("center", "scale") else float(value)
        return kwargs

    def _layout(self, case):
        """(axis, layout or None): how the input reaches the layer."""
        return list(case.feature_axes), None

    # -- batch_norm ------------------------------------------------------------------------
    def run_batch_norm(self, case):
        tf = _tf()
        import tf_keras

        if case.attr("momentum") == "cumulative":
            raise Unsupported("tf_keras BatchNormalization has no cumulative moving average "
                              "(momentum is a float weighing the old value)")
        if not case.attr("track_running_stats", True):
            raise Unsupported("tf_keras BatchNormalization always keeps moving statistics and uses them in "
                              "inference (no track_running_stats switch)")
        frozen = not case.attr("trainable", True)
        axis, layout = self._layout(case)
        kwargs = self._layer_kwargs(case)
        dtype = tf.as_dtype(case.dtype)
        x0 = case.steps[0].inputs["x"]
        outputs = []
        with tf.device("/CPU:0"):
            layer = tf_keras.layers.BatchNormalization(axis=axis, fused=self.fused, **kwargs)
            in_shape = layout.fused_shape(x0.shape) if layout else x0.shape
            layer.build(tuple(in_shape))
            if self.fused and not layer.fused:
                self.note("fused=True silently fell back to the non-fused implementation (layer.fused is False)")
            values = {"moving_mean": case.state["moving_mean"], "moving_variance": case.state["moving_variance"]}
            params = {}
            for name, on in (("gamma", layer.scale), ("beta", layer.center)):
                if on:
                    values[name] = case.params[name]
                    params[name] = getattr(layer, name)
            _assign(layer, values)
            if frozen:
                layer.trainable = False
                self.note("trainable: false -> layer.trainable = False, then called with training= as the step says")
            for step in case.steps:
                x_np = step.inputs["x"]
                x = tf.constant(x_np, dtype=dtype)
                call_kwargs = {}
                if step.mode.framework_default:
                    self.note("mode left to the default: layer(x) called without training=")
                else:
                    call_kwargs["training"] = step.mode.value == "training"

                def forward():
                    y = layer(layout.to_fused(tf, x) if layout else x, **call_kwargs)
                    return layout.restore(tf, y, x_np.shape) if layout else y

                y, grads = tape_gradients(self, tf, step, forward, x, params)
                outputs.append(to_numpy({"y": y, "moving_mean": layer.moving_mean,
                                         "moving_variance": layer.moving_variance, **grads}, case))
        return outputs

    # -- layer, group and instance norm ----------------------------------------------------
    def _stateless(self, case, make_layer):
        """Build ``make_layer()`` on x's shape, assign gamma/beta, call it on every step."""
        tf = _tf()
        dtype = tf.as_dtype(case.dtype)
        outputs = []
        with tf.device("/CPU:0"):
            layer = make_layer()
            layer.build(tuple(case.steps[0].inputs["x"].shape))
            params = {n: getattr(layer, n) for n in ("gamma", "beta")
                      if case.has_param(n) and getattr(layer, n, None) is not None}
            _assign(layer, {n: case.params[n] for n in params})
            if getattr(layer, "_fused", False):
                self.note("LayerNormalization chose its fused path (float32 variables, trailing axes, "
                          "epsilon >= 1.001e-5): "
                          "tf.compat.v1.nn.fused_batch_norm on the input reshaped to NCHW [1, rows, cols, 1]")
            for step in case.steps:
                x = tf.constant(step.inputs["x"], dtype=dtype)
                y, grads = tape_gradients(self, tf, step, lambda: layer(x), x, params)
                outputs.append(to_numpy({"y": y, **grads}, case))
        return outputs

    def run_layer_norm(self, case):
        import tf_keras

        if case.attr("rms_scaling"):
            raise Unsupported("tf_keras LayerNormalization has no rms_scaling (it is a Keras 3 argument)")
        if tuple(case.param_axes) != tuple(case.reduction_axes):
            raise Unsupported(f"tf_keras LayerNormalization's gamma/beta span its axis {list(case.reduction_axes)}: "
                              f"param_axes {list(case.param_axes)} cannot be expressed")
        kwargs = self._layer_kwargs(case, ("epsilon",))
        kwargs.update(center=bool(case.attr("center")), scale=bool(case.attr("scale")))
        self.note(f"LayerNormalization(axis={list(case.reduction_axes)}, "
                  + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
        return self._stateless(case, lambda: tf_keras.layers.LayerNormalization(
            axis=list(case.reduction_axes), **kwargs))

    def run_group_norm(self, case):
        import tf_keras

        kwargs = self._layer_kwargs(case, ("epsilon",))
        kwargs.update(center=bool(case.attr("center")), scale=bool(case.attr("scale")))
        channel, groups = case.feature_axes[0], int(case.attr("groups"))
        self.note(f"GroupNormalization(groups={groups}, axis={channel}, "
                  + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
        return self._stateless(case, lambda: tf_keras.layers.GroupNormalization(
            groups=groups, axis=channel, **kwargs))

    def run_instance_norm(self, case):
        import tf_keras

        if case.attr("track_running_stats"):
            raise Unsupported("tf_keras has no instance norm with running statistics: "
                              "GroupNormalization(groups=-1) keeps none")
        kwargs = self._layer_kwargs(case, ("epsilon",))
        if case.is_default("affine"):
            self.note("affine left to the default: GroupNormalization's center=True, scale=True "
                      "(gamma ones, beta zeros)")
        else:
            kwargs.update(center=bool(case.attr("affine")), scale=bool(case.attr("affine")))
        channel = case.feature_axes[0]
        self.note(f"instance norm as GroupNormalization(groups=-1, axis={channel}, "
                  + ", ".join(f"{k}={v}" for k, v in kwargs.items())
                  + "); it has no training argument (untracked instance norm is the same in both modes)")
        return self._stateless(case, lambda: tf_keras.layers.GroupNormalization(groups=-1, axis=channel, **kwargs))

    def run_rms_norm(self, case):
        raise Unsupported("tf_keras has no RMSNormalization layer (Keras 3 only) and LayerNormalization "
                          "has no rms_scaling")


class TfKerasFusedAdapter(TfKerasAdapter):
    name = "tf_keras.fused"
    api = "tf_keras.layers.BatchNormalization(fused=True)"
    fused = True

    def _layout(self, case):
        layout = FusedLayout(case)
        self.note(layout.note)
        axis = 1 if layout.channel_axis == 1 else -1
        return axis, layout

    def _batch_norm_only(self, case):
        raise Unsupported(f"tf_keras.fused is BatchNormalization(fused=True) only; {case.op} is on the tf_keras row "
                          "(LayerNormalization and GroupNormalization have no fused switch; LayerNormalization "
                          "picks its fused path itself)")

    run_layer_norm = run_group_norm = run_instance_norm = run_rms_norm = _batch_norm_only
