"""``flax.linen``: BatchNorm, LayerNorm, RMSNorm, GroupNorm and InstanceNorm through ``init``/``apply``.

The case's gamma/beta are written into the ``params`` collection that ``init``
builds (names, shapes and dtypes are Flax's); BatchNorm's ``batch_stats`` are
mutable in every call and carried from step to step. Gradients of
``L = sum(dy * y)``: ``jax.vjp`` of ``model.apply`` closed over everything but
``x`` and the case's active parameters.
"""

from __future__ import annotations

import numpy as np

from .flax_common import FlaxBase, flax_name
from .jax_common import gradient_outputs, out, wants_gradients


def _like(ref, values):
    import jax.numpy as jnp

    return jnp.asarray(np.asarray(values).reshape(ref.shape), dtype=ref.dtype)


class FlaxLinenAdapter(FlaxBase):
    name = "flax.linen"
    api = "flax.linen (BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm)"

    def _call(self, case, step, fn, x, params):
        """``fn(x, params) -> (y, aux)`` with, when the step asks, its vjp. → (outputs, aux)."""
        import jax
        import jax.numpy as jnp

        if not wants_gradients(step):
            y, aux = fn(x, params)
            return {"y": out(y)}, aux
        y, vjp, aux = jax.vjp(fn, x, params, has_aux=True)
        dx, grads = vjp(jnp.asarray(step.inputs["dy"], dtype=y.dtype))
        names = {flax_name(n): n for n in ("gamma", "beta")}
        return {"y": out(y), **gradient_outputs(case, dx, {names[k]: v for k, v in grads.items()})}, aux

    def run_batch_norm(self, case):
        import jax
        import jax.numpy as jnp
        from flax import linen as nn

        kwargs = self._batch_norm_kwargs(case)
        fa = tuple(case.feature_axes)
        axis = fa[0] if len(fa) == 1 else fa
        self.note(f"axis={axis} (Flax's axis is the kept feature axis, as in Keras)")
        module = nn.BatchNorm(axis=axis, **kwargs)
        dtype = kwargs["dtype"]
        x0 = jnp.asarray(case.steps[0].inputs["x"], dtype=dtype)
        # init only builds the variables (names, shapes and Flax's own dtypes); its flag is not the case's.
        template = module.init(jax.random.key(0), x0, use_running_average=True)
        params = {flax_name(n): _like(template["params"][flax_name(n)], case.params[n])
                  for n in ("gamma", "beta") if case.has_param(n)}
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
        self.note_gradients(case, "jax.vjp of model.apply (mutable batch_stats as aux) w.r.t. x and params")
        fshape = case.feature_shape
        outputs = []
        for step in case.steps:
            x = jnp.asarray(step.inputs["x"], dtype=dtype)
            mode = self._mode_kwargs(step)

            def fn(x_, p_, stats_=batch_stats, mode_=mode):
                y, updated = module.apply({"params": p_, "batch_stats": stats_}, x_, mutable=["batch_stats"], **mode_)
                return y, updated["batch_stats"]

            result, batch_stats = self._call(case, step, fn, x, params)
            result["moving_mean"] = out(batch_stats["mean"]).reshape(fshape)
            result["moving_variance"] = out(batch_stats["var"]).reshape(fshape)
            outputs.append(result)
        return outputs

    def _run_stateless(self, case):
        import jax
        import jax.numpy as jnp
        from flax import linen as nn

        layout = self._layout(case)
        module = getattr(nn, layout.cls)(**layout.kwargs)
        dtype = layout.kwargs["dtype"]
        x0 = layout.to_flax(jnp.asarray(case.steps[0].inputs["x"], dtype=dtype))
        template = dict(module.init(jax.random.key(0), x0).get("params", {}))
        params = {flax_name(n): _like(template[flax_name(n)], case.params[n]) for n in layout.params}
        fixed = {k: v for k, v in template.items() if k not in params}  # Flax's own initial values
        if fixed:
            self.note(f"{', '.join(sorted(fixed))} kept at Flax's initial value (the case has no such parameter)")
        self.note_gradients(case, "jax.vjp of model.apply w.r.t. x and params")

        def fn(x_, p_):
            y = module.apply({"params": {**fixed, **p_}}, layout.to_flax(x_))
            return layout.from_flax(y), None

        return [self._call(case, step, fn, jnp.asarray(step.inputs["x"], dtype=dtype), params)[0]
                for step in case.steps]

    run_layer_norm = _run_stateless
    run_rms_norm = _run_stateless
    run_group_norm = _run_stateless
    run_instance_norm = _run_stateless
