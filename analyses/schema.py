"""The result vocabulary: the long results schema every diagnostic returns, and metric names.

One frame shape for every analysis means every view (TUI, report, compare) can pivot any of
them without knowing which analysis produced a row (DESIGN.md, "Results"). Retrieval metric
names encode scoring and correction as `f"{base}|{scoring}|{correction}"` (`recall@1|cos|none`);
`metric_name` builds them and `parse_metric` splits them, for the analyses and the views alike.
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
    # Retrieval: the candidates each query was ranked among (chance recall@k = k / pool);
    # null for other analyses, and unknown (null) in results written before it was recorded.
    "pool": pl.Int64(),
}
RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA)

ALL_DOMAINS = "all"

# Retrieval metric names: base | scoring | correction.
RETRIEVAL_BASES: tuple[str, ...] = ("recall@1", "recall@5", "recall@10", "mrr")
SCORINGS: tuple[str, ...] = ("cos", "margin")
CORRECTIONS: tuple[str, ...] = ("none", "center", "lir", "mean_subspace")


def metric_name(base: str, scoring: str, correction: str) -> str:
    """`recall@1|cos|none`-style metric name of a retrieval figure."""
    return f"{base}|{scoring}|{correction}"


def parse_metric(metric: str) -> tuple[str, str, str]:
    """Split a retrieval metric name into (base, scoring, correction)."""
    base, scoring, correction = metric.split("|")  # ValueError unless exactly three parts
    return base, scoring, correction


# The headline figure: recall@1 with cosine scoring and no correction.
PRIMARY_RECALL = metric_name("recall@1", "cos", "none")

# Cross-language CKA: the plain (biased) estimator and the debiased one (Song et al. 2012's
# unbiased HSIC, as Nguyen et al. 2021 use it). At n comparable to the dimension plain linear
# CKA is inflated (unrelated data at n=50, d=200 gives ~0.8), so one number that summarises
# CKA is the debiased one; the plain one stays, labelled biased.
LINEAR_CKA = "linear_cka"
DEBIASED_CKA = "debiased_cka"


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


def with_pool_column(frame: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """Results read from disk, with a `pool` column; True when it had none (written by an
    older xrdiag, whose per-domain pools differed: the caller says so)."""
    if "pool" in frame.columns:
        return frame, False
    return frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("pool")), True
