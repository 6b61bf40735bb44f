"""The raw corpus table every reader produces, and the one-line messages they raise.

Readers (`formats.py`, `gettext.py`) only parse into a `RawTable`; `table.py` validates it.
Each table keeps a `__row` key per row and a `locate` function that turns it into what the user
sees in the file ("line 7" of a CSV, "row 3" of a Parquet file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from xrdiag.errors import UserError

ROW = "__row"


def msg(source: str, where: str | None, problem: str, expected: str) -> str:
    """The one-line problem: `file, where: problem; expected ...`."""
    return (
        f"{source}, {where}: {problem}; expected {expected}"
        if where
        else f"{source}: {problem}; expected {expected}"
    )


def err(source: str, where: str | None, problem: str, expected: str) -> UserError:
    """The one-line error for `msg`."""
    return UserError(msg(source, where, problem, expected))


@dataclass(frozen=True)
class RawTable:
    """A parsed, not yet validated corpus: columns as found plus the `__row` key."""

    frame: pl.DataFrame
    source: str
    locate: Callable[[int], str]
    problems: list[str] = field(default_factory=list)  # structural, found while parsing
    recheck: Callable[[], list[str]] | None = None  # slower structural check, run on failure


def empty_table(source: str) -> RawTable:
    """A table with no rows (an empty file): validation reports it as one problem."""
    return RawTable(pl.DataFrame(schema={ROW: pl.UInt32}), source, str)


def read_utf8(path: Path, source: str) -> str:
    """The file's text (BOM dropped); a byte that is not UTF-8 is reported by line and offset."""
    return decode_utf8(path.read_bytes(), source)


def decode_utf8(data: bytes, source: str) -> str:
    """`data` as text (BOM dropped), or the UserError naming the first byte that is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"line {line} (byte {exc.start})"
        raise err(source, where, "not valid UTF-8", "a UTF-8 encoded text file") from None
    return text.removeprefix("\ufeff")
