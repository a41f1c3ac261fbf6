"""Pieces the TensorFlow adapters share (``tf.nn``, ``tf.nn.fused``, ``tf_keras``, ``tf_keras.fused``).

* :func:`_tf` imports TensorFlow quietly;
* :class:`FusedLayout` lays a case's input out for a one-channel-axis fused kernel;
* :func:`wants_gradients` / :func:`tape_gradients`: gradients of ``L = sum(dy * y)``
  with ``tf.GradientTape`` (``tape.gradient(y, [x, *params], output_gradients=dy)``);
* :func:`moving_keep`: the weight of the old moving statistic at a training step
  (a momentum, or ``1 - 1/t`` for ``momentum: cumulative``), for the paths where
  the user writes the moving update;
* :func:`to_numpy`: a step's outputs as NumPy arrays, statistics reshaped to the
  case's ``feature_shape``.
"""

from __future__ import annotations

import math
import os

import numpy as np

GRADIENTS = ("dx", "dgamma", "dbeta")
STATS = ("moving_mean", "moving_variance", "batch_mean", "batch_variance")


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def wants_gradients(step) -> bool:
    """True when the step is judged on dx, dgamma or dbeta."""
    return any(name in step.expected for name in GRADIENTS)


def tape_gradients(adapter, tf, step, forward, x, params: dict):
    """Run ``forward()`` (which reads ``x`` and ``params``) under a GradientTape.

    Returns ``(y, grads)``: ``grads`` maps ``dx`` and ``d<name>`` for each entry
    of ``params`` (tensors or variables, watched explicitly so that frozen,
    non-trainable variables get a gradient too) to ``tape.gradient(y, ...,
    output_gradients=dy)``, ``dy`` in y's dtype. Without gradients wanted it is
    a plain ``forward()`` call and ``grads`` is empty.
    """
    if not wants_gradients(step):
        return forward(), {}
    adapter.note("gradients: tf.GradientTape, tape.gradient(y, [x, gamma, beta], output_gradients=dy)")
    names = list(params)
    with tf.GradientTape() as tape:
        tape.watch(x)
        for value in params.values():
            tape.watch(value)
        y = forward()
    dy = tf.constant(step.inputs["dy"], dtype=y.dtype)
    grads = tape.gradient(y, [x, *params.values()], output_gradients=dy)
    out = {"dx": grads[0]}
    for name, grad in zip(names, grads[1:]):
        if grad is not None:
            out[f"d{name}"] = grad
    return y, out


def moving_keep(case, trained: int) -> float:
    """Weight of the old moving value at the ``trained``-th training step (user-written update)."""
    momentum = case.attr("momentum")
    return 1.0 - 1.0 / trained if momentum == "cumulative" else float(momentum)


def numpy_of(value) -> np.ndarray:
    """A tensor or variable as a NumPy array (``np.asarray`` fails on 0-d bfloat16 tensors)."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def to_numpy(out: dict, case) -> dict:
    """NumPy outputs; statistics take ``feature_shape``, parameter gradients ``param_shape``."""
    result = {}
    for name, value in out.items():
        arr = numpy_of(value)
        if name in STATS:
            arr = arr.reshape(case.feature_shape)
        elif name in ("dgamma", "dbeta"):
            arr = arr.reshape(case.param_shape)
        result[name] = arr
    return result


class FusedLayout:
    """How a case's input is laid out for a fused (one channel axis) kernel.

    4-D/5-D inputs whose single kept axis is last or at 1 are passed as they are
    (NHWC/NDHWC or NCHW/NCDHW). Anything else is transposed to (reduced...,
    kept...) and reshaped to NHWC ``(prod(reduced), 1, 1, prod(kept))``;
    ``restore`` undoes it. Statistics per channel are the same numbers either
    way: the kernel reduces over every non-channel axis.
    """

    def __init__(self, case):
        nd, kept, red = case.ndim, tuple(case.feature_axes), tuple(case.reduction_axes)
        self.shape = tuple(case.steps[0].inputs["x"].shape)
        self.perm = None
        self.channels = int(math.prod(case.feature_shape))
        if nd in (4, 5) and kept == (nd - 1,):
            self.data_format = "NHWC" if nd == 4 else "NDHWC"
            self.channel_axis = nd - 1
            self.note = f"input passed as {self.data_format}"
        elif nd in (4, 5) and kept == (1,):
            self.data_format = "NCHW" if nd == 4 else "NCDHW"
            self.channel_axis = 1
            self.note = f"input passed as {self.data_format}"
        else:
            self.data_format = "NHWC"
            self.channel_axis = 3
            self.perm = red + kept
            self.inverse = tuple(int(i) for i in np.argsort(self.perm))
            moved = "" if self.perm == tuple(range(nd)) else f"transposed to axes {list(self.perm)} and "
            self.note = (f"fused kernel needs one channel axis: x {list(self.shape)} {moved}reshaped to "
                         f"NHWC {list(self.fused_shape(self.shape))} (reduced, 1, 1, kept)")

    def fused_shape(self, shape) -> tuple[int, ...]:
        if self.perm is None:
            return tuple(shape)
        return (int(math.prod(shape)) // max(self.channels, 1), 1, 1, self.channels)

    def to_fused(self, tf, x):
        if self.perm is None:
            return x
        return tf.reshape(tf.transpose(x, self.perm), self.fused_shape(x.shape))

    def restore(self, tf, y, shape):
        if self.perm is None:
            return y
        return tf.transpose(tf.reshape(y, [shape[a] for a in self.perm]), self.inverse)
