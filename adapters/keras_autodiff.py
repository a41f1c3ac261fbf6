"""Gradients through a Keras 3 layer call, with each backend's own autodiff.

``call_with_gradients(adapter, layer, x, dy, call_kwargs, variables)`` calls
``layer(x, **call_kwargs)`` once (so a training call updates the moving
statistics exactly as a plain call does) and returns ``(y, dx, [dL/dv for v in
variables])`` for ``L = sum(dy * y)``:

* tensorflow: ``tf.GradientTape`` watching ``x`` and the variables,
  ``tape.gradient(y, [x, *variables], output_gradients=dy)``;
* jax: ``jax.vjp`` of ``layer.stateless_call`` (the JAX way to differentiate a
  Keras layer), with the new non-trainable variables (moving statistics)
  assigned back to the layer afterwards;
* torch: autograd, ``y.backward(dy)`` then ``x.grad`` and each variable's
  ``.grad``;
* numpy: no autodiff, ``Unsupported``.

The variables are differentiated whether or not they are trainable (a frozen
layer's gamma still has a gradient; the adapter asks for it explicitly, as
``tape.watch`` does).
"""

from __future__ import annotations

from conformance.errors import Unsupported


def call_with_gradients(adapter, layer, x, dy, call_kwargs: dict, variables: list):
    backend = adapter.backend
    if backend == "numpy":
        raise Unsupported("the Keras numpy backend has no automatic differentiation: it runs inference only "
                          "(its trainer raises 'fit not implemented for NumPy backend'; no tape, vjp or backward)")
    return {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}[backend](
        adapter, layer, x, dy, call_kwargs, variables)


def _tensorflow(adapter, layer, x, dy, call_kwargs, variables):
    import tensorflow as tf

    adapter.note("gradients: tf.GradientTape, tape.gradient(y, [x, ...variables], output_gradients=dy)")
    raw = [v.value for v in variables]  # the tf.Variable behind each keras.Variable
    with tf.GradientTape() as tape:
        tape.watch(x)
        for v in raw:
            tape.watch(v)
        y = layer(x, **call_kwargs)
    grads = tape.gradient(y, [x, *raw], output_gradients=dy)
    return y, grads[0], list(grads[1:])


def _jax(adapter, layer, x, dy, call_kwargs, variables):
    import jax

    adapter.note("gradients: jax.vjp of layer.stateless_call(trainable, non_trainable, x); the returned "
                 "non-trainable variables are assigned back to the layer")
    trainable, frozen = list(layer.trainable_variables), list(layer.non_trainable_variables)

    def where(v):
        for kind, group in ((0, trainable), (1, frozen)):
            for i, w in enumerate(group):
                if w is v:
                    return kind, i
        raise RuntimeError(f"variable {v.path} is not a variable of layer {layer.name}")

    slots = [where(v) for v in variables]

    def forward(x_, *values):
        groups = [[w.value for w in trainable], [w.value for w in frozen]]
        for (kind, i), value in zip(slots, values):
            groups[kind][i] = value
        y_, new_frozen = layer.stateless_call(groups[0], groups[1], x_, **call_kwargs)
        return y_, new_frozen

    y, vjp, new_frozen = jax.vjp(forward, x, *[v.value for v in variables], has_aux=True)
    grads = vjp(dy)
    for w, value in zip(frozen, new_frozen):
        w.assign(value)
    return y, grads[0], list(grads[1:])


def _torch(adapter, layer, x, dy, call_kwargs, variables):
    adapter.note("gradients: torch autograd, x.requires_grad_(), y.backward(dy), then x.grad and each "
                 "variable's .grad")
    params = [v.value for v in variables]  # the torch.nn.Parameter behind each keras.Variable
    for p in params:
        p.grad = None
        p.requires_grad_(True)
    x = x.detach().requires_grad_(True)
    y = layer(x, **call_kwargs)
    y.backward(dy)
    return y.detach(), x.grad, [p.grad for p in params]
