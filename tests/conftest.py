from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_case(tmp_path):
    """Write YAML text (dedented) to a file under tmp_path and return its path."""

    def write(text: str, name: str = "case.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def in_repo(monkeypatch):
    """Run with the repository root as the working directory (workers import tests.support)."""
    monkeypatch.chdir(REPO)
    return REPO


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    """Reports written by tests must not append to the CI job's $GITHUB_STEP_SUMMARY."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
