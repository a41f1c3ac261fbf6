"""TensorFlow ``tf.compat.v1.nn.fused_batch_norm`` (the ``tf.nn.fused`` row): batch norm only.

TF 2.21 exports the fused kernel only under ``compat.v1`` (Keras's fused path
calls it). It needs a 4-D/5-D input with one channel axis (NHWC/NCHW), so other
layouts are transposed and reshaped to ``(reduced, 1, 1, kept)`` NHWC and back
(:class:`~adapters.tf_common.FusedLayout`). The moving update is the kernel's
own ``exponential_avg_factor = 1 - momentum`` (default 1.0: the batch
statistics replace the moving ones); ``momentum: cumulative`` is the factor
``1/t`` at the t-th training call, as PyTorch computes it for ``momentum=None``.
Its batch variance (and so its moving-variance update) is Bessel-corrected;
that is reported as returned, not compensated. ``track_running_stats: false``
is ``is_training=True`` in every call without moving statistics (the kernel's
way of normalizing with batch statistics). There is no frozen-layer notion
(``trainable: false`` is unsupported) and no float64 kernel (an error).
Gradients: ``tf.GradientTape`` through the kernel (``FusedBatchNormGradV3``).
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

from .tf_common import FusedLayout, _tf, tape_gradients, to_numpy

ONLY_BATCH_NORM = ("tf.nn.fused is tf.compat.v1.nn.fused_batch_norm, a batch-norm kernel (per-channel "
                   "statistics over every other axis); it has no {op} (tf_keras LayerNormalization reshapes "
                   "its input to reuse it: see the tf_keras row)")


class TensorflowFusedAdapter(Adapter):
    name = "tf.nn.fused"
    framework = "tensorflow"
    api = "tf.compat.v1.nn.fused_batch_norm"

    def load(self) -> None:
        _tf()

    def _only_batch_norm(self, case):
        raise Unsupported(ONLY_BATCH_NORM.format(op=case.op))

    run_layer_norm = run_group_norm = run_instance_norm = run_rms_norm = _only_batch_norm

    def _kwargs(self, case, layout) -> tuple[dict, float | None]:
        kwargs = {"data_format": layout.data_format}
        if case.is_default("epsilon"):
            self.note("epsilon left to fused_batch_norm's default (0.001)")
        else:
            kwargs["epsilon"] = float(case.attr("epsilon"))
        factor = None
        if not case.attr("track_running_stats", True) or case.attr("momentum") == "cumulative":
            pass
        elif case.is_default("momentum"):
            self.note("momentum left to the default: exponential_avg_factor not passed "
                      "(default 1.0: the returned running statistics are the batch statistics)")
        else:
            factor = 1.0 - float(case.attr("momentum"))
            kwargs["exponential_avg_factor"] = factor
            self.note(f"momentum {case.attr('momentum')} -> exponential_avg_factor {factor:g}")
        return kwargs, factor

    def run_batch_norm(self, case):
        tf = _tf()
        for name, arg in (("center", "offset"), ("scale", "scale")):
            if case.is_default(name):
                raise Unsupported(f"fused_batch_norm has no default for {arg} (a required argument)")
        if not case.attr("trainable", True):
            raise Unsupported("fused_batch_norm has no frozen-layer (trainable=False) notion: is_training picks "
                              "the statistics; passing is_training=False instead would be compensation")
        fused = tf.compat.v1.nn.fused_batch_norm
        layout = FusedLayout(case)
        self.note(layout.note)
        dtype = tf.as_dtype(case.dtype)
        # Scale, offset and statistics are float32 for half/bfloat16/float32 inputs (attr U).
        param_dtype = tf.float64 if case.dtype == "float64" else tf.float32
        kwargs, factor = self._kwargs(case, layout)
        tracked = case.attr("track_running_stats", True)
        cumulative = case.attr("momentum") == "cumulative"
        if not tracked:
            self.note("track_running_stats false: is_training=True in every call, no moving statistics")

        def vec(values):
            return tf.constant(np.asarray(values, dtype=np.float64).ravel(), dtype=param_dtype)

        c = layout.channels
        outputs, trained = [], 0
        with tf.device("/CPU:0"):
            params = {}
            if case.attr("scale"):
                params["gamma"] = vec(case.params["gamma"])
            if case.attr("center"):
                params["beta"] = vec(case.params["beta"])
            gamma = params.get("gamma", tf.ones([c], param_dtype))
            beta = params.get("beta", tf.zeros([c], param_dtype))
            if len(params) < 2:
                self.note("scale/center off -> scale=ones/offset=zeros (the API needs tensors)")
            moving_mean, moving_var = vec(case.state["moving_mean"]), vec(case.state["moving_variance"])
            for step in case.steps:
                x_np = step.inputs["x"]
                x = tf.constant(x_np, dtype=dtype)
                step_kwargs = dict(kwargs)
                if not tracked:
                    training = step_kwargs["is_training"] = True
                elif step.mode.framework_default:
                    training = True
                    self.note("mode left to the default: is_training not passed (default True)")
                else:
                    training = step_kwargs["is_training"] = step.mode.value == "training"
                if training and tracked and cumulative:
                    trained += 1
                    step_kwargs["exponential_avg_factor"] = 1.0 / trained
                    self.note("momentum cumulative -> exponential_avg_factor 1/t at the t-th training call "
                              "(as torch computes it for momentum=None)")
                step_factor = step_kwargs.get("exponential_avg_factor")
                if not training:
                    step_kwargs.pop("exponential_avg_factor", None)
                # Untracked: no running statistics go in (is_training=True, factor 1.0).
                stats = {"mean": moving_mean, "variance": moving_var} if tracked else {}
                out, result = {}, {}

                def forward():  # gamma/beta are the tensors in params (watched by the tape)
                    result["all"] = fused(layout.to_fused(tf, x), gamma, beta, **stats, **step_kwargs)
                    return layout.restore(tf, result["all"][0], x_np.shape)

                y, grads = tape_gradients(self, tf, step, forward, x, params)
                _, new_mean, new_var = result["all"]
                out.update(y=y, **grads)
                if training:
                    if step_factor is None or step_factor == 1.0:
                        batch_mean, batch_var = new_mean, new_var
                    else:
                        # With exponential_avg_factor != 1 the kernel returns only the running
                        # statistics; a second call with the default factor gives the batch ones.
                        plain = {k: v for k, v in step_kwargs.items() if k != "exponential_avg_factor"}
                        _, batch_mean, batch_var = fused(layout.to_fused(tf, x), gamma, beta, **plain)
                        self.note("batch statistics from a second call with exponential_avg_factor=1.0")
                    out["batch_mean"], out["batch_variance"] = batch_mean, batch_var
                    if tracked:
                        moving_mean, moving_var = new_mean, new_var
                if tracked:
                    out["moving_mean"], out["moving_variance"] = moving_mean, moving_var
                outputs.append(to_numpy(out, case))
        return outputs
