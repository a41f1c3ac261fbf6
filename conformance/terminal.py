"""What a person sees in the terminal: progress while running, then a summary."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .results import STATUSES, RunRecord

STYLE = {"pass": "green", "diverge": "red", "expected-divergence": "dark_orange", "xpass": "bold yellow",
         "error": "bold red", "unsupported": "yellow", "skipped": "dim"}

console = Console(stderr=True, highlight=False)


@contextmanager
def progress(total: int):
    """Yields ``advance(result)``; draws a bar on a terminal, one line per problem otherwise."""
    bar = Progress(TextColumn("[bold]running"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.description}"), console=console, transient=True,
                   disable=not console.is_terminal)
    with bar:
        task = bar.add_task("", total=total)

        def advance(result) -> None:
            bar.update(task, advance=1, description=f"{result.adapter} {result.case}")
            if result.status in ("diverge", "error"):
                console.print(f"[{STYLE[result.status]}]{result.status:8}[/] {result.adapter:18} {result.case}")

        yield advance


def summary(record: RunRecord) -> Table:
    table = Table(title=f"conformance run {record.run_id}", title_justify="left")
    table.add_column("adapter", no_wrap=True)
    table.add_column("version")
    for status in STATUSES:
        table.add_column(status, justify="right", style=STYLE[status])
    for adapter, row in record.counts().items():
        info = record.adapters.get(adapter, {})
        table.add_row(adapter, str(info.get("version", "–")), *(str(row.get(s, 0)) for s in STATUSES))
    return table
