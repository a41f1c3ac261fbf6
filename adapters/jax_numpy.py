"""``jax.numpy``: every normalization op written by hand the way a careful user writes it.

Statistics over the reduced axes with ``keepdims``, biased two-pass variance,
``rsqrt(var + eps)``, ``moving = m * moving + (1 - m) * batch``; compiled with
``jax.jit`` and computed in the case's dtype, except that float16/bfloat16
inputs are normalized, and their statistics kept, in float32 (``y`` is cast
back to the input dtype), like the NumPy adapter. Gradients of
``L = sum(dy * y)`` come from ``jax.vjp`` of the same jitted function, with
respect to ``x`` and the active parameters (all in the case's dtype).

A formula has no defaults: a case that leaves epsilon, momentum, the mode or
instance norm's ``affine`` to "the framework" is unsupported. The batch-norm
knobs are what the user's code does: ``momentum: cumulative`` keeps a running
average of the batches, ``track_running_stats: false`` normalizes with batch
statistics in both modes and keeps none, ``trainable: false`` runs a training
step as inference. ``moments`` uses ``jnp.mean`` / ``jnp.var``.
"""

from __future__ import annotations

import math

import numpy as np

from conformance.errors import Unsupported

from .jax_common import JaxBase, gradient_outputs, jnp_dtype, out, wants_gradients


