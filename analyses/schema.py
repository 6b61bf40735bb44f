"""The long results schema every diagnostic returns (DESIGN.md, "Results").

One frame shape for every analysis means every view (TUI, report, compare) can pivot any of
them without knowing which analysis produced a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "checkpoint": pl.String(),
    "analysis": pl.String(),
    "metric": pl.String(),
    "layer": pl.Int32(),
    "src_lang": pl.String(),
    "tgt_lang": pl.String(),
    "domain": pl.String(),
    "value": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "n": pl.Int64(),
}
RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA)

ALL_DOMAINS = "all"


def results_frame(rows: Iterable[Mapping[str, Any]], checkpoint: str = "") -> pl.DataFrame:
    """Build a results frame from row dicts; missing columns are null, `checkpoint` filled in.

    Columns come out in schema order with schema dtypes, so frames from different analyses
    concatenate with `pl.concat` without casting.
    """
    filled = []
    for row in rows:
        unknown = set(row) - set(RESULT_SCHEMA)
        if unknown:
            raise ValueError(f"result row has columns outside the schema: {sorted(unknown)}")
        full = {col: row.get(col) for col in RESULT_COLUMNS}
        if full["checkpoint"] is None:
            full["checkpoint"] = checkpoint
        filled.append(full)
    return pl.DataFrame(filled, schema=RESULT_SCHEMA, orient="row") if filled else empty_results()


def empty_results() -> pl.DataFrame:
    """A results frame with no rows and the full schema."""
    return pl.DataFrame(schema=RESULT_SCHEMA)


def validate_results(frame: pl.DataFrame) -> pl.DataFrame:
    """Check a frame has exactly the schema's columns and dtypes; return it in schema order."""
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results frame lacks columns {missing}")
    frame = frame.select(RESULT_COLUMNS)
    for col, dtype in RESULT_SCHEMA.items():
        if frame.schema[col] != dtype:
            raise ValueError(f"results column {col!r} is {frame.schema[col]}, expected {dtype}")
    return frame
