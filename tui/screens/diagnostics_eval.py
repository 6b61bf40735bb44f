"""Computing a checkpoint's missing or stale diagnostics in the background, for DiagnosticsScreen.

`run_eval` runs in a thread worker while the screen stays interactive: the progress bar and the
status line follow it, and the screen reloads its results when the worker ends (an error is
shown, never raised into the app).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.widgets import ProgressBar, Static
from textual.worker import Worker, WorkerState

from xrdiag.core.layout.resolve import DiagnosticsSource, has_weights

# A seeded cap of ids per domain when the screen was given no options (as in the demo).
DEFAULT_CAP = 100


class BackgroundEval:
    """Mixed into a Screen that has `source`, `corpus`, `eval_options`, `evaluating`,
    `message` and `load()`."""

    source: DiagnosticsSource
    corpus: str | Path | None
    eval_options: Any
    evaluating: bool
    message: str

    def action_evaluate(self) -> None:
        if self.source.checkpoint is None or not has_weights(self.source.checkpoint):
            self.notify("nothing to evaluate: no checkpoint weights behind these diagnostics")
            return
        self.start_eval("requested")

    def start_eval(self, reason: str) -> None:
        """Run `run_eval` on the checkpoint in a thread; the screen stays interactive."""
        if self.evaluating:
            return
        self.evaluating = True
        self.query_one("#diag-progress").add_class("running")
        self.query_one("#diag-status", Static).update(f"evaluating ({reason})…")
        self._eval_worker()

    @work(thread=True, exclusive=True, group="diagnostics-eval", exit_on_error=False)
    def _eval_worker(self) -> None:
        from xrdiag.core.evaluate import EvalOptions, run_eval

        # A seeded cap of 100 ids per domain (as in the demo): the whole bundled corpus would
        # take ~10 minutes on a CPU, while 100 per domain keeps the bootstrap intervals useful.
        options = self.eval_options or EvalOptions(layers="all", max_per_domain=DEFAULT_CAP)
        assert self.source.checkpoint is not None

        def progress(name: str, done: int, total: int | None) -> None:
            self.app.call_from_thread(self._progress, name, done, total)

        run_eval(str(self.source.checkpoint), self.corpus, self.source.eval_dir, options, progress)

    def _progress(self, name: str, done: int, total: int | None) -> None:
        bar = self.query_one("#diag-bar", ProgressBar)
        bar.update(total=total, progress=done)
        count = f" {done}/{total}" if total else ""
        self.query_one("#diag-status", Static).update(f"evaluating: {name}{count}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "diagnostics-eval":
            return
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.evaluating = False
        self.query_one("#diag-progress").remove_class("running")
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.message = f"evaluation failed: {error}"
            self.notify(self.message, severity="error", timeout=10)
        self.load()
