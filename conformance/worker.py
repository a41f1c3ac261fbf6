"""The worker process: runs one adapter on the cases it is sent.

``python -m conformance.worker ADAPTER`` (a registered name or ``module:Class``).
Protocol, one JSON object per line on the worker's own channel (file
descriptor 1 as inherited; the framework's own prints go to stderr):

1. the worker says ``{"hello": {"status": "ready"|"skipped", "reason", "environment"}}``;
2. the parent sends ``{"path": FILE, "id": CASE_ID}``; the worker answers
   ``{"result": Result.to_json()}``; repeat;
3. the parent closes stdin; the worker exits.

A crash, abort or hang costs only the case in flight: the parent sees the
channel close (or time out), records an ``error`` and starts a new worker.
"""

from __future__ import annotations

import json
import os
import sys

from .adapter import Adapter, discover, instantiate
from .evaluate import evaluate
from .load import load_cases
from .results import Result, dumps


def resolve(name: str) -> Adapter:
    """A registered adapter name, or ``module:Class``."""
    target = discover().get(name) or (name if ":" in name else None)
    if target is None:
        known = ", ".join(discover()) or "none"
        raise LookupError(f"unknown adapter {name!r} (registered: {known})")
    return instantiate(target)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything the framework prints goes to stderr, not the protocol
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        channel.write(dumps(obj).replace("\n", "") + "\n")
        channel.flush()

    adapter = resolve(argv[0])
    try:
        adapter.load()
        environment = adapter.environment()
    except ImportError as exc:
        send({"hello": {"name": adapter.name, "status": "skipped",
                        "reason": f"{adapter.framework} is not installed ({exc})"}})
        return 0
    send({"hello": {"name": adapter.name, "status": "ready", "environment": environment}})

    cache: dict[str, dict] = {}
    for line in sys.stdin:
        request = json.loads(line)
        path, case_id = request["path"], request["id"]
        if path not in cache:
            cache[path] = {c.id: c for c in load_cases([path])}
        case = cache[path].get(case_id)
        if case is None:
            result = Result(case=case_id, adapter=adapter.name, status="error", message=f"no case {case_id!r} in {path}")
        else:
            result = evaluate(case, adapter)
        send({"result": result.to_json()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
