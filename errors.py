"""The one exception a user can cause; the CLI prints it as one line and exits with code 2.

It lives at the top of the package (not in core/) so that every layer, analyses/ included,
can raise it without importing the engine.
"""

from __future__ import annotations

from collections.abc import Sequence


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


def comma_choices(
    flag: str, value: str | Sequence[str], allowed: Sequence[str], hint: str = ""
) -> tuple[str, ...]:
    """`a,b` (or a sequence) -> the names in order, duplicates dropped, each one of `allowed`.

    An unknown name or an empty list is a UserError naming the flag and every allowed name.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UserError(
            f"{flag} {','.join(parts)}: unknown {', '.join(unknown) or 'empty list'}; "
            f"expected a comma list of {', '.join(allowed)}{hint}"
        )
    return names


def library_failure(exc: BaseException) -> bool:
    """Whether `exc` is a native library's failure on bad input, to be reported, not a signal.

    Rust libraries (polars, safetensors, tokenizers) raise pyo3's `PanicException` when a
    malformed file reaches an unchecked path; it derives from BaseException, so `except
    Exception` lets it through as a traceback. KeyboardInterrupt and SystemExit are not.
    """
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"
