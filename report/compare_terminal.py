"""Rich tables of a comparison for the terminal: a summary per metric, then the largest changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from rich.markup import escape

from xrdiag.report.markdown import comparison_summary, top_changes


def _num(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _delta(value: Any, significant: bool) -> str:
    text = _num(value, signed=True)
    if value is None or value == 0:
        return text
    colour = "green" if value > 0 else "red"
    return f"[bold {colour}]{text}[/]" if significant else f"[{colour}]{text}[/]"


def print_comparison(
    console: Any,
    comparison: pl.DataFrame,
    notes: Sequence[str] = (),
    limit: int = 30,
    threshold: float = 0.01,
    diff_only: bool = False,
) -> None:
    """Notes, one summary row per (B, metric), then the `limit` cells with the largest |delta|."""
    from rich.table import Table

    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if comparison.height == 0:
        what = f"no cell changed by more than {threshold}" if diff_only else "no cells to compare"
        console.print(f"[green]{what}[/]")
        return
    a = comparison["a"][0]
    summary = comparison_summary(comparison)
    for b in summary["b"].unique(maintain_order=True).to_list():
        table = Table(title=f"{escape(b)} vs {escape(a)} (delta = B - A)", title_justify="left")
        table.add_column("metric", overflow="fold")
        for col in ("cells", f">{threshold:g}", "sig", "mean delta", "min", "max"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in summary.filter(pl.col("b") == b).iter_rows(named=True):
            table.add_row(
                escape(row["metric"]), f"{row['cells']:,}", f"{row['exceeding']:,}",
                f"{row['significant']:,}", _num(row["mean_delta"], signed=True),
                _num(row["min_delta"], signed=True), _num(row["max_delta"], signed=True),
            )  # fmt: skip
        console.print(table)
    console.print(cells_table(top_changes(comparison, limit), f"largest changes (top {limit})"))
    console.print(
        "[dim]significant (bold): the two bootstrap intervals do not overlap[/]", highlight=False
    )


def cells_table(cells: pl.DataFrame, title: str) -> Any:
    """Metric cells with values and delta as a rich table (a B column when several Bs)."""
    from rich.table import Table

    several = cells["b"].n_unique() > 1 if cells.height else False
    table = Table(title=title, title_justify="left")
    cols = (["B"] if several else []) + ["metric", "L", "src", "tgt", "domain", "A", "B", "delta"]
    for col in cols:
        right = col in ("L", "A", "B", "delta") and not (
            col == "B" and several and not cols.index(col)
        )
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for row in cells.iter_rows(named=True):
        values = [
            escape(row["metric"]), str(row["layer"]), escape(row["src_lang"] or "-"),
            escape(row["tgt_lang"] or "-"), escape(row["domain"] or "-"), _num(row["value_a"]),
            _num(row["value_b"]), _delta(row["delta"], bool(row["significant"])),
        ]  # fmt: skip
        table.add_row(*([escape(row["b"])] if several else []), *values)
    return table


def print_failures(console: Any, failing: pl.DataFrame, rule: str, limit: int = 50) -> None:
    """The cells that tripped a --fail-if rule."""
    console.print(
        f"[bold red]--fail-if {escape(rule)}: {failing.height} cell(s) trip it[/]",
        highlight=False,
    )
    cols = ["b", "metric", "layer", "src_lang", "tgt_lang", "domain", "value_a", "value_b",
            "delta", "significant"]  # fmt: skip
    shown = failing.sort("delta").head(limit).select(cols)
    console.print(cells_table(shown, f"offending cells (first {min(limit, failing.height)})"))
