"""A bare Textual app that shows one screen, for testing a screen apart from the dashboard's
shell (tested on its own). On the test path through pyproject's `pythonpath`."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App
from textual.screen import Screen


class ScreenApp(App):
    """A bare app that shows one screen."""

    def __init__(self, make: Callable[[], Screen]) -> None:
        super().__init__()
        self.make = make

    def on_mount(self) -> None:
        self.push_screen(self.make())
