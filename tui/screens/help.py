"""The `?` screen: every key binding of the screen it was opened over, and the app's own.

It reads the bindings from the screens' BINDINGS declarations, so the list cannot drift from
what the keys actually do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static


def binding_rows(bindings: Iterable[Any]) -> list[tuple[str, str]]:
    """(keys, description) from Binding objects or (key, action[, description]) tuples."""
    rows = []
    for item in bindings:
        if isinstance(item, Binding):
            key, action, description = item.key, item.action, item.description
        else:
            key, action, description = item[0], item[1], item[2] if len(item) > 2 else ""
        keys = ", ".join(_key_label(k) for k in key.split(","))
        rows.append((keys, description or action))
    return rows


def _key_label(key: str) -> str:
    names = {"slash": "/", "question_mark": "?", "space": "space", "escape": "esc"}
    return names.get(key.strip(), key.strip())


def screen_bindings(screen: Screen[Any]) -> list[tuple[str, str]]:
    """The bindings a user can press on `screen`, its own first, then the app's."""
    own = binding_rows(getattr(type(screen), "BINDINGS", []))
    app = binding_rows(getattr(type(screen.app), "BINDINGS", []))
    seen = {k for k, _ in own}
    return own + [(k, d) for k, d in app if k not in seen]


class HelpScreen(ModalScreen[None]):
    """A table of keys and what they do; any of esc, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
    ]

    def __init__(self, title: str, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(f"Keys: {self.title_text}", id="help-title")
            table: DataTable[str] = DataTable(id="help-table", cursor_type="none")
            table.add_columns("key", "action")
            table.add_rows(self.rows)
            yield table
            yield Static("esc closes · ctrl+p opens the command palette", id="help-foot")
