"""JAX and Flax: the entry points of the three JAX rows (``pyproject.toml``).

* ``jax.numpy`` (:mod:`adapters.jax_numpy`): every op written by hand in
  ``jax.numpy`` as a careful user writes it, under ``jax.jit``; gradients with
  ``jax.vjp``.
* ``flax.linen`` (:mod:`adapters.flax_linen`): ``nn.BatchNorm``,
  ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.GroupNorm``, ``nn.InstanceNorm``
  through ``init``/``apply``; gradients with ``jax.vjp`` over ``model.apply``.
* ``flax.nnx`` (:mod:`adapters.flax_nnx`): the same five nnx modules, stateful;
  gradients with ``nnx.value_and_grad``.

How a case becomes Flax constructor arguments (defaults, what is unsupported)
is in :mod:`adapters.flax_common`. float64 needs ``jax_enable_x64``; ``load()``
turns it on for the worker.
"""

from __future__ import annotations

from .flax_linen import FlaxLinenAdapter
from .flax_nnx import FlaxNNXAdapter
from .jax_numpy import JaxNumpyAdapter

__all__ = ["JaxNumpyAdapter", "FlaxLinenAdapter", "FlaxNNXAdapter"]
