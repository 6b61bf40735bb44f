"""Messages the dashboard's screens post to the app: open a view of a path, start or stop runs.

Screens never push each other directly; they say what the user asked for and the app decides
which screen shows it, so a screen that is not written yet (or fails to import) costs a
notification, not a crash.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class OpenTarget(Message):
    """Show `path`: a run (live view), an eval dir (diagnostics) or a study."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__()
        self.path = path
        self.kind = kind


class OpenDiagnostics(Message):
    """Show the diagnostics of an eval dir, a run (its newest checkpoint) or a checkpoint."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class CompareTargets(Message):
    """Show two or more eval dirs, runs or checkpoints side by side."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = paths


class RunsChanged(Message):
    """A run was started or stopped: the runs list should rescan now."""
