"""The Live run screen: training curves beside the alignment as it evolves, tailed from events.

`events.jsonl` is tailed with `EventTail` every half second; the curves are redrawn at most
three times a second and only when new events arrived, so a fast run does not flood the
terminal. Left: loss and its components, lambda with the discriminator accuracy, learning rate,
samples/s. Right: dev recall@1 (overall and seen/unseen, per language or per domain: `v`),
cross-language CKA and probe accuracy, and the newest checkpoint's retrieval heatmap when its
diagnostics exist. `x` stops the run (SIGINT: it checkpoints and exits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Input, Label, RichLog, Static

from xrdiag.core.events import EventTail
from xrdiag.core.layout.dirs import EvalDir, RunDir
from xrdiag.core.layout.lock import LockHolder, lock_holder
from xrdiag.core.layout.status import PENDING, state
from xrdiag.core.training.describe import method_label
from xrdiag.errors import library_failure
from xrdiag.tui.messages import OpenDiagnostics
from xrdiag.tui.run_series import RunSeries
from xrdiag.tui.runs_index import format_elapsed, read_toml
from xrdiag.tui.widgets.curves import Curves

POLL_S = 0.5
REDRAW_S = 0.33
RECALL_VIEWS = ("summary", "per language", "per domain")
LOSS_SKIP = {"lambda", "lr", "grad_norm", "samples_per_s", "step_time", "disc_acc",
             "in_batch_acc"}  # fmt: skip


def live_status(series: RunSeries, now: float) -> str:
    """finished / interrupted / failed from the last event; else running while the pid lives."""
    if series.events == 0:
        return PENDING
    writer = {"pid": series.pid, "host": series.host}
    return state(series.last_kind, writer, series.last_time, now)


class LiveScreen(Screen[None]):
    """One training run, updating as its events arrive."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "stop", "Stop run"),
        Binding("d", "diagnostics", "Diagnostics"),
        Binding("v", "recall_view", "Recall view"),
        Binding("l", "toggle_log", "Log pane"),
    ]

    def __init__(self, run_dir: Path, now: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.now = now or time.time
        self.series = RunSeries()
        self.tail = EventTail(RunDir(run_dir).events_file, tolerant=True)
        self.dirty = True
        self.recall_view = 0
        self.method = "-"
        self.read_error: str | None = None
        self.heatmap_step: str | None = None
        self.holder: LockHolder | None = None  # who holds the run's lock (the writer)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="live-head")
        with Horizontal(id="live-body"):
            with Vertical(id="live-train"):
                yield Curves("loss and components", id="curve-loss")
                with Horizontal(id="live-small"):
                    yield Curves("λ · disc acc", id="curve-lambda")
                    yield Curves("learning rate", id="curve-lr")
                    yield Curves("samples/s", id="curve-speed")
            with Vertical(id="live-align"):
                yield Curves("dev recall@1", ylim=(0.0, 1.0), id="curve-recall")
                yield Curves("CKA and probe accuracy", ylim=(0.0, 1.0), id="curve-cka")
                yield Vertical(Static("", id="heatmap-title"), id="live-heatmap")
        yield RichLog(id="live-log", max_lines=500, wrap=False, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "xrdiag · live run"
        self.sub_title = str(self.run_dir)
        self.method = method_label(read_toml(RunDir(self.run_dir).run_file))
        self.poll()
        self.redraw()
        self.set_interval(POLL_S, self.poll)
        self.set_interval(REDRAW_S, self.redraw)
        self.load_heatmap()

    # -- data ------------------------------------------------------------------------------

    def poll(self) -> None:
        """Read whatever complete events were appended since the last poll.

        A corrupt complete line is skipped (the tail is tolerant) and named in the header.
        """
        events = self.tail.poll()
        self.read_error = self.tail.error
        self.holder = lock_holder(self.run_dir)
        if events:
            self.series.add(events)
            self.dirty = True
            if any(e.get("kind") == "checkpoint" for e in events) or self.series.finished:
                self.load_heatmap()

    def redraw(self) -> None:
        """Push the series into the widgets, if anything changed since the last redraw."""
        self._update_head()
        if not self.dirty:
            return
        self.dirty = False
        s = self.series
        train = s.train
        losses = ["loss"] + [
            k for k in train if k not in LOSS_SKIP and k != "loss" and not k.startswith("disc_")
        ]
        self.query_one("#curve-loss", Curves).set_series(s.lines(train, losses))
        self.query_one("#curve-lambda", Curves).set_series(s.lines(train, ["lambda", "disc_acc"]))
        self.query_one("#curve-lr", Curves).set_series(s.lines(train, ["lr"]))
        self.query_one("#curve-speed", Curves).set_series(s.lines(train, ["samples_per_s"]))
        view = RECALL_VIEWS[self.recall_view]
        group = {"summary": s.recall, "per language": s.recall_lang}.get(view, s.recall_domain)
        recall = self.query_one("#curve-recall", Curves)
        recall.title = f"dev recall@1 · {view} (v)"
        recall.set_series(s.lines(group))
        cka = self.query_one("#curve-cka", Curves)
        chance = [
            f"{name} {s.alignment[f'{name} chance'].values[-1]:.2f}"
            for name in ("lang", "domain")
            if f"{name} chance" in s.alignment
            and s.alignment[f"{name} chance"].values[-1] is not None
        ]
        task = [k for k in ("task mono", "task cross") if k in s.alignment]
        cka.title = (
            "CKA, probe" + (" and task" if task else "") + " accuracy"
            + (f" (chance: {', '.join(chance)})" if chance else "")
        )  # fmt: skip
        cka.set_series(s.lines(s.alignment, ["cka", "lang probe", "domain probe", *task]))
        log = self.query_one("#live-log", RichLog)
        for line in s.drain_log():
            log.write(line)

    def _update_head(self) -> None:
        s, now = self.series, self.now()
        status = live_status(s, now)
        step = f"step {s.step}" + (f"/{s.max_steps}" if s.max_steps else "")
        eta = s.eta() if status == "running" else None
        parts = [self.run_dir.name, self.method, status, step]
        if eta is not None:
            parts.append(f"ETA {format_elapsed(eta)}")
        if self.holder is not None:
            parts.append(f"lock: {self.holder.describe()}")
        elif s.pid is not None:
            parts.append(f"pid {s.pid}")
        parts.append(f"{s.events} events")
        if self.read_error:
            parts.append(f"skipped a bad line: {self.read_error}")
        self.query_one("#live-head", Static).update(" · ".join(parts))

    @work(thread=True, exclusive=True, group="heatmap")
    def load_heatmap(self) -> None:
        """The newest checkpoint's retrieval heatmap, from RUN/diagnostics/step-N/."""
        found = [d.root for d in RunDir(self.run_dir).evaluated()]
        if not found or found[-1].name == self.heatmap_step:
            if not found:
                self.app.call_from_thread(self._show_no_heatmap)
            return
        try:
            import polars as pl

            from xrdiag.analyses.schema import PRIMARY_RECALL
            from xrdiag.report import tables
            from xrdiag.tui.widgets import result_table as rt

            results = pl.read_parquet(EvalDir(found[-1]).results)
            layer = max(tables.layers(results, "retrieval"))
            target = tables.default_target(tables.languages(results)) or "en"
            matrix = rt.retrieval_by_domain(results, PRIMARY_RECALL, layer, target)
        except BaseException as exc:  # noqa: BLE001 - no heatmap is not worth a crash
            if not library_failure(exc):
                raise
            self.app.call_from_thread(self._show_no_heatmap, f"heatmap unavailable: {exc}")
            return
        self.app.call_from_thread(self._show_heatmap, found[-1].name, matrix, target, layer)

    def _show_no_heatmap(self, text: str | None = None) -> None:
        self.query_one("#heatmap-title", Static).update(
            text or "no checkpoint diagnostics yet · d opens Diagnostics (computes them)"
        )

    def _show_heatmap(self, step: str, matrix: Any, target: str, layer: int) -> None:
        from xrdiag.tui.widgets.heatmap import Heatmap

        self.heatmap_step = step
        box = self.query_one("#live-heatmap", Vertical)
        for old in box.query(Heatmap):
            old.remove()
        title = f"{step}: recall@1 into {target} (cos, layer {layer}) · language × domain"
        self.query_one("#heatmap-title", Static).update(title)
        heatmap = Heatmap(id="live-heatmap-table")
        box.mount(heatmap)
        heatmap.show(matrix)

    # -- actions ---------------------------------------------------------------------------

    def action_stop(self) -> None:
        self.app.stop_run(self.run_dir)  # type: ignore[attr-defined]

    def action_diagnostics(self) -> None:
        self.post_message(OpenDiagnostics(self.run_dir))

    def action_recall_view(self) -> None:
        self.recall_view = (self.recall_view + 1) % len(RECALL_VIEWS)
        self.dirty = True
        self.redraw()

    def action_toggle_log(self) -> None:
        log = self.query_one("#live-log", RichLog)
        log.display = not log.display

    def export_target(self) -> list[Path]:
        return [self.run_dir]


class NewRunScreen(ModalScreen[tuple[str, str] | None]):
    """Ask for a config file and a run name; answers (config, name) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="new-run-box"):
            yield Label("Start a training run: xrdiag train --config CONFIG --out RUNS/NAME")
            yield Input(placeholder="config file (TOML)", id="new-run-config")
            yield Input(
                placeholder="run name (a new directory under the runs dir)", id="new-run-name"
            )
            with Horizontal(id="new-run-buttons"):
                yield Button("Start", variant="primary", id="new-run-start")
                yield Button("Cancel", id="new-run-cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "new-run-config":
            self.query_one("#new-run-name", Input).focus()
        else:
            self._answer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new-run-start":
            self._answer()
        else:
            self.dismiss(None)

    def _answer(self) -> None:
        config = self.query_one("#new-run-config", Input).value.strip()
        name = self.query_one("#new-run-name", Input).value.strip()
        if not config or not name or "/" in name:
            self.notify("Give a config file and a plain run name.", severity="warning")
            return
        self.dismiss((config, name))

    def action_cancel(self) -> None:
        self.dismiss(None)
