"""The ``conformance`` command.

    conformance run [PATHS] [--adapter NAME ...] [--report-dir DIR] [--results FILE]
    conformance validate [PATHS]
    conformance list [PATHS]
    conformance report RESULTS.json ... [--report-dir DIR] [--run-id ID]
    conformance gate RESULTS.json --baseline FILE [--update-baseline]
    conformance explain QUESTION.yaml
    conformance matrix RESULTS.json [-o FILE]
    conformance schema

PATHS default to ``cases``. Exit codes: 0 every result passed (or was
unsupported/skipped); 1 some result diverged or errored (with ``--baseline``: the gate failed); 2 bad input or usage
(a malformed case, an unknown adapter, a missing file).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from . import runner
from .errors import CaseError, CaseErrors
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
    _gate_options(run)

    gate = sub.add_parser("gate", help="compare stored results with a baseline; exit 1 on a regression")
    gate.add_argument("results", nargs="+", type=Path)
    _gate_options(gate, required=True)

    exp = sub.add_parser("explain", help="which convention produced these numbers (a small YAML question)")
    exp.add_argument("question", help="a YAML file, or - for standard input (see `conformance explain --help`)")
    exp.add_argument("--json", action="store_true", help="print the explanations as JSON")

    mat = sub.add_parser("matrix", help="the adapter x convention matrix of a run, as Markdown")
    mat.add_argument("results", nargs="+", type=Path)
    mat.add_argument("-o", "--output", type=Path, help="write to FILE (default: standard output)")

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
    _gate_options(rep)

    sub.add_parser("schema", help="print the JSON schema of a case document")
    return p


def _gate_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--baseline", type=Path, required=required, metavar="FILE",
                        help="gate the results against this baseline (exit 1 on a regression)")
    parser.add_argument("--update-baseline", action="store_true",
                        help="write the results into the baseline instead of gating")
    parser.add_argument("--growth", type=float, default=2.0,
                        help="a divergence whose error grows more than this factor fails the gate (default 2)")
    parser.add_argument("--known", action="append", type=Path, metavar="PATH",
                        help="known-divergence declarations (file or folder; default: known-divergences/ "
                             "beside the cases)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": cmd_run, "validate": cmd_validate, "list": cmd_list, "report": cmd_report,
                "gate": cmd_gate, "explain": cmd_explain, "matrix": cmd_matrix,
                "schema": cmd_schema}[args.command](args)
    except CaseErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_USAGE
    except CaseError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE


class UsageError(Exception):
    pass


def _exit_code(record) -> int:
    from .results import FAILING

    return EXIT_DIVERGED if any(r.status in FAILING for r in record.results) else EXIT_OK


def _declarations(args, case_paths) -> list:
    """Known-divergence declarations: ``--known`` paths, else known-divergences/ beside the cases."""
    from . import known

    return known.load(args.known if args.known else known.default_paths(case_paths))


def known_dirs(case_paths):
    from . import known

    return known.default_paths(case_paths)


def _judge_known(record, declarations, out, check_stale: bool = True) -> None:
    from . import known

    known.apply(record, declarations)
    for warning in known.stale(record, declarations) if check_stale else ():
        out.print(f"[yellow]warning:[/] {warning}")
    for r in record.results:
        if r.status == "xpass":
            out.print(f"[yellow]xpass:[/] {r.case} on {r.adapter} passes, but {r.declared['file']}:"
                      f"{r.declared['line']} declares a divergence")


def _finish(record, args, out) -> int:
    """Gate or update the baseline when asked; else the run's own exit code."""
    from . import gate

    if args.baseline is None:
        return _exit_code(record)
    if args.update_baseline:
        gate.update(record, args.baseline)
        out.print(f"updated baseline {args.baseline}")
        return EXIT_OK
    try:
        baseline = gate.read(args.baseline)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.baseline}: cannot read baseline ({exc})") from None
    report = gate.check(record, baseline, growth=args.growth)
    for line in report.lines():
        out.print(line, markup=False)
    return EXIT_OK if report.passed else EXIT_DIVERGED


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
    declarations = _declarations(args, args.paths)
    from . import results as results_io
    from . import terminal
    from .report import write_reports

    from . import known

    def judged(advance):
        """Progress shows each result as the declarations judge it (a known divergence is not news)."""
        def on_result(result):
            hello = next((w.hello for w in workers.values() if w.name == result.adapter), {})
            known.judge(result, declarations, hello.get("environment", {}))
            advance(result)
        return on_result

    with terminal.progress(len(cases) * len(adapters)) as advance:
        record = runner.run(cases, adapters, jobs=args.jobs, timeout=args.timeout, run_id=args.run_id,
                            workers=workers, on_result=judged(advance))
    out = _out()
    # Stale declarations can only be told on the whole corpus the declarations sit beside.
    whole = not args.select and {Path(p).resolve() for p in args.paths} <= {
        d.resolve().parent for d in (args.known or known_dirs(args.paths))}
    _judge_known(record, declarations, out, check_stale=whole)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        results_io.write(record, args.results)
        where = args.results
    else:
        where = write_reports(record, args.report_dir / record.run_id)["markdown"]
    out.print(terminal.summary(record))
    out.print(f"wrote {where}")
    return _finish(record, args, out)


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

    records = _read_records(args.results)
    run_id = args.run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
    record = results_io.merge(records, run_id)
    for name in args.adapters or []:
        if name not in record.adapters:
            record.adapters[name] = {"status": "skipped", "reason": "no results from its environment"}
        seen = {r.case for r in record.results if r.adapter == name}
        record.results += [Result(case=c, adapter=name, status="skipped", message="no results from its environment")
                           for c in record.cases if c not in seen]
    record.results.sort(key=lambda r: (r.case, r.adapter))
    out = _out()
    case_dirs = sorted({str(Path(c["path"]).parent) for c in record.cases.values() if c.get("path")})
    _judge_known(record, _declarations(args, case_dirs), out)
    where = write_reports(record, args.report_dir / run_id)["markdown"]
    out.print(terminal.summary(record))
    out.print(f"wrote {where}")
    return _finish(record, args, out)


def _read_records(paths):
    from . import results as results_io

    records = []
    for path in paths:
        try:
            records.append(results_io.read(path))
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{path}: cannot read results ({exc})") from None
    return records


def cmd_gate(args) -> int:
    from . import results as results_io

    records = _read_records(args.results)
    record = records[0] if len(records) == 1 else results_io.merge(records, "gate")
    return _finish(record, args, _out())


def cmd_explain(args) -> int:
    from .explain import explain
    from .yamlload import load_documents, parse_documents

    if args.question == "-":
        docs = parse_documents(sys.stdin.read(), "<stdin>")
    else:
        if not Path(args.question).is_file():
            raise UsageError(f"{args.question}: no such file")
        docs = load_documents(args.question)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise CaseErrors([CaseError(args.question, None, "", "a question is one YAML mapping")])
    explanations = explain(docs[0])
    if args.json:
        print(json.dumps([e.__dict__ for e in explanations], indent=1))
    else:
        for e in explanations:
            print("\n".join(e.lines()))
    return EXIT_OK


def cmd_matrix(args) -> int:
    from . import matrix
    from . import results as results_io

    records = _read_records(args.results)
    record = records[0] if len(records) == 1 else results_io.merge(records, records[0].run_id)
    text = matrix.render(record, args.output.parent if args.output else Path.cwd())
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        _out().print(f"wrote {args.output}")
    else:
        print(text, end="")
    return EXIT_OK


def cmd_schema(args) -> int:
    from .schema import CASE_SCHEMA

    print(json.dumps(CASE_SCHEMA, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
