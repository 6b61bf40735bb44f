"""Scatter of the 2-D projection (projection.parquet), coloured by language or by domain.

A well-aligned encoder mixes languages (colour by language looks like confetti) while domains
may still form islands; the same points coloured both ways show which of the two dominates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl
from textual_plotext import PlotextPlot

# Distinct plotext colours, cycled when there are more groups than colours.
PALETTE = (
    "red",
    "green",
    "blue",
    "yellow",
    "magenta",
    "cyan",
    "orange",
    "white",
    "gray",
    (255, 105, 180),
    (160, 82, 45),
    (127, 255, 212),
    (186, 85, 211),
)


def _finite(value: object) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value)  # type: ignore[arg-type]


class ProjectionScatter(PlotextPlot):
    """Points of a projection frame (x, y, lang, domain[, layer]) grouped by one column."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.groups: list[str] = []

    def show(self, frame: pl.DataFrame, color_by: str = "lang", layer: int | None = None) -> None:
        """Redraw with one series per value of `color_by` (points of `layer` when given)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if layer is not None and "layer" in frame.columns:
            frame = frame.filter(pl.col("layer") == layer)
        self.groups = (
            sorted(frame[color_by].unique().drop_nulls().to_list()) if frame.height else []
        )
        if frame.height:  # non-finite points cannot be drawn (a degenerate projection)
            frame = frame.filter(pl.col("x").is_finite() & pl.col("y").is_finite())
        for i, group in enumerate(self.groups):
            part = frame.filter(pl.col(color_by) == group)
            if not part.height:
                continue
            plt.scatter(
                part["x"].to_list(),
                part["y"].to_list(),
                marker="braille",
                color=PALETTE[i % len(PALETTE)],
                label=str(group),
            )
        method = frame["method"][0] if "method" in frame.columns and frame.height else "projection"
        where = "" if layer is None else f", layer {layer}"
        plt.title(f"{str(method).upper()} of {frame.height} sentences by {color_by}{where}")
        self.refresh()


def plot_lines(
    widget: PlotextPlot,
    lines: Sequence[tuple[str, Sequence[tuple[int, float]]]],
    title: str,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Redraw `widget` with one line per (label, [(layer, value)]) over layers."""
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    # A degenerate model (every sentence embedded alike) gives NaN CKA: plotext cannot draw
    # a non-finite point, and a line left with none breaks its legend.
    lines = [(label, [p for p in points if _finite(p[1])]) for label, points in lines]
    for i, (label, points) in enumerate(lines):
        if not points:
            continue
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        plt.plot(xs, ys, marker="braille", color=PALETTE[i % len(PALETTE)], label=label)
    ticks = sorted({p[0] for _, points in lines for p in points})
    if ticks:
        plt.xticks(ticks)
    plt.title(title)
    plt.xlabel("layer")
    if ylim is not None:
        plt.ylim(*ylim)
    widget.refresh()
