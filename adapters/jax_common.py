"""What the three JAX rows share: dtypes, float64 mode, gradient requests, output conversion.

Used by :mod:`adapters.jax_numpy`, :mod:`adapters.flax_linen` and
:mod:`adapters.flax_nnx` (entry points in :mod:`adapters.jax_adapter`).
"""

from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.errors import Unsupported

DTYPES = ("float16", "bfloat16", "float32", "float64")
GRADIENTS = ("dx", "dgamma", "dbeta")
#: case parameter name -> Flax parameter name
FLAX_PARAM = {"gamma": "scale", "beta": "bias"}


def enable_x64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def jnp_dtype(case):
    import jax.numpy as jnp

    if case.dtype not in DTYPES:
        raise Unsupported(f"unknown dtype {case.dtype}")
    return jnp.dtype(case.dtype)


def out(value) -> np.ndarray:
    """A JAX array → NumPy in its own dtype (bfloat16 comes back as ml_dtypes.bfloat16)."""
    return np.asarray(value)


def wants_gradients(step) -> bool:
    """True when the step is judged on dx, dgamma or dbeta."""
    return any(name in step.expected for name in GRADIENTS)


def gradient_outputs(case, dx, grads: dict) -> dict:
    """``{"dx", "dgamma", "dbeta"}`` from dL/dx and the parameter gradients keyed by case name."""
    result = {"dx": out(dx)}
    for name, grad in grads.items():
        result["d" + name] = out(grad).reshape(case.param_shape)
    return result


class JaxBase(Adapter):
    framework = "jax"

    def load(self) -> None:
        enable_x64()
        import jax  # noqa: F401
        import jax.numpy  # noqa: F401

    def device(self) -> str:
        import jax

        return str(jax.devices()[0].platform)

    def note_gradients(self, case, how: str) -> None:
        if any(wants_gradients(step) for step in case.steps):
            self.note(f"gradients of L = sum(dy * y): {how}")
