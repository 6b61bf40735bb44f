"""Lay result frames out as the grids the dashboard draws: cells with intervals, in order.

Every selection (which rows, which layer, an average over targets) is `report/tables.py`'s, the
one pivot library the report uses too; this module only arranges the rows it returns as a
matrix of cells, so no number on screen is computed here (DESIGN.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from xrdiag.analyses.schema import ALL_DOMAINS as ALL
from xrdiag.analyses.schema import CORRECTIONS, RETRIEVAL_BASES, SCORINGS
from xrdiag.report import tables
from xrdiag.report.tables import MEAN, ordered

BASES = RETRIEVAL_BASES
__all__ = ["ALL", "BASES", "CORRECTIONS", "MEAN", "SCORINGS", "Cell", "Matrix", "grid"]


@dataclass
class Cell:
    """One figure of a grid with its interval, sample size and an optional mark (significance)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    mark: str = ""
    pool: int | None = None  # retrieval: candidates per query (chance recall@k = k / pool)


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
        rows=list(rows) if rows is not None else ordered(frame[row].to_list()),
        cols=list(cols) if cols is not None else ordered(frame[col].to_list()),
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
            pool=rec.get("pool"),
        )
    return out


def retrieval_by_domain(
    results: pl.DataFrame, metric: str, layer: int, target: str, value: str = "value"
) -> Matrix:
    """Query language x domain of `metric` for retrieval into `target` (MEAN: averaged)."""
    frame = tables.retrieval_cells(results, metric, layer, target, value)
    if target == MEAN:
        return grid(frame, "src_lang", "domain", value, ci=("", ""))
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
    frame = tables.figure_cells(results, analysis, metric, layer, domain)
    langs = ordered(frame["src_lang"].to_list() + frame["tgt_lang"].to_list(), last=())
    mark = "significant" if value == "delta" and "significant" in frame.columns else None
    out = grid(frame, "src_lang", "tgt_lang", value, mark=mark, rows=langs, cols=langs,
               ci=_ci_names(frame, value))  # fmt: skip
    if symmetric:
        for (src, tgt), cell in list(out.cells.items()):
            out.cells.setdefault((tgt, src), cell)
    return out


def _ci_names(frame: pl.DataFrame, value: str = "value") -> tuple[str, str]:
    """Interval columns for `value`: a results frame's, a comparison side's, none for a delta."""
    if value.endswith(("_a", "_b")):
        return (f"ci_low{value[-2:]}", f"ci_high{value[-2:]}")
    if value == "value" and "ci_low" in frame.columns:
        return ("ci_low", "ci_high")
    return ("", "")
