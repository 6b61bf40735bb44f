"""Pivots of long result frames into the grids and curves the dashboard draws.

The screens hold no metric logic (DESIGN.md, "Layers"): every number shown comes out of a results
frame unchanged; these helpers only select rows and lay them out as a matrix or a series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

ALL = "all"
MEAN = "mean"  # retrieval into every other language, averaged as report/tables.py does
BASES = ("recall@1", "recall@5", "recall@10", "mrr")
SCORINGS = ("cos", "margin")
CORRECTIONS = ("none", "center", "lir")


@dataclass
class Cell:
    """One figure of a grid with its interval, sample size and an optional mark (significance)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    mark: str = ""


@dataclass
class Matrix:
    """Rows x columns of cells, in display order."""

    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def get(self, row: str, col: str) -> Cell | None:
        return self.cells.get((row, col))

    def values(self) -> list[float]:
        return [c.value for c in self.cells.values() if c.value is not None]


def retrieval_metric(base: str, scoring: str, correction: str) -> str:
    """The results' name of a retrieval figure: `recall@1|cos|none`."""
    return f"{base}|{scoring}|{correction}"


def _ordered(values: Sequence[str | None], last: Sequence[str] = (ALL,)) -> list[str]:
    """Sorted distinct values, with `all` (or the given names) moved to the end."""
    distinct = sorted({v for v in values if v is not None})
    return [v for v in distinct if v not in last] + [v for v in last if v in distinct]


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def grid(
    frame: pl.DataFrame,
    row: str,
    col: str,
    value: str = "value",
    *,
    ci: tuple[str, str] = ("ci_low", "ci_high"),
    mark: str | None = None,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
) -> Matrix:
    """Lay `frame` out as `row` x `col`; a cell takes the one row that matches (no aggregation)."""
    out = Matrix(
        rows=list(rows) if rows is not None else _ordered(frame[row].to_list()),
        cols=list(cols) if cols is not None else _ordered(frame[col].to_list()),
    )
    names = frame.columns
    for rec in frame.iter_rows(named=True):
        key = (rec[row], rec[col])
        if key[0] is None or key[1] is None or key in out.cells:
            continue
        flag = ""
        if mark is not None and rec.get(mark):
            flag = "*"
        out.cells[key] = Cell(
            value=_opt_float(rec[value]),
            ci_low=_opt_float(rec[ci[0]]) if ci[0] in names else None,
            ci_high=_opt_float(rec[ci[1]]) if ci[1] in names else None,
            n=rec.get("n"),
            mark=flag,
        )
    return out


def layers(results: pl.DataFrame, analysis: str | None = None) -> list[int]:
    """Layers present (of one analysis), ascending."""
    frame = results if analysis is None else results.filter(pl.col("analysis") == analysis)
    return sorted(int(v) for v in frame["layer"].unique().drop_nulls().to_list())


def languages(results: pl.DataFrame) -> list[str]:
    """Languages named as a source or target anywhere in the results."""
    return _ordered(results["src_lang"].to_list() + results["tgt_lang"].to_list(), last=())


def plain_domains(results: pl.DataFrame, analysis: str) -> list[str]:
    """Single domains of an analysis (no `a|b` pairs), `all` last."""
    frame = results.filter(pl.col("analysis") == analysis)
    return [d for d in _ordered(frame["domain"].to_list()) if "|" not in d]


def default_target(langs: Sequence[str]) -> str | None:
    """English when present (the usual pivot), otherwise the first language."""
    return "en" if "en" in langs else (langs[0] if langs else None)


def retrieval_by_domain(
    results: pl.DataFrame, metric: str, layer: int, target: str, value: str = "value"
) -> Matrix:
    """Query language x domain of `metric` for retrieval into `target` (one cell per row).

    `target` MEAN averages over target languages, the table `xrdiag report` prints.
    """
    frame = results.filter(
        (pl.col("analysis") == "retrieval")
        & (pl.col("metric") == metric)
        & (pl.col("layer") == layer)
        & pl.col("src_lang").is_not_null()
        & pl.col("tgt_lang").is_not_null()
    )
    if target == MEAN:
        aggs = (
            [pl.col(value).mean(), pl.col("n").sum()]
            if "n" in frame.columns
            else [pl.col(value).mean()]
        )
        # An average of cells has no interval or significance of its own: none is shown.
        frame = frame.group_by("src_lang", "domain").agg(aggs)
        return grid(frame, "src_lang", "domain", value, ci=("", ""))
    frame = frame.filter(pl.col("tgt_lang") == target)
    mark = "significant" if value == "delta" and "significant" in frame.columns else None
    return grid(frame, "src_lang", "domain", value, mark=mark, ci=_ci_names(frame, value))


