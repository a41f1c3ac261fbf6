"""The worker process: runs one adapter on the cases it is sent.

``python -m conformance.worker ADAPTER`` (a registered name or ``module:Class``).
Protocol, one JSON object per line on the worker's own channel (file
descriptor 1 as inherited; the framework's own prints go to stderr):

1. the worker says ``{"hello": {"status": "ready"|"skipped", "reason", "environment"}}``;
2. the parent sends ``{"case": <base64 pickle of the loaded Case>}``; the
   worker answers ``{"result": Result.to_json()}``; repeat;
3. the parent closes stdin; the worker exits.

A crash, abort or hang costs only the case in flight: the parent sees the
channel close (or time out), records an ``error`` and starts a new worker.
"""

from __future__ import annotations

import os
import sys

from .evaluate import evaluate
from .protocol import decode_case
from .registry import resolve
from .results import dumps


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

    for line in sys.stdin:
        send({"result": evaluate(decode_case(line), adapter).to_json()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
