"""Errors the harness raises about its *input* (case files, command lines).

Every message names the file, the line and the field, on one line, so that a
reviewer can jump straight to the mistake:

    cases/batch_norm/seeds.yaml:12: params.gamma: has 3 values, the feature shape is (2,)
"""

from __future__ import annotations


class CaseError(Exception):
    """A case file is malformed. ``str()`` is the one-line message."""

    def __init__(self, file: str, line: int | None, field: str, message: str):
        self.file = str(file)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class CaseErrors(Exception):
    """Several CaseErrors found in one pass (``validate`` reports them all)."""

    def __init__(self, errors: list[CaseError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line or 0))
        super().__init__("\n".join(str(e) for e in self.errors))


class Unsupported(Exception):
    """Raised by an adapter when its framework cannot express a case.

    The message is the reason, and ends up verbatim in the report.
    """
