"""Running cases on adapters, each adapter in its own worker process.

Workers run in parallel up to ``jobs`` (default: the core count). A worker
that raises, segfaults, aborts or hangs past ``timeout`` seconds costs only the
case in flight: it becomes an ``error`` result with the reason, the worker is
restarted and the run goes on. An adapter whose framework is not installed
yields ``skipped`` for every case.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable, Iterable

from .cases import Case
from .results import Result, RunRecord
from .worker import encode

DEFAULT_TIMEOUT = 120.0
START_TIMEOUT = 300.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class WorkerGone(Exception):
    """The worker process died or stopped answering."""


class Worker:
    """One adapter's worker process, restarted on demand."""

    def __init__(self, adapter: str, python: str = sys.executable, timeout: float = DEFAULT_TIMEOUT):
        self.adapter, self.python, self.timeout = adapter, python, timeout
        self.name = adapter  # the adapter's own name once the worker said hello
        self.proc: subprocess.Popen | None = None
        self.hello: dict = {}
        self._lines: queue.Queue = queue.Queue()
        self._stderr = None

    # -- process management -----------------------------------------------------------
    def start(self) -> dict:
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen([self.python, "-m", "conformance.worker", self.adapter],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, text=True, encoding="utf-8", bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()
        self.hello = self._receive(START_TIMEOUT, "starting")["hello"]
        self.name = self.hello.get("name", self.adapter)
        return self.hello

    @staticmethod
    def _read(proc: subprocess.Popen, lines: queue.Queue) -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _receive(self, timeout: float, doing: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise WorkerGone(f"timed out after {timeout:g} s while {doing}") from None
        if line is None:
            code = self.proc.wait()
            self.stop()
            raise WorkerGone(f"worker died while {doing} ({describe_exit(code)}){self.stderr_tail()}")
        return json.loads(line)

    def stderr_tail(self, limit: int = 600) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        lines = [ln for ln in text.splitlines() if ln.strip()][-6:]
        tail = " | ".join(lines)
        return f": {tail[-limit:]}" if tail else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # -- running ------------------------------------------------------------------------
    def run_case(self, case: Case) -> Result:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        if self.hello.get("status") == "skipped":
            return Result(case=case.id, adapter=self.name, status="skipped", message=self.hello.get("reason", ""))
        start = time.perf_counter()
        try:
            self.proc.stdin.write(encode(case))
            self.proc.stdin.flush()
            return Result.from_json(self._receive(self.timeout, f"running {case.id}")["result"])
        except (WorkerGone, OSError) as exc:
            self.stop()
            message = str(exc) if isinstance(exc, WorkerGone) else f"worker pipe broke: {exc}"
            return Result(case=case.id, adapter=self.name, status="error", message=message,
                          duration_s=round(time.perf_counter() - start, 6))


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run_adapter(adapter: str, cases: list[Case], timeout: float, python: str,
                on_result: Callable[[Result], None]) -> tuple[str, dict, list[Result]]:
    """All cases on one adapter → (its name, its environment info, results)."""
    worker = Worker(adapter, python=python, timeout=timeout)
    results: list[Result] = []
    try:
        worker.start()
        info = dict(worker.hello.get("environment", {}), status=worker.hello.get("status"))
        if worker.hello.get("status") == "skipped":
            info["reason"] = worker.hello.get("reason", "")
    except WorkerGone as exc:
        info = {"status": "error", "reason": str(exc)}
    for case in cases:
        if info["status"] == "error":
            result = Result(case=case.id, adapter=worker.name, status="error",
                            message=f"adapter could not start: {info['reason']}")
        else:
            result = worker.run_case(case)
        results.append(result)
        on_result(result)
    worker.stop()
    return worker.name, info, results


def run(cases: list[Case], adapters: Iterable[str], *, jobs: int | None = None, timeout: float = DEFAULT_TIMEOUT,
        python: str = sys.executable, run_id: str | None = None,
        on_result: Callable[[Result], None] = lambda r: None) -> RunRecord:
    """Run every case on every adapter; never raises for what an adapter does."""
    adapters = list(adapters)
    record = RunRecord(run_id=run_id or datetime.now().strftime("%Y%m%d-%H%M%S"), started=now())
    record.environment = {"python": platform.python_version(), "platform": platform.platform(),
                          "machine": platform.machine(), "processor_count": os.cpu_count()}
    record.cases = {c.id: c.summary() for c in cases}
    lock = threading.Lock()

    def locked(result: Result) -> None:
        with lock:
            on_result(result)

    with ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(run_adapter, name, cases, timeout, python, locked) for name in adapters}
        for future in futures.values():
            name, info, results = future.result()
            record.adapters[name] = info
            record.results.extend(results)
    record.results.sort(key=lambda r: (r.case, r.adapter))
    record.finished = now()
    return record
