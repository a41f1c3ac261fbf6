"""Report writers. ``write_reports(record, run_dir)`` writes every format:

* ``results.json``: the schema-versioned record (everything the others need);
* ``report.md``: the case × adapter matrix, then each divergence, error and
  unsupported result with its figures and reasons;
* ``junit.xml``: one test case per (case, adapter), for CI.

and points ``<report-dir>/latest`` at the run.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import results as results_io
from ..results import RunRecord
from .junit import render_junit
from .markdown import render_markdown


def write_reports(record: RunRecord, run_dir: Path) -> dict[str, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"results": run_dir / "results.json", "markdown": run_dir / "report.md", "junit": run_dir / "junit.xml"}
    results_io.write(record, paths["results"])
    paths["markdown"].write_text(render_markdown(record), encoding="utf-8")
    paths["junit"].write_text(render_junit(record), encoding="utf-8")
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
