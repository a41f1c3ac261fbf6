"""TensorFlow: the low-level ``tf.nn`` APIs, as a user writes them.

Two rows (``tf.nn.fused`` lives in :mod:`adapters.tf_fused_adapter`, re-exported here):

* ``tf.nn`` — the seeds' path: ``tf.nn.moments(x, axes, keepdims=True)`` then
  ``tf.nn.batch_normalization``; the user keeps the moving statistics and
  updates them as ``momentum * old + (1 - momentum) * batch`` (or the
  cumulative average ``(1 - 1/t) * old + (1/t) * batch``) in TF ops, in the
  case's dtype. TensorFlow has **no dedicated layer, group, instance or RMS
  norm op**: they are written as a TF user writes them (and as tf_keras's
  layers do): ``tf.nn.moments`` over the normalized axes (group norm: after
  reshaping the channel axis to ``(groups, C / groups)``) and
  ``tf.nn.batch_normalization`` for ``(x - mean) * rsqrt(var + eps) * gamma +
  beta``; RMS norm as ``x * tf.math.rsqrt(tf.reduce_mean(tf.square(x)) + eps) *
  gamma``. Gradients: ``tf.GradientTape``. This path has no mode, no epsilon
  default, no momentum and no notion of a frozen layer: a case that leaves any
  of those to "the framework" (or sets ``trainable: false``) is unsupported.
* ``tf.nn.fused`` — ``tf.compat.v1.nn.fused_batch_norm`` (batch norm only).

Everything runs under ``tf.device("/CPU:0")`` so ``device()`` tells the truth.
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

from .tf_common import FusedLayout, _tf, moving_keep, numpy_of, tape_gradients, to_numpy  # noqa: F401 (re-exported)
from .tf_fused_adapter import TensorflowFusedAdapter  # noqa: F401 (entry point tf.nn.fused)

HAND = "a hand-written {op} with tf.nn ops"


class TensorflowNNAdapter(Adapter):
    name = "tf.nn"
    framework = "tensorflow"
    api = ("tf.nn.moments(keepdims=True) + tf.nn.batch_normalization "
           "(layer/group/instance/RMS norm written with them; tf.GradientTape)")

    def load(self) -> None:
        _tf()

    def _dtype(self, tf, case):
        return tf.as_dtype(case.dtype)

    def _axes(self, case) -> list[int]:
        return list(case.reduction_axes)

    # -- shared checks and pieces -------------------------------------------------------
    def _no_defaults(self, case, names=("epsilon",)) -> None:
        """A hand-written formula has no framework default for these attributes."""
        for name in names:
            if case.is_default(name):
                raise Unsupported(f"{HAND.format(op=case.op)} has no default {name} (the user must write one)")

    def _no_default_mode(self, case) -> None:
        if any(s.mode.framework_default for s in case.steps):
            raise Unsupported("tf.nn.batch_normalization has no mode: the caller picks batch or moving "
                              "statistics, so a framework-default mode cannot be expressed")

    def _params(self, tf, case, dtype, names) -> dict:
        """gamma/beta as constants of ``param_shape`` (what the tape differentiates)."""
        return {n: tf.constant(np.asarray(case.params[n]).reshape(case.param_shape), dtype=dtype)
                for n in names if case.has_param(n)}

    def _moving_update(self, case, moving, batch, trained):
        keep = moving_keep(case, trained)
        if case.attr("momentum") == "cumulative":
            self.note("moving update written by hand: cumulative average (1 - 1/t) * old + (1/t) * batch")
        else:
            self.note(f"moving update written by hand: {keep} * old + (1 - {keep}) * batch")
        return keep * moving + (1 - keep) * batch

    # -- batch_norm ------------------------------------------------------------------------
    def run_batch_norm(self, case):
        tf = _tf()
        if case.is_default("epsilon"):
            raise Unsupported("tf.nn.batch_normalization has no epsilon default (variance_epsilon is required)")
        self._no_default_mode(case)
        if not case.attr("trainable", True):
            raise Unsupported("tf.nn has no frozen-layer (trainable=False) notion: the caller picks batch or "
                              "moving statistics; running the step as inference instead would be compensation")
        tracked = case.attr("track_running_stats", True)
        training = any(s.mode.value == "training" for s in case.steps)
        if tracked and training and case.is_default("momentum"):
            raise Unsupported("the tf.nn path has no momentum: the moving statistics are updated by the "
                              "user, so there is no framework default")
        for name, arg in (("center", "offset"), ("scale", "scale")):
            if case.is_default(name):
                raise Unsupported(f"tf.nn.batch_normalization has no default for {arg} (a required argument)")
        dtype = self._dtype(tf, case)
        eps = float(case.attr("epsilon"))
        axes = self._axes(case)
        if not tracked:
            self.note("track_running_stats false: batch statistics in every step, no moving statistics kept")
        return self._tracked_steps(tf, case, dtype, axes, eps, tracked, batch_outputs=True)

    def _tracked_steps(self, tf, case, dtype, axes, eps, tracked, pool=None, batch_outputs=False):
        """Each step of a batch or instance norm written with tf.nn: batch statistics (training, or
        untracked) or the moving ones, and the moving update by hand. ``pool`` reduces the statistics
        fed to the update (instance norm: their batch average)."""
        shape = list(case.broadcast_shape)
        outputs, trained = [], 0
        with tf.device("/CPU:0"):
            params = self._params(tf, case, dtype, ("gamma", "beta"))
            if batch_outputs and len(params) < 2:
                self.note("scale/center off -> scale/offset=None")
            moving_mean = tf.reshape(tf.constant(case.state["moving_mean"], dtype=dtype), shape)
            moving_var = tf.reshape(tf.constant(case.state["moving_variance"], dtype=dtype), shape)
            for step in case.steps:
                x = tf.constant(step.inputs["x"], dtype=dtype)
                batch = step.mode.value == "training" or not tracked
                stats = {}

                def forward():
                    gamma, beta = self._affine(tf, params, shape)
                    if batch:
                        mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
                        stats.update(batch_mean=mean, batch_variance=var)
                        return tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)
                    return tf.nn.batch_normalization(x, moving_mean, moving_var, beta, gamma, eps)

                y, grads = tape_gradients(self, tf, step, forward, x, params)
                out = {"y": y, **(stats if batch_outputs else {}), **grads}
                if not batch:
                    self.note("inference: tf.nn.batch_normalization with the moving statistics")
                elif tracked and step.mode.value == "training":
                    trained += 1
                    if pool is not None:
                        self.note("moving statistics: the per-instance statistics averaged over the batch")
                    mean, var = ((pool(stats[k]) if pool else stats[k]) for k in ("batch_mean", "batch_variance"))
                    moving_mean = self._moving_update(case, moving_mean, mean, trained)
                    moving_var = self._moving_update(case, moving_var, var, trained)
                if tracked:
                    out["moving_mean"], out["moving_variance"] = moving_mean, moving_var
                outputs.append(to_numpy(out, case))
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
                outputs.append({"mean": numpy_of(mean), "variance": numpy_of(var)})
        return outputs

    # -- layer, RMS, group and instance norm: no TF op; written with tf.nn ---------------
    def _run_stateless(self, case, forward_of):
        """Each step: ``forward_of(x, params)`` under a tape when gradients are wanted."""
        tf = _tf()
        dtype = self._dtype(tf, case)
        outputs = []
        with tf.device("/CPU:0"):
            params = self._params(tf, case, dtype, ("gamma", "beta"))
            for step in case.steps:
                x = tf.constant(step.inputs["x"], dtype=dtype)
                y, grads = tape_gradients(self, tf, step, lambda: forward_of(x, params), x, params)
                outputs.append(to_numpy({"y": y, **grads}, case))
        return outputs

    def _affine(self, tf, params, shape):
        return (tf.reshape(params[n], shape) if n in params else None for n in ("gamma", "beta"))

    def run_layer_norm(self, case):
        tf = _tf()
        self._no_defaults(case)
        axes, eps, shape = self._axes(case), float(case.attr("epsilon")), list(case.param_broadcast_shape)
        if case.attr("rms_scaling"):
            self.note(f"rms_scaling: x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), {axes}) + eps) * gamma")

            def forward(x, params):
                return self._rms(tf, x, axes, eps, params, shape)
        else:
            self.note(f"layer norm written by hand: tf.nn.moments(x, {axes}, keepdims=True) + "
                      "tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)")

            def forward(x, params):
                gamma, beta = self._affine(tf, params, shape)
                mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
                return tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)
        return self._run_stateless(case, forward)

    def _rms(self, tf, x, axes, eps, params, shape):
        y = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axes, keepdims=True) + tf.cast(eps, x.dtype))
        return y * tf.reshape(params["gamma"], shape) if "gamma" in params else y

    def run_rms_norm(self, case):
        tf = _tf()
        self._no_defaults(case)
        axes, eps, shape = self._axes(case), float(case.attr("epsilon")), list(case.param_broadcast_shape)
        self.note(f"RMS norm written by hand: x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), {axes}, "
                  "keepdims=True) + eps) * gamma, in the input dtype")
        return self._run_stateless(case, lambda x, params: self._rms(tf, x, axes, eps, params, shape))

    def run_group_norm(self, case):
        tf = _tf()
        self._no_defaults(case)
        channel, groups, eps = case.feature_axes[0], int(case.attr("groups")), float(case.attr("epsilon"))
        shape = list(case.steps[0].inputs["x"].shape)
        grouped = shape[:channel] + [groups, shape[channel] // groups] + shape[channel + 1:]
        axes = [a for a in range(1, len(grouped)) if a != channel]
        pshape = [1] * len(grouped)
        pshape[channel:channel + 2] = [groups, shape[channel] // groups]
        self.note(f"group norm written by hand (as tf_keras GroupNormalization): x reshaped to {grouped}, "
                  f"tf.nn.moments over axes {axes}, tf.nn.batch_normalization, reshaped back")

        def forward(x, params):
            gamma, beta = self._affine(tf, params, pshape)
            xg = tf.reshape(x, grouped)
            mean, var = tf.nn.moments(xg, axes=axes, keepdims=True)
            return tf.reshape(tf.nn.batch_normalization(xg, mean, var, beta, gamma, eps), shape)
        return self._run_stateless(case, forward)

    def run_instance_norm(self, case):
        tf = _tf()
        self._no_defaults(case, ("epsilon", "affine"))
        tracked = case.attr("track_running_stats")
        if tracked:
            self._no_default_mode(case)
            if any(s.mode.value == "training" for s in case.steps) and case.is_default("momentum"):
                raise Unsupported(f"{HAND.format(op='instance_norm')} has no default momentum")
        dtype, eps, axes = self._dtype(tf, case), float(case.attr("epsilon")), self._axes(case)
        self.note(f"instance norm written by hand: tf.nn.moments(x, {axes}, keepdims=True) per sample and "
                  "channel + tf.nn.batch_normalization")
        return self._tracked_steps(tf, case, dtype, axes, eps, tracked,
                                   pool=lambda stat: tf.reduce_mean(stat, axis=0, keepdims=True))
