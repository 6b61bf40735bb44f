"""Inline SVG charts for the HTML report: heatmaps, line charts, scatter plots, interval plots.

Plain strings, no plotting library and nothing external: the report must open with no network.
Text and axes use `currentColor`, so the page's light or dark theme colours them; data colours
(viridis, a diverging blue-red, the Okabe-Ito palette) read on both backgrounds. Every mark
carries a `<title>`, which browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

Number = float | int | None
MAX_MARKERS = 120  # points of a series drawn as hoverable markers; longer series: the line only

# Viridis at 9 stops (Smith & van der Walt 2015, matplotlib's default map).
_VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c",
            "#28ae80", "#5ec962", "#addc30", "#fde725")  # fmt: skip
_DIVERGING = ("#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b")
# Okabe & Ito (2008), a colour-blind-safe qualitative palette, extended with a few greys/browns.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#999999", "#882255", "#44AA99", "#117733", "#AA4499", "#DDCC77", "#332288")  # fmt: skip


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def _lerp(stops: Sequence[str], t: float) -> str:
    t = min(1.0, max(0.0, t)) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    a, b, f = _hex(stops[i]), _hex(stops[i + 1]), t - i
    r, g, bl = (round(a[k] + (b[k] - a[k]) * f) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def colour(value: Number, vmin: float, vmax: float, diverging: bool = False) -> str:
    """Fill colour of a value on a sequential (viridis) or diverging scale; grey when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "#8888"
    span = (vmax - vmin) or 1.0
    return _lerp(_DIVERGING if diverging else _VIRIDIS, (float(value) - vmin) / span)


def _ink(fill: str) -> str:
    """Black or white text, whichever reads on the fill (relative luminance, WCAG 2.1)."""
    if len(fill) != 7:
        return "currentColor"
    r, g, b = (c / 255 for c in _hex(fill))
    return "#000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#fff"


def _t(x: float, y: float, text: str, anchor: str = "start", size: int = 11, **attrs: str) -> str:
    attrs.setdefault("fill", "currentColor")
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
        f"{extra}>{escape(text)}</text>"
    )


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" role="img" '
        f'aria-label={quoteattr(label)} width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">' + "".join(body) + "</svg>"
    )


