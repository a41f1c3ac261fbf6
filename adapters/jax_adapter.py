"""JAX and Flax: a hand-written jax.numpy batch norm, flax.linen.BatchNorm and flax.nnx.BatchNorm.

Three rows, three classes:

* ``jax.numpy``: batch norm written in ``jax.numpy`` the way a careful user writes it
  (statistics over the reduced axes with ``keepdims``, biased two-pass variance,
  ``rsqrt(var + eps)``, ``moving = m * moving + (1 - m) * batch``), compiled with
  ``jax.jit`` and computed in the case's dtype, except that float16/bfloat16 inputs
  are normalized, and their statistics kept, in float32 (``y`` is cast back to
  the input dtype), like the NumPy adapter. A formula has no defaults, so a
  case that leaves epsilon, momentum or the mode to "the framework" is
  unsupported. ``moments`` uses ``jnp.mean`` / ``jnp.var``.
* ``flax.linen``: ``flax.linen.BatchNorm`` driven through ``init``/``apply``
  with the ``batch_stats`` collection mutable in training; the state is carried
  from step to step.
* ``flax.nnx``: ``flax.nnx.BatchNorm``, a stateful module whose ``scale``,
  ``bias``, ``mean`` and ``var`` variables are set from the case.

float64 needs ``jax_enable_x64``; ``load()`` turns it on for the worker.
Flax keeps ``batch_stats`` in the dtype its own initializers give them
(float32, whatever the input or ``param_dtype``): the case's initial moving
statistics are written into those variables, which keeps Flax's storage dtype,
and the statistics come back in whatever dtype Flax leaves them in.
"""

from __future__ import annotations

import warnings

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _enable_x64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def _jnp_dtype(case):
    import jax.numpy as jnp

    if case.dtype not in _DTYPES:
        raise Unsupported(f"unknown dtype {case.dtype}")
    return jnp.dtype(case.dtype)


def _out(value) -> np.ndarray:
    """A JAX array → NumPy in its own dtype (bfloat16 comes back as ml_dtypes.bfloat16)."""
    return np.asarray(value)


class _JaxBase(Adapter):
    framework = "jax"

    def load(self) -> None:
        _enable_x64()
        import jax  # noqa: F401
        import jax.numpy  # noqa: F401

    def device(self) -> str:
        import jax

        return str(jax.devices()[0].platform)


# ---------------------------------------------------------------------------------------
# jax.numpy: the hand-written formula
# ---------------------------------------------------------------------------------------


