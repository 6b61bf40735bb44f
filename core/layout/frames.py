"""Reading the Parquet files of eval, run and study directories as a user's input.

`report`, `compare` and the dashboard read files that may have been truncated, emptied,
overwritten by another program or written by an older xrdiag. Each read here either returns a
frame with the columns its reader needs, in the types it expects, or raises a one-line
UserError naming the file and what was expected; never a polars traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from xrdiag.analyses.schema import RESULT_SCHEMA
from xrdiag.errors import UserError, library_failure

# Results written before `pool` was recorded lack it (analyses.schema.with_pool_column).
RESULTS_REQUIRED = tuple(c for c in RESULT_SCHEMA if c != "pool")
ROWS_REQUIRED = ("id", "lang", "domain")


def load_parquet(path: Path) -> pl.DataFrame:
    """A Parquet file as a polars frame, read by pyarrow.

    polars' own reader panics (a Rust panic, past `except Exception`, with a backtrace on
    stderr) on some damaged files, e.g. a flipped bit in the embedded Arrow schema; pyarrow
    raises ordinary exceptions for them, and its full validation refuses invalid UTF-8 that
    polars would only trip over later. Callers turn those into one-line user errors.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    # Strings are not checked when read: invalid UTF-8 would reach polars and panic later.
    table.validate(full=True)
    return pl.from_arrow(table)  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_frame(
    path: Path,
    what: str,
    required: Sequence[str] = (),
    types: Mapping[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """A Parquet file that must hold `required` columns, cast to `types` where present.

    `what` says what the file should be, for the message ("an xrdiag results file").
    """
    try:
        frame = load_parquet(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing; expected {what}") from None
    except BaseException as exc:  # noqa: BLE001 - polars raises several types for a broken file
        if not library_failure(exc):
            raise
        raise UserError(
            f"{path}: not a readable Parquet file ({_first_line(exc)}); expected {what}"
        ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"expected {what}"
        )
    wanted = {c: t for c, t in (types or {}).items() if c in frame.columns}
    wrong = [c for c, t in wanted.items() if frame.schema[c] != t]
    if wrong:
        try:
            frame = frame.cast({c: wanted[c] for c in wrong}, strict=True)
        except BaseException as exc:  # noqa: BLE001 - a value the type cannot hold
            if not library_failure(exc):
                raise
            col = wrong[0]
            raise UserError(
                f"{path}: column {col!r} is {frame.schema[col]}, not {wanted[col]}; expected {what}"
            ) from None
    return frame


def read_results(path: Path) -> pl.DataFrame:
    """An eval's results.parquet (any xrdiag version's), in the results schema's types."""
    return read_frame(
        path, "an xrdiag results file (re-run xrdiag eval)", RESULTS_REQUIRED, RESULT_SCHEMA
    )


def read_rows(path: Path) -> pl.DataFrame:
    """An eval's rows.parquet: the corpus rows it used."""
    types = {c: pl.String() for c in ("id", "lang", "domain", "split")}
    return read_frame(path, "the rows an xrdiag eval used", ROWS_REQUIRED, types)


def read_optional(path: Path, what: str, required: Sequence[str] = ()) -> pl.DataFrame | None:
    """A Parquet file that may be absent (None), else as `read_frame`."""
    return read_frame(path, what, required) if path.is_file() else None
