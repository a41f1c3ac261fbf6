"""tf_keras (Keras 2): ``tf_keras.layers.BatchNormalization``, fused and not.

* ``tf_keras`` — ``fused=False``: ``axis`` is the case's kept axes (Keras 2
  accepts a list), so every layout is passed as it is.
* ``tf_keras.fused`` — ``fused=True``: the layer raises ``ValueError`` unless
  the input is 4-D with ``axis`` 1 or 3 (or 5-D with 1 or 4), and unless the
  compute dtype is float16/bfloat16/float32 (float64 raises: an ``error``
  result). Other layouts are transposed/reshaped to NHWC ``(reduced, 1, 1,
  kept)`` and back, as for ``tf.nn.fused``. In eager mode the layer then calls
  ``tf.compat.v1.nn.fused_batch_norm`` with ``exponential_avg_factor = 1 -
  momentum``; its moving variance takes the kernel's Bessel-corrected batch
  variance (reported, not compensated).

One layer per case, built on the (translated) input shape; gamma, beta and the
moving statistics are assigned before the first call; each step calls
``layer(x, training=...)`` (no ``training`` when the mode is left to the
framework: Keras 2 then uses the learning phase, 0, i.e. inference).
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from .tensorflow_adapter import FusedLayout, _tf


class TfKerasAdapter(Adapter):
    name = "tf_keras"
    framework = "tf_keras"
    api = "tf_keras.layers.BatchNormalization(fused=False)"
    fused = False

    def load(self) -> None:
        _tf()
        import tf_keras  # noqa: F401

    def _layer_kwargs(self, case) -> dict:
        """Constructor arguments except axis/fused."""
        kwargs = {"dtype": case.dtype}
        for name in ("momentum", "epsilon", "center", "scale"):
            if not case.is_default(name):
                value = case.attr(name)
                kwargs[name] = bool(value) if name in ("center", "scale") else float(value)
        return kwargs

    def _layout(self, case):
        """(axis, layout or None): how the input reaches the layer."""
        return list(case.feature_axes), None

    def run_batch_norm(self, case):
        tf = _tf()
        import tf_keras

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
            if layer.scale:
                values["gamma"] = case.params["gamma"]
            if layer.center:
                values["beta"] = case.params["beta"]
            for name, value in values.items():
                var = getattr(layer, name)
                var.assign(np.asarray(value, dtype=np.float64).reshape(var.shape).astype(var.dtype.as_numpy_dtype))
            for step in case.steps:
                x_np = step.inputs["x"]
                x = tf.constant(x_np, dtype=dtype)
                if layout:
                    x = layout.to_fused(tf, x)
                if step.mode.framework_default:
                    y = layer(x)
                    self.note("mode left to the default: layer(x) called without training=")
                else:
                    y = layer(x, training=step.mode.value == "training")
                if layout:
                    y = layout.restore(tf, y, x_np.shape)
                outputs.append({
                    "y": np.asarray(y),
                    "moving_mean": np.asarray(layer.moving_mean).reshape(case.feature_shape),
                    "moving_variance": np.asarray(layer.moving_variance).reshape(case.feature_shape),
                })
        return outputs


class TfKerasFusedAdapter(TfKerasAdapter):
    name = "tf_keras.fused"
    api = "tf_keras.layers.BatchNormalization(fused=True)"
    fused = True

    def _layout(self, case):
        layout = FusedLayout(case)
        self.note(layout.note)
        axis = 1 if layout.channel_axis == 1 else -1
        return axis, layout
