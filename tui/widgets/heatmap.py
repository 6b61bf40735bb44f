"""A heatmap: a DataTable whose cells are coloured from a value scale.

Used for language x domain and language x language grids (retrieval, CKA, deltas between two
checkpoints). Sequential grids run dark-to-bright; delta grids are diverging around zero so the
sign reads at a glance. The colour is a reading aid: each cell also prints its number.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from xrdiag.tui.widgets.result_table import Cell, Matrix

# Perceptually ordered stops (viridis-like), and a blue-grey-red diverging scale.
SEQUENTIAL = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
DIVERGING = ((33, 102, 172), (146, 197, 222), (64, 64, 64), (244, 165, 130), (178, 24, 43))


def _lerp(stops: tuple[tuple[int, int, int], ...], t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    pos = t * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    frac = pos - i
    a, b = stops[i], stops[i + 1]
    return (
        round(a[0] + (b[0] - a[0]) * frac),
        round(a[1] + (b[1] - a[1]) * frac),
        round(a[2] + (b[2] - a[2]) * frac),
    )


def heat_rgb(value: float, lo: float, hi: float, diverging: bool = False) -> tuple[int, int, int]:
    """The colour of `value` on [lo, hi]; diverging scales are symmetric around zero."""
    if diverging:
        bound = max(abs(lo), abs(hi)) or 1.0
        return _lerp(DIVERGING, 0.5 + value / (2 * bound))
    span = hi - lo
    return _lerp(SEQUENTIAL, 0.5 if span <= 0 else (value - lo) / span)


def _ink(rgb: tuple[int, int, int]) -> str:
    """Black or white text, whichever reads better on `rgb` (relative luminance)."""
    lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return "black" if lum > 140 else "white"


class Heatmap(DataTable):
    """A DataTable showing a `Matrix`, one coloured cell per figure, row labels first."""

    DEFAULT_CSS = """
    Heatmap { height: auto; max-height: 100%; }
    """

    def __init__(self, *, fmt: str = "{:.2f}", **kwargs: object) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.fmt = fmt
        self.matrix: Matrix | None = None
        self.diverging = False

    def show(
        self,
        matrix: Matrix,
        *,
        lo: float | None = None,
        hi: float | None = None,
        diverging: bool = False,
        corner: str = "",
    ) -> None:
        """Replace the table with `matrix`; the scale defaults to the matrix's own range."""
        self.matrix = matrix
        self.diverging = diverging
        values = matrix.values()
        lo = min(values, default=0.0) if lo is None else lo
        hi = max(values, default=1.0) if hi is None else hi
        self.clear(columns=True)
        self.add_column(corner, key="__row__")
        for col in matrix.cols:
            self.add_column(col, key=col)
        for row in matrix.rows:
            cells = [self._render(matrix.get(row, col), lo, hi) for col in matrix.cols]
            self.add_row(Text(row, style="bold"), *cells, key=row)
        if matrix.cols and matrix.rows:
            self.move_cursor(row=0, column=1)

    def _render(self, cell: Cell | None, lo: float, hi: float) -> Text:
        if cell is None or cell.value is None:
            return Text("·", style="dim", justify="right")
        rgb = heat_rgb(cell.value, lo, hi, self.diverging)
        label = self.fmt.format(cell.value) + (cell.mark or " ")
        style = Style(bgcolor=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", color=_ink(rgb))
        return Text(f" {label}", style=style, justify="right")

    def cell_at(self, row_index: int, col_index: int) -> tuple[str, str, Cell | None] | None:
        """(row label, column label, cell) under a table coordinate; the label column is None."""
        if self.matrix is None or col_index == 0:
            return None
        if not (0 <= row_index < len(self.matrix.rows)):
            return None
        if not (0 < col_index <= len(self.matrix.cols)):
            return None
        row = self.matrix.rows[row_index]
        col = self.matrix.cols[col_index - 1]
        return row, col, self.matrix.get(row, col)


def describe(row: str, col: str, cell: Cell | None, fmt: str = "{:.3f}") -> str:
    """One line about a cell: value, interval, sample size and candidate pool."""
    if cell is None or cell.value is None:
        return f"{row} · {col}: no figure"
    text = f"{row} · {col}: {fmt.format(cell.value)}"
    if cell.ci_low is not None and cell.ci_high is not None:
        text += f"  [{fmt.format(cell.ci_low)}, {fmt.format(cell.ci_high)}]"
    if cell.n is not None:
        text += f"  n={cell.n}"
    if cell.pool is not None:
        text += f"  pool={cell.pool}"
    if cell.mark:
        text += "  significant"
    return text
