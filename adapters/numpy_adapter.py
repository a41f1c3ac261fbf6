"""NumPy: batch norm as a careful user writes it by hand, in the case's dtype.

This is the seeds' hand reimplementation done right (for float16 input the
statistics and the moving update are kept in float32, as a careful user does): statistics over the
reduced axes with ``keepdims``, biased variance, epsilon inside the square
root, ``moving = momentum * moving + (1 - momentum) * batch``. It is written
independently of the float64 reference (no shared code), so that it checks it.
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported


class NumpyAdapter(Adapter):
    name = "numpy"
    framework = "numpy"
    api = "numpy (hand-written formula)"

    def _dtype(self, case):
        if case.dtype == "bfloat16":
            raise Unsupported("NumPy has no bfloat16 dtype")
        return np.dtype(case.dtype)

    def _param(self, values, case, dtype):
        return np.asarray(values, dtype=dtype).reshape(case.broadcast_shape)

    def run_batch_norm(self, case):
        io_dtype = self._dtype(case)
        dtype = np.dtype(np.float32) if io_dtype == np.float16 else io_dtype
        if dtype != io_dtype:
            self.note("float16 input: statistics and moving update computed in float32")
        axes = case.reduction_axes
        eps = dtype.type(case.attr("epsilon"))
        momentum = dtype.type(case.attr("momentum"))
        gamma = self._param(case.params["gamma"], case, dtype) if case.attr("scale") else dtype.type(1)
        beta = self._param(case.params["beta"], case, dtype) if case.attr("center") else dtype.type(0)
        moving_mean = self._param(case.state["moving_mean"], case, dtype)
        moving_var = self._param(case.state["moving_variance"], case, dtype)
        outputs = []
        for step in case.steps:
            x = np.asarray(step.inputs["x"], dtype=dtype)
            out = {}
            if step.mode.value == "training":
                mean = x.mean(axis=axes, keepdims=True)
                var = np.square(x - mean).mean(axis=axes, keepdims=True)
                out["y"] = (gamma * (x - mean) / np.sqrt(var + eps) + beta).astype(io_dtype)
                moving_mean = momentum * moving_mean + (1 - momentum) * mean
                moving_var = momentum * moving_var + (1 - momentum) * var
                out["batch_mean"], out["batch_variance"] = mean, var
            else:
                out["y"] = (gamma * (x - moving_mean) / np.sqrt(moving_var + eps) + beta).astype(io_dtype)
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
