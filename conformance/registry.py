"""Finding adapters: the ``conformance.adapters`` entry-point group.

Kept free of NumPy and frameworks so the parent process can name and launch
workers before it imports anything heavy.
"""

from __future__ import annotations

import importlib
import importlib.metadata

ENTRY_POINT_GROUP = "conformance.adapters"


def discover() -> dict[str, str]:
    """Adapter name → ``module:Class`` for every registered adapter."""
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return dict(sorted(found.items()))


def instantiate(target: str):
    """Import ``module:Class`` and build the adapter (does not load the framework)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


def resolve(name: str):
    """A registered adapter name, or ``module:Class``, → an adapter instance."""
    target = discover().get(name) or (name if ":" in name else None)
    if target is None:
        known = ", ".join(discover()) or "none"
        raise LookupError(f"unknown adapter {name!r} (registered: {known})")
    return instantiate(target)
