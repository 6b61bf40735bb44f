"""The one exception a user can cause; the CLI prints it as one line and exits with code 2.

It lives at the top of the package (not in core/) so that every layer, analyses/ included,
can raise it without importing the engine.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input a user can fix: a file, row, column, flag or value that is not what is expected.

    The message is one line that names where the problem is and what was expected.
    """

    exit_code = 2


def where(path: object, row: int | None = None, column: str | None = None) -> str:
    """`file:row:column` prefix for error messages (rows count from 1, as editors do)."""
    parts = [str(path)]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts)
