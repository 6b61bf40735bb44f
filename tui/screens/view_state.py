"""What the Diagnostics and Compare screens show, and the keys that move it: one state, one set
of bindings, so both screens cycle the same fields the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from textual.binding import Binding

from xrdiag.analyses.schema import metric_name
from xrdiag.tui.widgets import result_table as rt


def cycle(options: Sequence[Any], current: Any, step: int = 1) -> Any:
    if not options:
        return current
    if current not in options:
        return options[0]
    return options[(list(options).index(current) + step) % len(options)]


@dataclass
class ViewState:
    """What the views currently show; every key press moves one of these along its options."""

    base: str = "recall@1"
    scoring: str = "cos"
    correction: str = "none"
    layer: int | None = None
    target: str | None = None
    cka_domain: str = rt.ALL
    ret_view: str = "domain"
    color_by: str = "lang"

    @property
    def metric(self) -> str:
        return metric_name(self.base, self.scoring, self.correction)


# The view keys Diagnostics and Compare share (both cycle the same ViewState fields).
VIEW_BINDINGS = [
    Binding("m", "cycle('base')", "metric"),
    Binding("s", "cycle('scoring')", "scoring"),
    Binding("c", "cycle('correction')", "correction"),
    Binding("l", "cycle('layer')", "layer"),
    Binding("t", "cycle('target')", "target"),
    Binding("d", "cycle('cka_domain')", "domain"),
]
COLOUR_BINDING = Binding("k", "cycle('color_by')", "colour by")


def tab_bindings(tabs: tuple[str, ...]) -> list[Binding]:
    """Keys 1..n switch to the n tabs (hidden from the footer)."""
    return [Binding(str(i + 1), f"tab('{tab}')", tab, show=False) for i, tab in enumerate(tabs)]
