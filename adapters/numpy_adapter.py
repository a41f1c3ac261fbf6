"""NumPy: the normalization operators as a careful user writes them by hand, in the case's dtype.

This is the seeds' hand reimplementation done right (for float16 input the
statistics and the moving update are kept in float32, as a careful user does): statistics over the
reduced axes with ``keepdims``, biased variance, epsilon inside the square
root, ``moving = momentum * moving + (1 - momentum) * batch``; layer, RMS,
group and instance norm likewise. It is written independently of the float64
reference (no shared code), so that it checks it. Forward only: a case that
expects gradients (dx, dgamma, dbeta) is unsupported.
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported


GRADIENTS = ("dx", "dgamma", "dbeta")


class NumpyAdapter(Adapter):
    name = "numpy"
    framework = "numpy"
    api = "numpy (hand-written formula)"

    def _dtype(self, case):
        if case.dtype == "bfloat16":
            raise Unsupported("NumPy has no bfloat16 dtype")
        if any(name in step.expected for step in case.steps for name in GRADIENTS):
            raise Unsupported("NumPy has no automatic differentiation")
        return np.dtype(case.dtype)

    def _compute_dtype(self, case):
        """The case's dtype, or float32 for float16 input (as a careful user does)."""
        io_dtype = self._dtype(case)
        if io_dtype == np.float16:
            moving = " and moving update" if case.state else ""
            self.note(f"float16 input: statistics{moving} computed in float32")
            return io_dtype, np.dtype(np.float32)
        return io_dtype, io_dtype

    def _param(self, values, case, dtype):
        return np.asarray(values, dtype=dtype).reshape(case.broadcast_shape)

    def _affine(self, values, case, dtype):
        """gamma/beta reshaped to broadcast over x (they span case.param_axes)."""
        return np.asarray(values, dtype=dtype).reshape(case.param_broadcast_shape)

    def run_batch_norm(self, case):
        io_dtype, dtype = self._compute_dtype(case)
        axes = case.reduction_axes
        eps = dtype.type(case.attr("epsilon"))
        cumulative = case.attr("momentum") == "cumulative"
        momentum = None if cumulative else dtype.type(case.attr("momentum"))
        tracked = case.attr("track_running_stats", True)
        frozen = not case.attr("trainable", True)
        gamma = self._param(case.params["gamma"], case, dtype) if case.attr("scale") else dtype.type(1)
        beta = self._param(case.params["beta"], case, dtype) if case.attr("center") else dtype.type(0)
        moving_mean = self._param(case.state["moving_mean"], case, dtype)
        moving_var = self._param(case.state["moving_variance"], case, dtype)
        outputs, seen = [], 0
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            out = {}
            training = step.mode.value == "training" and not frozen
            if training or not tracked:
                mean = x.mean(axis=axes, keepdims=True)
                var = np.square(x - mean).mean(axis=axes, keepdims=True)
                out["y"] = (gamma * (x - mean) / np.sqrt(var + eps) + beta).astype(io_dtype)
                if training and tracked:
                    seen += 1
                    keep = dtype.type(1 - 1 / seen) if cumulative else momentum
                    moving_mean = keep * moving_mean + (1 - keep) * mean
                    moving_var = keep * moving_var + (1 - keep) * var
                out["batch_mean"], out["batch_variance"] = mean, var
            else:
                out["y"] = (gamma * (x - moving_mean) / np.sqrt(moving_var + eps) + beta).astype(io_dtype)
            if tracked:
                out["moving_mean"], out["moving_variance"] = moving_mean, moving_var
            for name in ("moving_mean", "moving_variance", "batch_mean", "batch_variance"):
                if name in out:
                    out[name] = out[name].reshape(case.feature_shape)
            outputs.append(out)
        return outputs

    def run_moments(self, case):
        dtype = self._dtype(case)
        outputs = []
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            keep = bool(case.attr("keepdims"))
            mean = x.mean(axis=case.reduction_axes, keepdims=True)
            var = np.square(x - mean).mean(axis=case.reduction_axes, keepdims=keep)
            outputs.append({"mean": mean if keep else mean.squeeze(axis=case.reduction_axes), "variance": var})
        return outputs

    def run_layer_norm(self, case):
        io_dtype, dtype = self._compute_dtype(case)
        axes, eps = case.reduction_axes, dtype.type(case.attr("epsilon"))
        rms = case.attr("rms_scaling")
        gamma = self._affine(case.params["gamma"], case, dtype) if case.attr("scale") else dtype.type(1)
        beta = (self._affine(case.params["beta"], case, dtype) if case.attr("center") and not rms
                else dtype.type(0))
        outputs = []
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            if rms:
                y = x / np.sqrt(np.square(x).mean(axis=axes, keepdims=True) + eps)
            else:
                mean = x.mean(axis=axes, keepdims=True)
                y = (x - mean) / np.sqrt(np.square(x - mean).mean(axis=axes, keepdims=True) + eps)
            outputs.append({"y": (y * gamma + beta).astype(io_dtype)})
        return outputs

    def run_rms_norm(self, case):
        io_dtype, dtype = self._compute_dtype(case)
        axes, eps = case.reduction_axes, dtype.type(case.attr("epsilon"))
        gamma = self._affine(case.params["gamma"], case, dtype) if case.attr("scale") else dtype.type(1)
        outputs = []
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            y = x / np.sqrt(np.square(x).mean(axis=axes, keepdims=True) + eps) * gamma
            outputs.append({"y": y.astype(io_dtype)})
        return outputs

    def run_group_norm(self, case):
        io_dtype, dtype = self._compute_dtype(case)
        channel, groups = case.feature_axes[0], case.attr("groups")
        eps = dtype.type(case.attr("epsilon"))
        gamma = self._affine(case.params["gamma"], case, dtype) if case.attr("scale") else dtype.type(1)
        beta = self._affine(case.params["beta"], case, dtype) if case.attr("center") else dtype.type(0)
        outputs = []
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            # (N, C, *) with the channels split into consecutive groups: (N, G, C/G * rest)
            xc = np.moveaxis(x, channel, 1)
            grouped = xc.reshape(xc.shape[0], groups, int(np.prod(xc.shape[1:])) // groups)  # explicit: a size-0 batch
            mean = grouped.mean(axis=2, keepdims=True)
            var = np.square(grouped - mean).mean(axis=2, keepdims=True)
            normalized = ((grouped - mean) / np.sqrt(var + eps)).reshape(xc.shape)
            y = np.moveaxis(normalized, 1, channel) * gamma + beta
            outputs.append({"y": y.astype(io_dtype)})
        return outputs

    def run_instance_norm(self, case):
        io_dtype, dtype = self._compute_dtype(case)
        axes, eps = case.reduction_axes, dtype.type(case.attr("epsilon"))
        tracked = case.attr("track_running_stats")
        cumulative = case.attr("momentum") == "cumulative"
        momentum = None if cumulative else dtype.type(case.attr("momentum"))
        affine = case.attr("affine")
        gamma = self._affine(case.params["gamma"], case, dtype) if affine else dtype.type(1)
        beta = self._affine(case.params["beta"], case, dtype) if affine else dtype.type(0)
        moving_mean = self._param(case.state["moving_mean"], case, dtype)
        moving_var = self._param(case.state["moving_variance"], case, dtype)
        outputs, seen = [], 0
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            training = step.mode.value == "training"
            if training or not tracked:
                mean = x.mean(axis=axes, keepdims=True)
                var = np.square(x - mean).mean(axis=axes, keepdims=True)
                y = (x - mean) / np.sqrt(var + eps)
                if training and tracked:
                    seen += 1
                    keep = dtype.type(1 - 1 / seen) if cumulative else momentum
                    moving_mean = keep * moving_mean + (1 - keep) * mean.mean(axis=0, keepdims=True)
                    moving_var = keep * moving_var + (1 - keep) * var.mean(axis=0, keepdims=True)
            else:
                y = (x - moving_mean) / np.sqrt(moving_var + eps)
            out = {"y": (y * gamma + beta).astype(io_dtype)}
            if tracked:
                out["moving_mean"] = moving_mean.reshape(case.feature_shape)
                out["moving_variance"] = moving_var.reshape(case.feature_shape)
            outputs.append(out)
        return outputs
