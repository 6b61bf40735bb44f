"""The command palette (ctrl+p): category-prefixed commands such as `run: stop`.

Each command names an action; the palette runs it on the current screen when that screen has
it (stop the run shown, compare the marked rows), else on the app. Commands a screen cannot
carry out are not offered there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (title, action, help); actions resolve on the screen first, then on the app.
COMMANDS: list[tuple[str, str, str]] = [
    ("run: stop", "stop", "SIGINT the run shown or selected: it checkpoints and exits"),
    ("run: start from config", "new_run", "Start `xrdiag train --config X` as its own process"),
    ("run: start demo", "demo", "Start `xrdiag demo` into the runs directory"),
    ("open: diagnostics", "diagnostics", "Diagnostics of the selected run, checkpoint or eval"),
    ("open: compare marked", "compare", "Compare the rows marked with space"),
    ("open: help", "help", "Key bindings of this screen"),
    ("export: report html", "export('html')", "Write an HTML report of this view"),
    ("export: report md", "export('md')", "Write a Markdown report of this view"),
    ("export: report json", "export('json')", "Write a JSON report of this view"),
    ("view: toggle theme", "toggle_theme", "Switch between the light and dark theme"),
    ("view: group by study", "group", "Group or ungroup a study's runs"),
    ("view: rescan runs", "rescan", "Look for new runs now"),
]


def _action_name(action: str) -> str:
    return action.split("(", 1)[0]


class XrdiagCommands(Provider):
    """xrdiag's own commands for the palette."""

    def _available(self) -> list[tuple[str, Callable[[], Any], str]]:
        screen, app = self.screen, self.app
        out: list[tuple[str, Callable[[], Any], str]] = []
        for title, action, help_text in COMMANDS:
            name = _action_name(action)
            if hasattr(screen, f"action_{name}"):
                target = "screen"
            elif hasattr(app, f"action_{name}"):
                target = "app"
            else:
                continue
            out.append((title, partial(app.run_action, f"{target}.{action}"), help_text))
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._available():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._available():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
