"""A line plot of named series over training steps (textual-plotext).

The live screen hands it the series it read from `events.jsonl`; the widget only draws them. It
keeps the data as plain lists (`series`), so tests check what is plotted without parsing the
picture, and it redraws only when the data changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from textual_plotext import PlotextPlot

Series = tuple[Sequence[float], Sequence[float]]


def _finite(xs: Sequence[float], ys: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """Drop points whose value is missing or not finite (a NaN step must not break the plot)."""
    px, py = [], []
    for x, y in zip(xs, ys, strict=False):
        if isinstance(y, int | float) and math.isfinite(y):
            px.append(float(x))
            py.append(float(y))
    return px, py


class Curves(PlotextPlot):
    """Named line series against the step, with a title and optional log-scaled y axis."""

    DEFAULT_CSS = """
    Curves {
        height: 1fr;
        min-height: 5;
    }
    """

    def __init__(
        self,
        title: str,
        *,
        ylabel: str = "",
        ylim: tuple[float, float] | None = None,
        id: str | None = None,  # noqa: A002 - Textual's name
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.ylabel = ylabel
        self.ylim = ylim
        self.series: dict[str, tuple[list[float], list[float]]] = {}

    def set_series(self, series: Mapping[str, Series]) -> None:
        """Replace the plotted series (name -> (steps, values)); redraw if anything changed."""
        clean = {name: _finite(xs, ys) for name, (xs, ys) in series.items()}
        clean = {name: xy for name, xy in clean.items() if xy[0]}
        if clean != self.series:
            self.series = clean
            self.refresh()

    def render(self):  # type: ignore[no-untyped-def]
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        if self.ylabel:
            plt.ylabel(self.ylabel)
        if not self.series:
            plt.text("no data yet", x=0.5, y=0.5, alignment="center")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        else:
            for name, (xs, ys) in self.series.items():
                plt.plot(xs, ys, label=name, marker="braille")
            if self.ylim is not None:
                plt.ylim(*self.ylim)
        return super().render()
