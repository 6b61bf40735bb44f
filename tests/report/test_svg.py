"""The inline SVG charts: colour scales, ticks, well-formed markup with one mark per datum."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from xrdiag.report import svg


def test_colour_scale_ends_and_missing() -> None:
    assert svg.colour(0.0, 0.0, 1.0) == "#440154" and svg.colour(1.0, 0.0, 1.0) == "#fde725"
    assert svg.colour(-5, 0.0, 1.0) == "#440154" and svg.colour(9, 0.0, 1.0) == "#fde725"
    assert svg.colour(0.0, -1.0, 1.0, diverging=True) == "#f7f7f7"
    assert svg.colour(None, 0, 1) == svg.colour(math.nan, 0, 1) == "#8888"


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0.2061, 0.2083), (-3, 17), (0, 2500)])
def test_ticks_cover_the_range_in_round_steps(lo: float, hi: float) -> None:
    ticks = svg._ticks(lo, hi)
    assert 2 <= len(ticks) <= 11
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    labels = [svg._tick_label(t, step) for t in ticks]
    assert len(set(labels)) == len(labels)  # distinct labels even for a narrow range


def test_heatmap_has_one_cell_per_value() -> None:
    matrix = [[0.1, None, 0.9], [0.5, 0.6, 0.7]]
    text = svg.heatmap(matrix, ["en", "fr"], ["a", "b&c", "<d>"], "t & t")
    root = ET.fromstring(text)
    cells = [r for r in root.iter("rect") if r.find("title") is not None]
    assert len(cells) == 6
    tips = [r.find("title").text for r in cells]  # type: ignore[union-attr]
    assert "en / b&c: -" in tips and "fr / <d>: 0.700" in tips


def test_line_chart_breaks_at_missing_values() -> None:
    text = svg.line_chart({"loss": [(1, 2.0), (2, 1.5), (3, None), (4, 1.0), (5, 0.9)]}, "c")
    root = ET.fromstring(text)
    assert len(list(root.iter("polyline"))) == 2 and len(list(root.iter("circle"))) == 4


def test_scatter_and_intervals() -> None:
    text = svg.scatter([0, 1, 2], [1, 0, 1], ["en", "fr", "en"], "s")
    root = ET.fromstring(text)
    fills = [c.get("fill") for c in root.iter("circle")]
    assert fills[0] == fills[2] != fills[1]
    text = svg.intervals([("a", 0.5, 0.4, 0.6), ("b", 0.7, None, None)], "f", reference=0.5)
    root = ET.fromstring(text)
    assert len(list(root.iter("circle"))) == 2
    assert any(line.get("stroke-dasharray") for line in root.iter("line"))


def test_whole_number_axes_get_whole_ticks() -> None:
    text = svg.line_chart({"cka": [(0, 0.1), (1, 0.2), (2, 0.3)]}, "by layer", "layer")
    root = ET.fromstring(text)
    labels = [t.text for t in root.iter("text") if t.get("text-anchor") == "middle"]
    assert labels == ["0", "1", "2", "layer"]