def lang_by_lang(
    results: pl.DataFrame,
    analysis: str,
    metric: str,
    layer: int,
    domain: str = ALL,
    value: str = "value",
    symmetric: bool = False,
) -> Matrix:
    """Source x target language of one figure at one layer and domain.

    `symmetric` figures (CKA, centroid distances) are stored once per unordered pair; the grid
    shows each in both triangles.
    """
    frame = results.filter(
        (pl.col("analysis") == analysis)
        & (pl.col("metric") == metric)
        & (pl.col("layer") == layer)
        & (pl.col("domain") == domain)
    )
    langs = _ordered(frame["src_lang"].to_list() + frame["tgt_lang"].to_list(), last=())
    mark = "significant" if value == "delta" and "significant" in frame.columns else None
    out = grid(
        frame,
        "src_lang",
        "tgt_lang",
        value,
        mark=mark,
        rows=langs,
        cols=langs,
        ci=_ci_names(frame, value),
    )
    if symmetric:
        for (src, tgt), cell in list(out.cells.items()):
            out.cells.setdefault((tgt, src), cell)
    return out


def pair_series(
    frame: pl.DataFrame, metric: str, lang: str, other: str, domain: str = ALL, value: str = "value"
) -> list[tuple[int, float]]:
    """(layer, value) of a symmetric pair figure between two languages, in either stored order."""
    picked = frame.filter(
        (pl.col("metric") == metric)
        & (pl.col("domain") == domain)
        & (
            ((pl.col("src_lang") == lang) & (pl.col("tgt_lang") == other))
            | ((pl.col("src_lang") == other) & (pl.col("tgt_lang") == lang))
        )
    )
    picked = picked.sort("layer").unique(subset="layer", keep="first", maintain_order=True)
    return [
        (int(layer), float(v))
        for layer, v in zip(picked["layer"], picked[value], strict=True)
        if v is not None
    ]


def _ci_names(frame: pl.DataFrame, value: str = "value") -> tuple[str, str]:
    """Interval columns for `value`: a results frame's, a comparison side's, none for a delta."""
    if value.endswith(("_a", "_b")):
        return (f"ci_low{value[-2:]}", f"ci_high{value[-2:]}")
    if value == "value" and "ci_low" in frame.columns:
        return ("ci_low", "ci_high")
    return ("", "")


def series(
    frame: pl.DataFrame, metric: str, value: str = "value", **where: str | None
) -> list[tuple[int, float]]:
    """(layer, value) of one figure over layers, with equality filters on other key columns."""
    cond = pl.col("metric") == metric
    for column, wanted in where.items():
        cond = cond & (pl.col(column).is_null() if wanted is None else pl.col(column) == wanted)
    picked = (
        frame.filter(cond).sort("layer").unique(subset="layer", keep="first", maintain_order=True)
    )
    return [
        (int(layer), float(v))
        for layer, v in zip(picked["layer"], picked[value], strict=True)
        if v is not None
    ]


def scalar_rows(results: pl.DataFrame, metrics: Sequence[str], domain: str = ALL) -> pl.DataFrame:
    """Layer x metric table of per-layer scalars (no languages), as they are in the results."""
    frame = results.filter(
        pl.col("metric").is_in(list(metrics))
        & (pl.col("domain") == domain)
        & pl.col("src_lang").is_null()
    )
    if frame.height == 0:
        return pl.DataFrame({"layer": []}, schema={"layer": pl.Int32})
    return (
        frame.pivot(on="metric", index="layer", values="value", aggregate_function="first")
        .sort("layer")
        .select(["layer"] + [m for m in metrics if m in frame["metric"].unique().to_list()])
    )
