"""``flax.nnx``: BatchNorm, LayerNorm, RMSNorm, GroupNorm and InstanceNorm as stateful modules.

The case's gamma/beta (and BatchNorm's moving statistics) are written into the
module's variables; nnx keeps them 1-D, ``(num_features,)``, and reshapes them
to the feature axes. Gradients of ``L = sum(dy * y)``: ``nnx.value_and_grad``
w.r.t. the module's ``Param`` variables and ``x`` (``y`` as aux); BatchNorm's
statistic updates made inside it are written back to the module, as nnx does.
"""

from __future__ import annotations

import warnings

import numpy as np

from .flax_common import FlaxBase, flax_name
from .jax_common import gradient_outputs, out, wants_gradients


def _write(variable, values) -> None:
    """Set an nnx variable from case values, kept in the variable's own dtype."""
    import jax.numpy as jnp

    current = variable[...]
    variable[...] = jnp.asarray(np.asarray(values).reshape(current.shape), dtype=current.dtype)


class FlaxNNXAdapter(FlaxBase):
    name = "flax.nnx"
    api = "flax.nnx (BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm)"

    #: nnx.BatchNorm keeps 1-D (num_features,) variables; with a tuple ``axis`` its
    #: training update fails to broadcast, so several kept axes are flattened into one.
    flatten_feature_axes = True

    def _call(self, case, step, layer, forward, x, names):
        """``forward(layer, x) -> y``; with nnx.value_and_grad when the step asks for gradients."""
        import jax.numpy as jnp
        from flax import nnx

        if not wants_gradients(step):
            return {"y": out(forward(layer, x))}
        dy = jnp.asarray(step.inputs["dy"])

        def loss(model, x_):
            y = forward(model, x_)
            return jnp.sum(dy.astype(y.dtype) * y), y

        (_, y), (grads, dx) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(layer, x)
        return {"y": out(y), **gradient_outputs(case, dx, {n: grads[flax_name(n)][...] for n in names})}

    def _set_params(self, case, layer, names) -> None:
        for name in names:
            _write(getattr(layer, flax_name(name)), case.params[name])

    def run_batch_norm(self, case):
        import jax.numpy as jnp
        from flax import nnx

        kwargs = self._batch_norm_kwargs(case)
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
        names = tuple(n for n in ("gamma", "beta") if case.has_param(n))
        self._set_params(case, layer, names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a float64 → float32 write warns about the cast
            layer.mean[...] = jnp.asarray(np.asarray(case.state["moving_mean"]).reshape(-1))
            layer.var[...] = jnp.asarray(np.asarray(case.state["moving_variance"]).reshape(-1))
        self.note(f"initial moving statistics written into nnx's BatchStat variables "
                  f"(stored as {layer.mean[...].dtype})")
        self.note("mode per step via layer(x, use_running_average=...); none when the case leaves it "
                  "(the layer stays in its constructor default)")
        self.note_gradients(case, "nnx.value_and_grad w.r.t. the layer's Params and x")
        outputs = []
        for step in case.steps:
            mode = self._mode_kwargs(step)

            def forward(model, x, mode_=mode):
                if not flatten:
                    return model(x, **mode_)
                moved = jnp.transpose(x, perm)
                y = model(moved.reshape(moved.shape[:len(ra)] + (num_features,)), **mode_)
                return jnp.transpose(y.reshape(moved.shape), inverse)

            result = self._call(case, step, layer, forward, jnp.asarray(step.inputs["x"], dtype=dtype), names)
            result["moving_mean"] = out(layer.mean[...]).reshape(fshape)
            result["moving_variance"] = out(layer.var[...]).reshape(fshape)
            outputs.append(result)
        return outputs

    def _run_stateless(self, case):
        import jax.numpy as jnp
        from flax import nnx

        layout = self._layout(case)
        num_features = case.feature_shape[0] if case.op in ("group_norm", "instance_norm") else layout.num_features
        layer = getattr(nnx, layout.cls)(num_features, rngs=nnx.Rngs(0), **layout.kwargs)
        self._set_params(case, layer, layout.params)
        self.note(f"nnx.{layout.cls}(num_features={num_features}, ...): 1-D parameters of {num_features}")
        self.note_gradients(case, "nnx.value_and_grad w.r.t. the layer's Params and x")
        dtype = layout.kwargs["dtype"]

        def forward(model, x):
            return layout.from_flax(model(layout.to_flax(x)))

        return [self._call(case, step, layer, forward, jnp.asarray(step.inputs["x"], dtype=dtype), layout.params)
                for step in case.steps]

    run_layer_norm = _run_stateless
    run_rms_norm = _run_stateless
    run_group_norm = _run_stateless
    run_instance_norm = _run_stateless
