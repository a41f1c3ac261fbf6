"""Report writers. ``write_reports(record, run_dir)`` writes every format:

* ``results.json``: the schema-versioned record (everything the others need);
* ``report.md``: the case × adapter matrix, then each divergence, error and
  unsupported result with its figures and reasons;
* ``junit.xml``: one test case per (case, adapter), for CI;
* ``index.html``: one self-contained page (matrix, filters, case details, plots;
  ``docs/report.md`` explains how to read it);
* ``summary.md``: a short GitHub-flavoured summary, also appended to the file
  named by ``$GITHUB_STEP_SUMMARY`` when that variable is set (GitHub Actions).

and points ``<report-dir>/latest`` at the run.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import results as results_io
from ..results import RunRecord
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown
from .summary import append_step_summary, render_summary


def write_reports(record: RunRecord, run_dir: Path, step_summary: bool = True) -> dict[str, Path]:
    """Write every format into ``run_dir``; ``step_summary=False`` never touches ``$GITHUB_STEP_SUMMARY``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"results": run_dir / "results.json", "markdown": run_dir / "report.md", "junit": run_dir / "junit.xml",
             "html": run_dir / "index.html", "summary": run_dir / "summary.md"}
    results_io.write(record, paths["results"])
    paths["markdown"].write_text(render_markdown(record), encoding="utf-8")
    paths["junit"].write_text(render_junit(record), encoding="utf-8")
    paths["html"].write_text(render_html(record), encoding="utf-8")
    summary = render_summary(record)
    paths["summary"].write_text(summary, encoding="utf-8")
    if step_summary:
        append_step_summary(summary)
    point_latest(run_dir)
    return paths


def point_latest(run_dir: Path) -> None:
    """``<parent>/latest`` → ``run_dir`` (a symlink; a one-line file where links fail)."""
    latest = run_dir.parent / "latest"
    try:
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        os.symlink(run_dir.name, latest, target_is_directory=True)
    except OSError:
        latest.write_text(run_dir.name + "\n", encoding="utf-8")
