"""Test-only adapters, loaded by the worker as ``tests.support.adapters:Name``.

They stand in for misbehaving frameworks (they are not mocks of one): the
worker machinery must survive each of them.
"""

from __future__ import annotations

import os
import time

from adapters.numpy_adapter import NumpyAdapter
from conformance.adapter import Adapter


class AbortOnSecondCase(NumpyAdapter):
    """Runs like NumPy but calls os.abort() on cases whose id contains 'abort'."""

    name = "test-abort"

    def run(self, case):
        if "abort" in case.id:
            os.abort()
        return super().run(case)


class HangOnCase(NumpyAdapter):
    """Sleeps forever on cases whose id contains 'hang'."""

    name = "test-hang"

    def run(self, case):
        if "hang" in case.id:
            time.sleep(3600)
        return super().run(case)


class Raises(Adapter):
    name = "test-raise"
    framework = "numpy"

    def run_batch_norm(self, case):
        raise RuntimeError("framework exploded\nsecond line")


class NotInstalled(Adapter):
    name = "test-missing"
    framework = "a_framework_that_is_not_installed"

    def run_batch_norm(self, case):  # pragma: no cover - never loaded
        raise AssertionError


class Injectable(NumpyAdapter):
    """NumPy, until ``CONFORMANCE_INJECT=epsilon`` is set in its worker's environment: then it
    forces epsilon to 1e-5, a semantic change the regression gate must catch."""

    name = "test-injectable"

    def run_batch_norm(self, case):
        if os.environ.get("CONFORMANCE_INJECT") == "epsilon":
            import dataclasses

            from conformance.cases import Setting

            case = dataclasses.replace(case, attributes={**case.attributes, "epsilon": Setting(1e-5)})
        return super().run_batch_norm(case)
