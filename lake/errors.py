"""The errors biolake raises for user mistakes.

Every error names what is at fault (file, line, column, table, release) and what
was expected, so the CLI can print it as one line. Internal invariants use
``assert``; anything a user can cause raises one of these.
"""

from __future__ import annotations


class BiolakeError(Exception):
    """Base of every user-facing biolake error."""


class InputError(BiolakeError):
    """A source file is malformed: names the file, where in it, and what was expected."""

    def __init__(self, path: object, problem: str, *, line: int | None = None,
                 column: str | None = None) -> None:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.column = str(path), line, column


class LakeError(BiolakeError):
    """The lake is missing, not initialised, or asked for a table it lacks."""


class ReleaseError(BiolakeError):
    """A release is unknown, or a new release clashes with one already committed."""