class JaxNumpyAdapter(_JaxBase):
    name = "jax.numpy"
    framework = "jax"
    api = "jax.numpy (hand-written formula, jax.jit)"

    def run_batch_norm(self, case):
        import jax
        import jax.numpy as jnp

        io_dtype = _jnp_dtype(case)
        dtype = jnp.dtype("float32") if case.dtype in ("float16", "bfloat16") else io_dtype
        if case.is_default("epsilon"):
            raise Unsupported("a hand-written jax.numpy formula has no default epsilon "
                              "(the case leaves epsilon to the framework)")
        if any(s.mode.value == "training" for s in case.steps) and case.is_default("momentum"):
            raise Unsupported("a hand-written jax.numpy formula has no default momentum "
                              "(the case leaves momentum to the framework)")
        if any(s.mode.framework_default for s in case.steps):
            raise Unsupported("a hand-written jax.numpy formula has no default mode "
                              "(the case leaves training/inference to the framework)")
        axes = tuple(case.reduction_axes)
        eps = float(case.attr("epsilon"))
        momentum = float(case.attr("momentum"))
        shape = case.broadcast_shape
        if dtype != io_dtype:
            self.note(f"{case.dtype} input: statistics, normalization and moving update computed in float32, "
                      f"y cast back to {case.dtype}")
        self.note(f"epsilon and momentum are Python floats (weakly typed: they do not promote {dtype} arrays)")

        def normalize(x, mean, var, gamma, beta):
            y = (x - mean) * jax.lax.rsqrt(var + eps)
            if gamma is not None:
                y = gamma * y
            if beta is not None:
                y = y + beta
            return y.astype(io_dtype)

        @jax.jit
        def train(x, gamma, beta, moving_mean, moving_var):
            mean = jnp.mean(x, axis=axes, keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
            y = normalize(x, mean, var, gamma, beta)
            moving_mean = momentum * moving_mean + (1 - momentum) * mean
            moving_var = momentum * moving_var + (1 - momentum) * var
            return y, mean, var, moving_mean, moving_var

        @jax.jit
        def infer(x, gamma, beta, moving_mean, moving_var):
            return normalize(x, moving_mean, moving_var, gamma, beta)

        def feature(values):
            return jnp.asarray(np.asarray(values).reshape(shape), dtype=dtype)

        gamma = feature(case.params["gamma"]) if case.attr("scale") else None
        beta = feature(case.params["beta"]) if case.attr("center") else None
        moving_mean = feature(case.state["moving_mean"])
        moving_var = feature(case.state["moving_variance"])
        fshape = case.feature_shape
        outputs = []
        for step in case.steps:
            x = jnp.asarray(jnp.asarray(step.inputs["x"], dtype=io_dtype), dtype=dtype)
            out = {}
            if step.mode.value == "training":
                y, mean, var, moving_mean, moving_var = train(x, gamma, beta, moving_mean, moving_var)
                out["batch_mean"] = _out(mean).reshape(fshape)
                out["batch_variance"] = _out(var).reshape(fshape)
            else:
                y = infer(x, gamma, beta, moving_mean, moving_var)
            out["y"] = _out(y)
            out["moving_mean"] = _out(moving_mean).reshape(fshape)
            out["moving_variance"] = _out(moving_var).reshape(fshape)
            outputs.append(out)
        return outputs

    def run_moments(self, case):
        import jax
        import jax.numpy as jnp

        dtype = _jnp_dtype(case)
        axes = tuple(case.reduction_axes)
        keep = bool(case.attr("keepdims"))

        @jax.jit
        def moments(x):
            return jnp.mean(x, axis=axes, keepdims=keep), jnp.var(x, axis=axes, keepdims=keep)

        outputs = []
        for step in case.steps:
            mean, var = moments(jnp.asarray(step.inputs["x"], dtype=dtype))
            outputs.append({"mean": _out(mean), "variance": _out(var)})
        return outputs


# ---------------------------------------------------------------------------------------
# Flax
# ---------------------------------------------------------------------------------------


class _FlaxBase(_JaxBase):
    framework = "flax"

    def load(self) -> None:
        _enable_x64()
        import flax  # noqa: F401

    def _kwargs(self, case) -> dict:
        """Constructor arguments shared by linen and nnx BatchNorm."""
        dtype = _jnp_dtype(case)
        kwargs = {"dtype": dtype, "use_bias": bool(case.attr("center")), "use_scale": bool(case.attr("scale"))}
        if case.dtype == "float64":
            kwargs["param_dtype"] = dtype
            self.note("dtype=float64, param_dtype=float64")
        else:
            self.note(f"dtype={case.dtype} (computation/output), param_dtype left at Flax's float32")
        if case.is_default("epsilon"):
            self.note("epsilon left to Flax's default (1e-5)")
        else:
            kwargs["epsilon"] = float(case.attr("epsilon"))
        if case.is_default("momentum"):
            self.note("momentum left to Flax's default (0.99)")
        else:
            kwargs["momentum"] = float(case.attr("momentum"))
            self.note(f"momentum {case.attr('momentum')} -> Flax momentum {case.attr('momentum')} "
                      "(same convention: weight of the old statistic)")
        return kwargs

    @staticmethod
    def _mode_kwargs(step) -> dict:
        """Call-time flag: none when the case leaves the mode to the framework."""
        if step.mode.framework_default:
            return {}
        return {"use_running_average": step.mode.value != "training"}


class FlaxLinenAdapter(_FlaxBase):
    name = "flax.linen"
    api = "flax.linen.BatchNorm"

    def run_batch_norm(self, case):
        import jax
        import jax.numpy as jnp
        from flax import linen as nn

        kwargs = self._kwargs(case)
        fa = tuple(case.feature_axes)
        axis = fa[0] if len(fa) == 1 else fa
        self.note(f"axis={axis} (Flax's axis is the kept feature axis, as in Keras)")
        module = nn.BatchNorm(axis=axis, **kwargs)
        dtype = kwargs["dtype"]
        x0 = jnp.asarray(case.steps[0].inputs["x"], dtype=dtype)
        # init only builds the variables (names, shapes and Flax's own dtypes); its flag is not the case's.
        template = module.init(jax.random.key(0), x0, use_running_average=True)

        def like(ref, values):
            return jnp.asarray(np.asarray(values).reshape(ref.shape), dtype=ref.dtype)

        params = {}
        if "scale" in template.get("params", {}):
            params["scale"] = like(template["params"]["scale"], case.params["gamma"])
        if "bias" in template.get("params", {}):
            params["bias"] = like(template["params"]["bias"], case.params["beta"])
        stats = template["batch_stats"]
        # linen's update `momentum * ra + (1 - momentum) * batch` gives its batch_stats the dtype
        # promote(init dtype, statistics dtype); the case's initial state is set in that dtype.
        stat_dtype = jnp.promote_types(stats["mean"].dtype, jnp.promote_types(dtype, jnp.float32))
        batch_stats = {"mean": jnp.asarray(np.asarray(case.state["moving_mean"]).reshape(stats["mean"].shape),
                                           dtype=stat_dtype),
                       "var": jnp.asarray(np.asarray(case.state["moving_variance"]).reshape(stats["var"].shape),
                                          dtype=stat_dtype)}
        if stat_dtype != stats["mean"].dtype:
            self.note(f"batch_stats set in {stat_dtype} (init makes them {stats['mean'].dtype}; "
                      f"linen's first training update promotes them to {stat_dtype})")
        else:
            self.note(f"batch_stats kept in Flax's storage dtype {stat_dtype}")
        self.note("mode per step via apply(..., use_running_average=...); none when the case leaves it")
        fshape = case.feature_shape
        outputs = []
        for step in case.steps:
            x = jnp.asarray(step.inputs["x"], dtype=dtype)
            variables = {"params": params, "batch_stats": batch_stats}
            y, updated = module.apply(variables, x, mutable=["batch_stats"], **self._mode_kwargs(step))
            batch_stats = updated["batch_stats"]
            outputs.append({"y": _out(y),
                            "moving_mean": _out(batch_stats["mean"]).reshape(fshape),
                            "moving_variance": _out(batch_stats["var"]).reshape(fshape)})
        return outputs


class FlaxNNXAdapter(_FlaxBase):
    name = "flax.nnx"
    api = "flax.nnx.BatchNorm"

    #: nnx.BatchNorm keeps 1-D (num_features,) variables; with a tuple ``axis`` its
    #: training update fails to broadcast, so several kept axes are flattened into one.
    flatten_feature_axes = True

    def run_batch_norm(self, case):
        import jax.numpy as jnp
        from flax import nnx

        kwargs = self._kwargs(case)
        dtype = kwargs["dtype"]
        fa, ra = tuple(case.feature_axes), tuple(case.reduction_axes)
        fshape = case.feature_shape
        num_features = int(np.prod(fshape)) if fshape else 1
        flatten = len(fa) != 1 and self.flatten_feature_axes
        if flatten:
            perm = ra + fa
            inverse = tuple(int(i) for i in np.argsort(perm))
            self.note(f"kept axes {list(fa)} moved last and flattened into one axis of {num_features} "
                      "features (axis=-1), then unflattened")
            axis = -1
        else:
            axis = fa[0] if len(fa) == 1 else fa
            self.note(f"axis={axis} (Flax's axis is the kept feature axis, as in Keras)")
        layer = nnx.BatchNorm(num_features, axis=axis, rngs=nnx.Rngs(0), **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a float64 → float32 write warns about the cast
            if layer.scale is not None:
                layer.scale[...] = jnp.asarray(np.asarray(case.params["gamma"]).reshape(-1))
            if layer.bias is not None:
                layer.bias[...] = jnp.asarray(np.asarray(case.params["beta"]).reshape(-1))
            layer.mean[...] = jnp.asarray(np.asarray(case.state["moving_mean"]).reshape(-1))
            layer.var[...] = jnp.asarray(np.asarray(case.state["moving_variance"]).reshape(-1))
        self.note(f"initial moving statistics written into nnx's BatchStat variables "
                  f"(stored as {layer.mean[...].dtype})")
        self.note("mode per step via layer(x, use_running_average=...); none when the case leaves it "
                  "(the layer stays in its constructor default)")
        outputs = []
        for step in case.steps:
            x = jnp.asarray(step.inputs["x"], dtype=dtype)
            if flatten:
                moved = jnp.transpose(x, perm)
                y = layer(moved.reshape(moved.shape[:len(ra)] + (num_features,)), **self._mode_kwargs(step))
                y = jnp.transpose(y.reshape(moved.shape), inverse)
            else:
                y = layer(x, **self._mode_kwargs(step))
            outputs.append({"y": _out(y),
                            "moving_mean": _out(layer.mean[...]).reshape(fshape),
                            "moving_variance": _out(layer.var[...]).reshape(fshape)})
        return outputs