class JaxNumpyAdapter(JaxBase):
    name = "jax.numpy"
    framework = "jax"
    api = "jax.numpy (hand-written formula, jax.jit)"

    # -- shared plumbing ------------------------------------------------------------------
    def _dtypes(self, case):
        import jax.numpy as jnp

        io = jnp_dtype(case)
        compute = jnp.dtype("float32") if case.dtype in ("float16", "bfloat16") else io
        if compute != io:
            self.note(f"{case.dtype} input: statistics and normalization computed in float32, "
                      f"y cast back to {case.dtype}")
        return io, compute

    def _require(self, case, *names: str) -> None:
        for name in names:
            if case.is_default(name):
                raise Unsupported(f"a hand-written jax.numpy formula has no default {name} "
                                  f"(the case leaves {name} to the framework)")

    def _require_mode(self, case) -> None:
        if any(s.mode.framework_default for s in case.steps):
            raise Unsupported("a hand-written jax.numpy formula has no default mode "
                              "(the case leaves training/inference to the framework)")

    def _params(self, case, io):
        """The active parameters, in the case's dtype, shaped to broadcast against x."""
        import jax.numpy as jnp

        return {name: jnp.asarray(np.asarray(case.params[name]).reshape(case.param_broadcast_shape), dtype=io)
                for name in ("gamma", "beta") if case.has_param(name)}

    def _step(self, case, step, fn, x, params, *extra):
        """Run ``fn(x, params, *extra) -> (y, aux)``; with gradients via jax.vjp. → (outputs, aux)."""
        import jax
        import jax.numpy as jnp

        if not wants_gradients(step):
            y, aux = fn(x, params, *extra)
            return {"y": out(y)}, aux
        y, vjp, aux = jax.vjp(lambda x_, p_: fn(x_, p_, *extra), x, params, has_aux=True)
        dx, grads = vjp(jnp.asarray(step.inputs["dy"], dtype=y.dtype))
        return {"y": out(y), **gradient_outputs(case, dx, grads)}, aux

    @staticmethod
    def _affine(y, params):
        if "gamma" in params:
            y = y * params["gamma"].astype(y.dtype)
        if "beta" in params:
            y = y + params["beta"].astype(y.dtype)
        return y

    def _x(self, step, io):
        import jax.numpy as jnp

        return jnp.asarray(step.inputs["x"], dtype=io)

    # -- batch norm -------------------------------------------------------------------------
    def run_batch_norm(self, case):
        import jax
        import jax.numpy as jnp

        io, cd = self._dtypes(case)
        tracked = bool(case.attr("track_running_stats", True))
        frozen = not case.attr("trainable", True)
        trains = tracked and not frozen and any(s.mode.value == "training" for s in case.steps)
        self._require(case, "epsilon", *(("momentum",) if trains else ()))
        if tracked and not frozen:
            self._require_mode(case)
        axes, eps = tuple(case.reduction_axes), float(case.attr("epsilon"))
        cumulative = case.attr("momentum") == "cumulative"
        if cumulative:
            self.note("momentum: cumulative: the t-th training step keeps (1 - 1/t) of the moving value")
        if not tracked:
            self.note("track_running_stats: false: batch statistics in both modes, no moving statistics")
        if frozen:
            self.note("trainable: false: a training step runs the inference formula (nothing updated)")
        self.note("epsilon and momentum are Python floats (weakly typed: they do not promote the arrays)")

        def batch(x, params):
            xc = x.astype(cd)
            mean = jnp.mean(xc, axis=axes, keepdims=True)
            var = jnp.mean(jnp.square(xc - mean), axis=axes, keepdims=True)
            y = self._affine((xc - mean) * jax.lax.rsqrt(var + eps), params).astype(io)
            return y, (mean, var)

        @jax.jit
        def infer(x, params, mm, mv):
            xc = x.astype(cd)
            return self._affine((xc - mm) * jax.lax.rsqrt(mv + eps), params).astype(io), None

        return self._tracked_steps(case, jax.jit(batch), infer, io, cd, tracked=tracked, frozen=frozen,
                                   batch_outputs=True)

    def _tracked_steps(self, case, batch, infer, io, cd, *, tracked, frozen=False, batch_outputs=False):
        """Each step of a batch or instance norm: ``batch`` (training, or untracked) returns y and the
        statistics fed to the moving update; ``infer`` normalizes with the moving statistics."""
        import jax.numpy as jnp

        cumulative = case.attr("momentum") == "cumulative"
        params = self._params(case, io)
        fshape, shape = case.feature_shape, case.broadcast_shape
        mm = jnp.asarray(np.asarray(case.state["moving_mean"]).reshape(shape), dtype=cd)
        mv = jnp.asarray(np.asarray(case.state["moving_variance"]).reshape(shape), dtype=cd)
        outputs, seen = [], 0
        for step in case.steps:
            x = self._x(step, io)
            training = step.mode.value == "training" and not frozen
            if training or not tracked:
                result, (mean, var) = self._step(case, step, batch, x, params)
                if batch_outputs:
                    result["batch_mean"] = out(mean).reshape(fshape)
                    result["batch_variance"] = out(var).reshape(fshape)
                if training and tracked:
                    seen += 1
                    keep = 1 - 1 / seen if cumulative else float(case.attr("momentum"))
                    mm = keep * mm + (1 - keep) * mean
                    mv = keep * mv + (1 - keep) * var
            else:
                result, _ = self._step(case, step, infer, x, params, mm, mv)
            if tracked:
                result["moving_mean"], result["moving_variance"] = out(mm).reshape(fshape), out(mv).reshape(fshape)
            outputs.append(result)
        return outputs

    # -- layer, RMS, group norm (no mode, no state) -------------------------------------------
    def _stateless(self, case, normalize):
        import jax

        io, cd = self._dtypes(case)

        @jax.jit
        def fn(x, params):
            return self._affine(normalize(x.astype(cd)), params).astype(io), None

        params = self._params(case, io)
        return [self._step(case, step, fn, self._x(step, io), params)[0] for step in case.steps]

    def run_layer_norm(self, case):
        import jax
        import jax.numpy as jnp

        self._require(case, "epsilon")
        axes, eps = tuple(case.reduction_axes), float(case.attr("epsilon"))
        if case.attr("rms_scaling"):
            self.note("rms_scaling: x * rsqrt(mean(x^2) + eps), no centring")

            def normalize(x):
                return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True) + eps)
        else:
            def normalize(x):
                mean = jnp.mean(x, axis=axes, keepdims=True)
                var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
                return (x - mean) * jax.lax.rsqrt(var + eps)
        return self._stateless(case, normalize)

    def run_rms_norm(self, case):
        import jax
        import jax.numpy as jnp

        self._require(case, "epsilon")
        axes, eps = tuple(case.reduction_axes), float(case.attr("epsilon"))
        return self._stateless(
            case, lambda x: x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True) + eps))

    def run_group_norm(self, case):
        import jax
        import jax.numpy as jnp

        self._require(case, "epsilon")
        channel, groups, eps = case.feature_axes[0], case.attr("groups"), float(case.attr("epsilon"))
        self.note(f"channel axis {channel} moved to 1, reshaped to (N, {groups}, C/{groups} * spatial): consecutive channels per group")

        def normalize(x):
            moved = jnp.moveaxis(x, channel, 1)
            # explicit sizes (not -1): an empty batch must still reshape
            grouped = moved.reshape(moved.shape[0], groups, math.prod(moved.shape[1:]) // groups)
            mean = jnp.mean(grouped, axis=2, keepdims=True)
            var = jnp.mean(jnp.square(grouped - mean), axis=2, keepdims=True)
            normalized = ((grouped - mean) * jax.lax.rsqrt(var + eps)).reshape(moved.shape)
            return jnp.moveaxis(normalized, 1, channel)
        return self._stateless(case, normalize)

    # -- instance norm ------------------------------------------------------------------------
    def run_instance_norm(self, case):
        import jax
        import jax.numpy as jnp

        io, cd = self._dtypes(case)
        tracked = bool(case.attr("track_running_stats"))
        trains = tracked and any(s.mode.value == "training" for s in case.steps)
        self._require(case, "epsilon", "affine", *(("momentum",) if trains else ()))
        if tracked:
            self._require_mode(case)
        axes, eps = tuple(case.reduction_axes), float(case.attr("epsilon"))

        @jax.jit
        def instance(x, params):
            xc = x.astype(cd)
            mean = jnp.mean(xc, axis=axes, keepdims=True)
            var = jnp.mean(jnp.square(xc - mean), axis=axes, keepdims=True)
            y = self._affine((xc - mean) * jax.lax.rsqrt(var + eps), params).astype(io)
            return y, (jnp.mean(mean, axis=0, keepdims=True), jnp.mean(var, axis=0, keepdims=True))

        @jax.jit
        def infer(x, params, mm, mv):
            return self._affine((x.astype(cd) - mm) * jax.lax.rsqrt(mv + eps), params).astype(io), None

        if tracked:
            self.note("track_running_stats: the moving statistics are updated with the batch average "
                      "of the per-instance mean and biased variance")
        return self._tracked_steps(case, instance, infer, io, cd, tracked=tracked)

    # -- moments ------------------------------------------------------------------------------
    def run_moments(self, case):
        import jax
        import jax.numpy as jnp

        dtype = jnp_dtype(case)
        axes = tuple(case.reduction_axes)
        keep = bool(case.attr("keepdims"))

        @jax.jit
        def moments(x):
            return jnp.mean(x, axis=axes, keepdims=keep), jnp.var(x, axis=axes, keepdims=keep)

        outputs = []
        for step in case.steps:
            mean, var = moments(jnp.asarray(step.inputs["x"], dtype=dtype))
            outputs.append({"mean": out(mean), "variance": out(var)})
        return outputs