def fmt(value: Number, digits: int = 3) -> str:
    """A number for a cell or tooltip: `-` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def heatmap(
    matrix: Sequence[Sequence[Number]],
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    vmin: float = 0.0,
    vmax: float = 1.0,
    diverging: bool = False,
    cell: int = 34,
    digits: int = 2,
) -> str:
    """A labelled grid of coloured cells, values printed inside, with a colour bar."""
    left = 10 + 7 * max((len(r) for r in rows), default=1)
    top = 30 + 6 * max((len(c) for c in cols), default=1)
    width = max(left + cell * len(cols) + 70, 12 + 7.5 * len(title))
    height = top + cell * len(rows) + 12
    body = [_t(4, 16, title, size=13, font_weight="bold")]
    for j, col in enumerate(cols):
        x, y = left + cell * (j + 0.5), top - 6
        body.append(_t(x, y, col, transform=f"rotate(-45 {x:.1f} {y:.1f})"))
    for i, row in enumerate(rows):
        y = top + cell * i
        body.append(_t(left - 6, y + cell / 2 + 4, row, anchor="end"))
        for j, col in enumerate(cols):
            v = matrix[i][j]
            fill = colour(v, vmin, vmax, diverging)
            x = left + cell * j
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}">'
                f"<title>{escape(f'{row} / {col}: {fmt(v)}')}</title></rect>"
            )
            if cell >= 26:
                label = fmt(v, digits).replace("0.", ".", 1) if v is not None else ""
                body.append(
                    _t(x + cell / 2, y + cell / 2 + 4, label, "middle", 10, fill=_ink(fill))
                )
    bar_x, steps = left + cell * len(cols) + 14, 20
    bar_h = max(cell * len(rows), 60)
    for k in range(steps):
        v = vmax - (vmax - vmin) * (k + 0.5) / steps
        y_bar = top + bar_h * k / steps
        body.append(
            f'<rect x="{bar_x}" y="{y_bar:.1f}" width="12" height="{bar_h / steps + 0.5:.1f}" '
            f'fill="{colour(v, vmin, vmax, diverging)}"/>'
        )
    body.append(_t(bar_x + 16, top + 8, fmt(vmax, 2), size=10))
    body.append(_t(bar_x + 16, top + bar_h, fmt(vmin, 2), size=10))
    return _svg(width, max(height, top + bar_h + 12), body, title)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick positions covering [lo, hi] (1-2-5 steps)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(v: float, step: float) -> str:
    """A tick with as many decimals as its step needs (0.2071, 0.2073 rather than 0.207 twice)."""
    if abs(v) >= 1e5 or 0 < step < 1e-6:
        return f"{v:.3e}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 3
    return f"{v:.{decimals}f}"


def _frame(
    xlo: float,
    xhi: float,
    ylo: float,
    yhi: float,
    size: tuple[int, int, int, int],
    xlabel: str,
    integer_x: bool = False,
) -> tuple[list[str], Callable[[float], float], Callable[[float], float]]:
    """Axes with ticks; returns the marks and the x/y data-to-pixel maps."""
    left, top, w, h = size

    def sx(v: float) -> float:
        return left + (v - xlo) / ((xhi - xlo) or 1) * w

    def sy(v: float) -> float:
        return top + h - (v - ylo) / ((yhi - ylo) or 1) * h

    body = [
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" '
        f'stroke="currentColor" stroke-opacity="0.35"/>'
    ]
    yt, xt = _ticks(ylo, yhi), _ticks(xlo, xhi)
    if integer_x and len([t for t in xt if float(t).is_integer()]) >= 2:
        xt = [t for t in xt if float(t).is_integer()]  # layers and steps are whole numbers
    ystep = yt[1] - yt[0] if len(yt) > 1 else 0.0
    xstep = xt[1] - xt[0] if len(xt) > 1 else 0.0
    for v in yt:
        body.append(
            f'<line x1="{left}" x2="{left + w}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" '
            f'stroke="currentColor" stroke-opacity="0.12"/>'
        )
        body.append(_t(left - 4, sy(v) + 4, _tick_label(v, ystep), "end", 10))
    for v in xt:
        body.append(_t(sx(v), top + h + 14, _tick_label(v, xstep), "middle", 10))
    body.append(_t(left + w / 2, top + h + 30, xlabel, "middle", 11))
    return body, sx, sy


def _bounds(values: Sequence[float], lo: float | None, hi: float | None) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    a = min(finite, default=0.0) if lo is None else lo
    b = max(finite, default=1.0) if hi is None else hi
    if a == b:
        a, b = a - 0.5, b + 0.5
    return a, b


def _legend(names: Sequence[str], x: float, top: float) -> list[str]:
    body = []
    for k, name in enumerate(names):
        y = top + 14 * k
        body.append(f'<rect x="{x}" y="{y:.1f}" width="10" height="10" fill="{PALETTE[k % 14]}"/>')
        body.append(_t(x + 14, y + 9, name, size=10))
    return body


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    title: str,
    xlabel: str = "step",
    ymin: float | None = None,
    ymax: float | None = None,
    width: int = 560,
    height: int = 260,
) -> str:
    """One polyline per series (gaps where a value is missing), with points and a legend."""
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y is not None]
    xlo, xhi = _bounds(xs, None, None)
    ylo, yhi = _bounds(ys, ymin, ymax)
    legend_w = 10 + 6 * max((len(s) for s in series), default=0)
    size = (48, 26, width - 60 - legend_w, height - 66)
    whole = all(float(x).is_integer() for x in xs)
    body, sx, sy = _frame(xlo, xhi, ylo, yhi, size, xlabel, integer_x=whole)
    body.insert(0, _t(4, 16, title, size=13, font_weight="bold"))
    for k, (name, pts) in enumerate(series.items()):
        c = PALETTE[k % 14]
        segment: list[str] = []
        for x, y in [*pts, (math.nan, None)]:
            if y is None or not math.isfinite(y):
                if len(segment) > 1:
                    body.append(
                        f'<polyline fill="none" stroke="{c}" stroke-width="1.8" '
                        f'points="{" ".join(segment)}"/>'
                    )
                segment = []
                continue
            px, py = sx(x), sy(y)
            segment.append(f"{px:.1f},{py:.1f}")
            if len(pts) <= MAX_MARKERS:
                body.append(
                    f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.2" fill="{c}">'
                    f"<title>{escape(f'{name} at {xlabel} {x:g}: {fmt(y, 4)}')}</title></circle>"
                )
    body += _legend(list(series), size[0] + size[2] + 10, size[1])
    return _svg(width, height, body, title)


def scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    groups: Sequence[str],
    title: str,
    labels: Sequence[str] | None = None,
    width: int = 520,
    height: int = 400,
) -> str:
    """Points coloured by group (categories in sorted order), with a legend."""
    names = sorted(set(groups))
    index = {g: k for k, g in enumerate(names)}
    xlo, xhi = _bounds(xs, None, None)
    ylo, yhi = _bounds(ys, None, None)
    legend_w = 14 + 6 * max((len(n) for n in names), default=0)
    size = (44, 26, width - 56 - legend_w, height - 60)
    body, sx, sy = _frame(xlo, xhi, ylo, yhi, size, "")
    body.insert(0, _t(4, 16, title, size=13, font_weight="bold"))
    for k, (x, y, g) in enumerate(zip(xs, ys, groups, strict=True)):
        tip = f"{g}" + (f" {labels[k]}" if labels else "")
        body.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" fill="{PALETTE[index[g] % 14]}" '
            f'fill-opacity="0.8"><title>{escape(tip)}</title></circle>'
        )
    body += _legend(names, size[0] + size[2] + 10, size[1])
    return _svg(width, height, body, title)


def intervals(
    items: Sequence[tuple[str, float | None, float | None, float | None]],
    title: str,
    reference: float | None = None,
    width: int = 560,
) -> str:
    """A forest plot: one row per (label, value, ci_low, ci_high), optional reference line."""
    left = 12 + 7 * max((len(i[0]) for i in items), default=4)
    row_h, top = 22, 28
    height = top + row_h * len(items) + 40
    values = [v for _, *vals in items for v in vals if v is not None]
    if reference is not None:
        values.append(reference)
    lo, hi = _bounds(values, None, None)
    pad = (hi - lo) * 0.05
    size = (left, top, width - left - 20, row_h * len(items))
    body, sx, _ = _frame(lo - pad, hi + pad, 0, 1, size, "")
    body = [b for b in body if 'stroke-opacity="0.12"' not in b and 'text-anchor="end"' not in b]
    body.insert(0, _t(4, 16, title, size=13, font_weight="bold"))
    if reference is not None:
        x = sx(reference)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + size[3]}" '
            f'stroke="currentColor" stroke-dasharray="4 3" stroke-opacity="0.6"/>'
        )
    for k, (label, v, a, b) in enumerate(items):
        y = top + row_h * (k + 0.5)
        body.append(_t(left - 6, y + 4, label, "end"))
        c = PALETTE[k % 14]
        if a is not None and b is not None:
            body.append(
                f'<line x1="{sx(a):.1f}" x2="{sx(b):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{c}" stroke-width="2"/>'
            )
        if v is not None:
            tip = f"{label}: {fmt(v, 4)} [{fmt(a, 4)}, {fmt(b, 4)}]"
            body.append(
                f'<circle cx="{sx(v):.1f}" cy="{y:.1f}" r="4" fill="{c}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    return _svg(width, height, body, title)
