"""Harness overhead per adapter: the whole `conformance run` against a floor.

For each adapter, two things are timed, each in a fresh process, REPEAT times:

* harness: ``conformance run CASES --adapter NAME --results TMP`` (CLI start,
  YAML loading and validation, the worker process, the protocol, comparison,
  results JSON);
* floor: a process that imports the framework and runs the same adapter code
  on the same cases, already loaded (unpickled), with no harness around it.

It prints the median wall time and the peak RSS of each, and their ratio.
Run it in the environment that holds the frameworks (e.g. a nox venv):

    python benchmarks/harness_overhead.py --adapter numpy --adapter torch.nn [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = r"""
import pickle, sys
from conformance.registry import resolve
adapter = resolve(sys.argv[1])
adapter.load()
for case in pickle.load(open(sys.argv[2], "rb")):
    try:
        adapter.run(case)
    except Exception:
        pass
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds, and peak RSS (MiB) of the largest process in the command's tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    _, _, usage = os.wait4(proc.pid, 0)  # Linux: includes the child's waited-for children
    proc.returncode = 0
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", action="append", required=True)
    parser.add_argument("--cases", default="cases")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from conformance.load import load_cases

    cases = load_cases([args.cases])
    tmp = Path(tempfile.mkdtemp())
    pickled = tmp / "cases.pkl"
    pickled.write_bytes(pickle.dumps(cases))
    print(f"{len(cases)} cases, {args.repeat} runs each, medians; RSS: the largest process of the run, MiB")
    print(f"{'adapter':18} {'harness s':>10} {'floor s':>8} {'ratio':>6} {'overhead':>9} {'harness RSS':>12} {'floor RSS':>10}")
    for name in args.adapter:
        harness = [timed([sys.executable, "-m", "conformance", "run", args.cases, "-a", name,
                          "--results", str(tmp / "r.json")]) for _ in range(args.repeat)]
        floor = [timed([sys.executable, "-c", FLOOR, name, str(pickled)]) for _ in range(args.repeat)]
        h = statistics.median(w for w, _ in harness)
        f = statistics.median(w for w, _ in floor)
        hm = statistics.median(m for _, m in harness)
        fm = statistics.median(m for _, m in floor)
        print(f"{name:18} {h:10.3f} {f:8.3f} {h / f:6.2f} {100 * (h - f) / f:8.1f}% {hm:12.0f} {fm:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
