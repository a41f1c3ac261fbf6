"""pytest plugin: every (case, adapter) is a test item.

    pytest --conformance cases/ [--conformance-adapter NAME ...] [-k two-samples]

Item ids read ``<file>::<case id>[<adapter>]``. A diverging or erroring item
fails and prints the divergence (figures per output) with its diagnosis;
a divergence declared in ``known-divergences/`` is an xfail (a declared one that
passes warns); ``unsupported`` and ``skipped`` items are skipped with their reason. Adapters run in the same
worker processes as ``conformance run`` (one per adapter, reused across items).
"""

from __future__ import annotations

import warnings

import pytest

from . import known
from .registry import discover
from .errors import CaseErrors
from .load import load_cases
from .runner import DEFAULT_TIMEOUT, Worker


def pytest_addoption(parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--conformance", action="store_true", help="collect YAML case files as tests")
    group.addoption("--conformance-adapter", action="append", default=[], metavar="NAME",
                    help="adapter to run (repeatable; default: every registered adapter)")
    group.addoption("--conformance-timeout", type=float, default=DEFAULT_TIMEOUT,
                    help="seconds per case before the worker is killed")


def pytest_collect_file(file_path, parent):
    if (parent.config.getoption("conformance") and file_path.suffix in (".yaml", ".yml")
            and known.DIRNAME not in file_path.parts):
        return CaseFile.from_parent(parent, path=file_path)
    return None


def pytest_unconfigure(config) -> None:
    for worker in getattr(config, "_conformance_workers", {}).values():
        worker.stop()


class CaseFile(pytest.File):
    def collect(self):
        try:
            cases = load_cases([self.path])
        except CaseErrors as exc:
            raise self.CollectError(str(exc)) from None
        adapters = self.config.getoption("conformance_adapter") or list(discover())
        for case in cases:
            for adapter in adapters:
                yield CaseItem.from_parent(self, name=f"{case.id}[{adapter}]", case=case, adapter=adapter)


class CaseFailure(Exception):
    def __init__(self, result):
        self.result = result


class CaseItem(pytest.Item):
    def __init__(self, *, case, adapter, **kwargs):
        super().__init__(**kwargs)
        self.case, self.adapter = case, adapter

    def _worker(self) -> Worker:
        workers = self.config.__dict__.setdefault("_conformance_workers", {})
        if self.adapter not in workers:
            workers[self.adapter] = Worker(self.adapter, timeout=self.config.getoption("conformance_timeout"))
        return workers[self.adapter]

    def runtest(self) -> None:
        worker = self._worker()
        result = worker.run_case(self.case)
        declarations = self.config.__dict__.setdefault("_conformance_known", {})
        if self.path.parent not in declarations:
            declarations[self.path.parent] = known.load(known.default_paths([self.path]))
        known.judge(result, declarations[self.path.parent], worker.hello.get("environment", {}))
        self.user_properties.append(("status", result.status))
        if result.status == "expected-divergence":
            pytest.xfail(f"known divergence: {result.declared['reason']} ({result.declared['file']}:"
                         f"{result.declared['line']})")
        if result.status == "xpass":
            warnings.warn(f"{self.case.id} on {self.adapter} passes, but {result.declared['file']}:"
                          f"{result.declared['line']} declares a divergence", stacklevel=1)
        if result.status in ("diverge", "error"):
            raise CaseFailure(result)
        if result.status in ("unsupported", "skipped"):
            pytest.skip(f"{result.status}: {result.message}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailure):
            return describe(excinfo.value.result, self.case)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, (self.case.line or 1) - 1, f"{self.case.id} on {self.adapter}"


def describe(result, case) -> str:
    """A divergence or error as plain text, one output per block."""
    lines = [f"{result.status}: {case.id} on {result.adapter} ({result.api})", f"source: {case.source}",
             f"case file: {case.path}:{case.line}"]
    if result.status == "error":
        return "\n".join(lines + [result.message])
    for note in result.notes:
        lines.append(f"translation: {note}")
    lines.append(f"diagnosis: {(result.diagnosis or {}).get('summary', 'unexplained')}")
    for name, o in result.outputs.items():
        if o.get("status") != "diverge":
            continue
        lines += [f"  {name}: {o.get('message', '')}",
                  f"    expected {o.get('expected_head')}",
                  f"    actual   {o.get('actual_head')}",
                  f"    max_abs_error={o.get('max_abs_error')} max_rel_error={o.get('max_rel_error')} "
                  f"max_ulp={o.get('max_ulp')} worst at {o.get('worst_index')}: "
                  f"expected {o.get('worst_expected')} got {o.get('worst_actual')}"]
    return "\n".join(lines)
