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
from typing import TYPE_CHECKING, Callable, Iterable

from .protocol import encode_case
from .results import Result, RunRecord

if TYPE_CHECKING:
    from .cases import Case

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
    def spawn(self) -> None:
        """Start the process without waiting for it (its imports overlap the parent's work)."""
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen([self.python, "-m", "conformance.worker", self.adapter],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, text=True, encoding="utf-8", bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()

    def start(self) -> dict:
        """Spawn (unless already spawned) and wait for the worker's hello."""
        if self.proc is None or self.proc.poll() is not None:
            self.spawn()
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
        self.hello = {}
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
        if self.proc is None or self.proc.poll() is not None or not self.hello:
            self.start()
        if self.hello.get("status") == "skipped":
            return Result(case=case.id, adapter=self.name, status="skipped", message=self.hello.get("reason", ""))
        start = time.perf_counter()
        try:
            self.proc.stdin.write(encode_case(case))
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


def launch(adapters: Iterable[str], *, jobs: int | None = None, timeout: float = DEFAULT_TIMEOUT,
           python: str = sys.executable) -> dict[str, Worker]:
    """Workers for ``adapters``; the first ``jobs`` are spawned at once, so that
    their framework imports overlap whatever the parent does next (loading cases)."""
    workers = {name: Worker(name, python=python, timeout=timeout) for name in adapters}
    for worker in list(workers.values())[:_jobs(jobs)]:
        worker.spawn()
    return workers


def _jobs(jobs: int | None) -> int:
    return max(1, jobs or os.cpu_count() or 1)


def run_adapter(worker: Worker, cases: list[Case],
                on_result: Callable[[Result], None]) -> tuple[str, dict, list[Result]]:
    """All cases on one adapter's worker → (its name, its environment info, results)."""
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
        python: str = sys.executable, run_id: str | None = None, workers: dict[str, Worker] | None = None,
        on_result: Callable[[Result], None] = lambda r: None) -> RunRecord:
    """Run every case on every adapter; never raises for what an adapter does.

    ``workers`` may come from :func:`launch` (already spawned); others are made here.
    """
    adapters = list(adapters)
    workers = workers or launch(adapters, jobs=jobs, timeout=timeout, python=python)
    record = RunRecord(run_id=run_id or datetime.now().strftime("%Y%m%d-%H%M%S"), started=now())
    record.environment = {"python": platform.python_version(), "platform": platform.platform(),
                          "machine": platform.machine(), "processor_count": os.cpu_count()}
    record.cases = {c.id: c.summary() for c in cases}
    lock = threading.Lock()

    def locked(result: Result) -> None:
        with lock:
            on_result(result)

    with ThreadPoolExecutor(max_workers=_jobs(jobs)) as pool:
        futures = {name: pool.submit(run_adapter, workers[name], cases, locked) for name in adapters}
        for future in futures.values():
            name, info, results = future.result()
            record.adapters[name] = info
            record.results.extend(results)
    record.results.sort(key=lambda r: (r.case, r.adapter))
    record.finished = now()
    return record
