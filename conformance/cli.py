"""The ``conformance`` command.

    conformance run [PATHS] [--adapter NAME ...] [--report-dir DIR] [--results FILE]
    conformance validate [PATHS]
    conformance list [PATHS]
    conformance report RESULTS.json ... [--report-dir DIR] [--run-id ID]
    conformance schema

PATHS default to ``cases``. Exit codes: 0 every result passed (or was
unsupported/skipped); 1 some result diverged or errored; 2 bad input or usage
(a malformed case, an unknown adapter, a missing file).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from . import runner
from .errors import CaseErrors
from .registry import discover

# Heavier modules (NumPy, jsonschema, rich, the loader) are imported inside the
# commands: `run` launches its workers first, so their framework imports
# overlap the parent's own start-up and case loading.

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2


def _out():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conformance", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run cases on adapters and write a report")
    run.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases)")
    run.add_argument("--adapter", "-a", action="append", dest="adapters", metavar="NAME",
                     help="adapter to run (repeatable; a registered name or module:Class); default: all registered")
    run.add_argument("--report-dir", default="reports", type=Path, help="reports go to DIR/<run-id>/ (default: reports)")
    run.add_argument("--run-id", help="name of the run folder (default: a timestamp)")
    run.add_argument("--results", type=Path, metavar="FILE",
                     help="write only the results JSON to FILE (for merging later) instead of a report folder")
    run.add_argument("--jobs", "-j", type=int, default=None, help="worker processes at once (default: core count)")
    run.add_argument("--timeout", type=float, default=runner.DEFAULT_TIMEOUT, help="seconds per case before a worker is killed")
    run.add_argument("-k", dest="select", metavar="TEXT", help="only cases whose id contains TEXT")

    val = sub.add_parser("validate", help="check case files; one line per mistake")
    val.add_argument("paths", nargs="*", default=["cases"])

    lst = sub.add_parser("list", help="list cases and registered adapters")
    lst.add_argument("paths", nargs="*", default=["cases"])

    rep = sub.add_parser("report", help="merge results JSON files and render every report format")
    rep.add_argument("results", nargs="+", type=Path)
    rep.add_argument("--report-dir", default="reports", type=Path)
    rep.add_argument("--run-id")
    rep.add_argument("--adapter", action="append", dest="adapters", metavar="NAME",
                     help="an adapter that must appear (missing results become skipped)")

    sub.add_parser("schema", help="print the JSON schema of a case document")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": cmd_run, "validate": cmd_validate, "list": cmd_list,
                "report": cmd_report, "schema": cmd_schema}[args.command](args)
    except CaseErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE


class UsageError(Exception):
    pass


def _exit_code(record) -> int:
    return EXIT_DIVERGED if any(r.status in ("diverge", "error") for r in record.results) else EXIT_OK


def cmd_run(args) -> int:
    registered = discover()
    adapters = args.adapters or list(registered)
    unknown = [a for a in adapters if a not in registered and ":" not in a]
    if unknown:
        raise UsageError(f"unknown adapter {', '.join(unknown)} (registered: {', '.join(registered) or 'none'})")
    workers = runner.launch(adapters, jobs=args.jobs, timeout=args.timeout)
    try:
        from .load import load_cases

        cases = load_cases(args.paths)
    except BaseException:
        for worker in workers.values():
            worker.stop()
        raise
    if args.select:
        cases = [c for c in cases if args.select in c.id]
    from . import results as results_io
    from . import terminal
    from .report import write_reports

    with terminal.progress(len(cases) * len(adapters)) as advance:
        record = runner.run(cases, adapters, jobs=args.jobs, timeout=args.timeout, run_id=args.run_id,
                            workers=workers, on_result=advance)
    out = _out()
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        results_io.write(record, args.results)
        where = args.results
    else:
        where = write_reports(record, args.report_dir / record.run_id)["markdown"]
    out.print(terminal.summary(record))
    out.print(f"wrote {where}")
    return _exit_code(record)


def cmd_validate(args) -> int:
    from .load import load_cases

    cases = load_cases(args.paths)
    _out().print(f"{len(cases)} cases OK")
    return EXIT_OK


def cmd_list(args) -> int:
    from .load import load_cases

    out = _out()
    for case in load_cases(args.paths):
        out.print(f"{case.id}  [dim]{case.op} {case.dtype} {case.path}:{case.line}[/]")
    out.print("adapters: " + ", ".join(discover()))
    return EXIT_OK


def cmd_report(args) -> int:
    from . import results as results_io
    from . import terminal
    from .report import write_reports
    from .results import Result

    records = []
    for path in args.results:
        try:
            records.append(results_io.read(path))
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{path}: cannot read results ({exc})") from None
    run_id = args.run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
    record = results_io.merge(records, run_id)
    for name in args.adapters or []:
        if name not in record.adapters:
            record.adapters[name] = {"status": "skipped", "reason": "no results from its environment"}
        seen = {r.case for r in record.results if r.adapter == name}
        record.results += [Result(case=c, adapter=name, status="skipped", message="no results from its environment")
                           for c in record.cases if c not in seen]
    record.results.sort(key=lambda r: (r.case, r.adapter))
    where = write_reports(record, args.report_dir / run_id)["markdown"]
    out = _out()
    out.print(terminal.summary(record))
    out.print(f"wrote {where}")
    return _exit_code(record)


def cmd_schema(args) -> int:
    from .schema import CASE_SCHEMA

    print(json.dumps(CASE_SCHEMA, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
