"""The dashboard application: the Runs screen first, then live runs, diagnostics, comparisons.

`run_app(runs_dir)` is what `xrdiag` and `xrdiag ui` call. Start-up imports only Textual and
the light parts of xrdiag (no torch, no transformers, no polars until a row needs it), so the
first screen paints at once. Training always runs as its own process (`xrdiag train` started
with `start_new_session=True`): closing the app never stops a run, and reopening reattaches by
tailing its events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import App
from textual.binding import Binding

from xrdiag.tui.commands import XrdiagCommands
from xrdiag.tui.messages import CompareTargets, OpenDiagnostics, OpenTarget, RunsChanged
from xrdiag.tui.runs_index import run_entry
from xrdiag.tui.screens.runs import RunsScreen

DARK, LIGHT = "textual-dark", "textual-light"
LOG_DIR = ".logs"


class XrdiagApp(App[None]):
    """Runs, live training, diagnostics, comparison and study screens over one runs directory."""

    CSS_PATH = "xrdiag.tcss"
    TITLE = "xrdiag"
    COMMANDS = App.COMMANDS | {XrdiagCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+p", "command_palette", "Commands", show=False),
        Binding("t", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        runs_dir: Path | str = "runs",
        *,
        now: Callable[[], float] | None = None,
        python: str | None = None,
    ) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.now = now or time.time
        self.python = python or sys.executable
        self.children_started: list[subprocess.Popen[bytes]] = []
        self.theme = DARK

    def on_mount(self) -> None:
        self.set_interval(1.0, self._reap)
        self.push_screen(RunsScreen(self.runs_dir, now=self.now))

    # -- navigation ------------------------------------------------------------------------

    # Screens are imported when first opened (plotting widgets are not needed to list runs);
    # an import error in one of them is a bug and surfaces as one.

    @on(OpenTarget)
    def _open_target(self, message: OpenTarget) -> None:
        if message.kind in ("run", "cell"):
            from xrdiag.tui.screens.live import LiveScreen

            self.push_screen(LiveScreen(message.path, now=self.now))
        elif message.kind == "study":
            from xrdiag.tui.screens.study import StudyScreen

            self.push_screen(StudyScreen(message.path))
        else:
            self._open_diagnostics(OpenDiagnostics(message.path))

    @on(OpenDiagnostics)
    def _open_diagnostics(self, message: OpenDiagnostics) -> None:
        from xrdiag.tui.screens.diagnostics import DiagnosticsScreen

        self.push_screen(DiagnosticsScreen(message.path))

    @on(CompareTargets)
    def _compare(self, message: CompareTargets) -> None:
        from xrdiag.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(message.paths))

    # -- runs as processes -----------------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start `python -m xrdiag ARGS` in its own session, output to runs/.logs/NAME.log."""
        logs = self.runs_dir / LOG_DIR
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{log_name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [self.python, "-m", "xrdiag", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children_started.append(proc)
        return proc

    def _reap(self) -> None:
        """Collect exited children so their pids stop looking alive (zombies answer kill 0)."""
        for proc in self.children_started:
            proc.poll()

    def start_run(self, config: Path, name: str) -> Path | None:
        """`xrdiag train --config CONFIG --out RUNS/NAME` as a process of its own."""
        out = self.runs_dir / name
        if not config.is_file():
            self.notify(f"{config}: no such config file", severity="error")
            return None
        if out.exists() and any(out.iterdir()):
            self.notify(f"{out}: exists and is not empty; pick another name", severity="error")
            return None
        self._spawn(["train", "--config", str(config), "--out", str(out)], name)
        self.notify(f"started training into {out}")
        self.post_message(RunsChanged())
        return out

    def start_demo(self) -> None:
        """`xrdiag demo --out RUNS/demo` in the background."""
        self._spawn(["demo", "--out", str(self.runs_dir / "demo")], "demo")
        self.notify(f"started `xrdiag demo` into {self.runs_dir / 'demo'}")

    def stop_run(self, run: Path) -> bool:
        """SIGINT the process writing `run` (it finishes its step, checkpoints and exits)."""
        entry = run_entry(run, run.name, self.now())
        if entry.status != "running" or entry.pid is None:
            self.notify(f"{run.name} is not running ({entry.status})", severity="warning")
            return False
        try:
            os.kill(entry.pid, signal.SIGINT)
        except OSError as exc:
            self.notify(f"could not stop pid {entry.pid}: {exc}", severity="error")
            return False
        self.notify(f"sent SIGINT to pid {entry.pid}: {run.name} checkpoints and stops")
        return True

    @on(RunsChanged)
    def _runs_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, RunsScreen):
                screen.rescan()

    # -- everywhere ------------------------------------------------------------------------

    def action_help(self) -> None:
        from xrdiag.tui.screens.help import HelpScreen, screen_bindings

        if type(self.screen).__name__ == "HelpScreen":
            return
        title = type(self.screen).__name__.removesuffix("Screen") or "xrdiag"
        self.push_screen(HelpScreen(title, screen_bindings(self.screen)))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def action_new_run(self) -> None:
        from xrdiag.tui.screens.live import NewRunScreen

        def started(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self.start_run(Path(answer[0]).expanduser(), answer[1])

        self.push_screen(NewRunScreen(), started)

    def action_export(self, fmt: str) -> None:
        """Write a report of the current view's target through the report layer."""
        target = getattr(self.screen, "export_target", None)
        paths = target() if callable(target) else None
        if not paths:
            self.notify("Nothing to export on this screen.", severity="warning")
            return
        self._export(list(paths), fmt)

    def _export(self, paths: list[Path], fmt: str) -> None:
        def job() -> None:
            from xrdiag.report.build import write_report

            out = self.runs_dir / "reports" / Path(paths[0]).name
            try:
                written = write_report(paths, out, formats=(fmt,))
            except Exception as exc:  # noqa: BLE001 - shown to the user, the app goes on
                self.call_from_thread(self.notify, f"export failed: {exc}", severity="error")
                return
            self.call_from_thread(self.notify, f"wrote {', '.join(map(str, written.values()))}")

        self.run_worker(job, thread=True, group="export")


def run_app(runs_dir: Path) -> None:
    """Open the dashboard on `runs_dir` (it need not exist yet)."""
    XrdiagApp(runs_dir).run()
