"""The Runs screen (the start screen): every run, evaluation and study under the runs directory.

A table with method, status, last step, elapsed time and the key metric of each; `/` filters,
a click on a header (or keys 1-7) sorts, `g` groups a study's cells under it, space marks rows
and `c` compares the marked ones, enter opens (run -> live view, eval -> diagnostics, study ->
study). The directory is rescanned every few seconds in a worker thread, so statuses follow the
runs without freezing the keys; the first scan shows rows as it finds them (a large tree takes
a while to walk), later ones replace the rows when complete (no flicker), and a rescan never
starts while one is still walking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from xrdiag.tui.messages import CompareTargets, OpenTarget
from xrdiag.tui.runs_index import RunEntry, format_elapsed, iter_runs

RESCAN_S = 3.0
SHOW_EVERY_S = 0.25  # during the first scan: rows found so far are shown this often
STATUS_STYLE = {"running": "bold green", "finished": "cyan", "failed": "bold red",
                "interrupted": "yellow", "pending": "dim", "invalid": "bold red"}  # fmt: skip


def _num(value: float | int | None) -> float:
    return float("-inf") if value is None else float(value)


# (column key, header, sort key)
COLUMNS: list[tuple[str, str, Callable[[RunEntry], Any]]] = [
    ("name", "name", lambda e: e.name),
    ("kind", "kind", lambda e: e.kind),
    ("method", "method", lambda e: e.method),
    ("status", "status", lambda e: e.status),
    ("step", "step", lambda e: _num(e.step)),
    ("elapsed", "elapsed", lambda e: _num(e.elapsed)),
    ("metric", "recall@1", lambda e: _num(e.metric)),
]


def matches(entry: RunEntry, query: str) -> bool:
    """Every whitespace-separated term occurs in the name, kind, method or status."""
    hay = f"{entry.name} {entry.kind} {entry.method} {entry.status}".lower()
    return all(term in hay for term in query.lower().split())


def order_entries(
    entries: list[RunEntry], sort: str, reverse: bool, grouped: bool
) -> list[RunEntry]:
    """Sorted by column `sort`; grouped keeps each study's cells right under it."""
    key = dict((k, f) for k, _, f in COLUMNS)[sort]
    flat = sorted(entries, key=key, reverse=reverse)
    if not grouped:
        return flat
    heads = [e for e in flat if e.kind != "cell"]
    cells: dict[str, list[RunEntry]] = {}
    for e in flat:
        if e.kind == "cell":
            cells.setdefault(e.group, []).append(e)
    out = []
    for head in heads:
        out.append(head)
        out.extend(cells.pop(head.group, []) if head.kind == "study" else [])
    for rest in cells.values():  # cells whose study row was filtered out
        out.extend(rest)
    return out


class RunsScreen(Screen[None]):
    """The table of runs, evals and studies."""

    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
        Binding("d", "diagnostics", "Diagnostics"),
        Binding("s", "sort_next", "Sort"),
        Binding("g", "group", "Group by study"),
        Binding("x", "stop", "Stop run"),
        Binding("n", "new_run", "New run"),
        Binding("D", "demo", "Start demo", show=False),
        Binding("r", "rescan", "Rescan", show=False),
        *[
            Binding(str(i), f"sort_by('{key}')", f"Sort by {label}", show=False)
            for i, (key, label, _) in enumerate(COLUMNS, start=1)
        ],
    ]

    def __init__(self, runs_dir: Path, now: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.now = now or time.time
        self.entries: list[RunEntry] = []
        self.shown: list[RunEntry] = []
        self.marked: set[Path] = set()
        self.filter_text = ""
        self.sort = "name"
        self.reverse = False
        self.grouped = True
        self.scanned = False
        self.scanning = False  # a scan worker is walking the tree
        self.scan_again = False  # a rescan was asked for during it

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: words in name, method, status", id="filter")
        table: DataTable[Any] = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="runs-empty")
        yield Static("", id="runs-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "xrdiag"
        self.sub_title = f"runs in {self.runs_dir}"
        table = self.query_one("#runs", DataTable)
        table.add_column(" ", key="mark", width=1)
        for key, label, _ in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#filter", Input).display = False
        self.query_one("#runs-empty", Static).display = False
        self.rescan()
        self.set_interval(RESCAN_S, self._tick)
        table.focus()

    # -- data ------------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.scanning:  # a walk slower than the interval must finish, not restart
            self.rescan()

    def rescan(self) -> None:
        """Scan the runs directory off the UI thread; during a scan, once more after it."""
        if self.scanning:
            self.scan_again = True
            return
        self.scanning, self.scan_again = True, False
        self._scan()

    @work(thread=True, exclusive=True, group="scan")
    def _scan(self) -> None:
        """Walk the tree; the first time, show rows as they are found."""
        worker = get_current_worker()
        found: list[RunEntry] = []
        shown_at = time.monotonic()
        try:
            for entry in iter_runs(self.runs_dir, now=self.now()):
                if worker.is_cancelled:
                    return
                found.append(entry)
                if not self.scanned and time.monotonic() - shown_at >= SHOW_EVERY_S:
                    self.app.call_from_thread(self.show_partial, list(found))
                    shown_at = time.monotonic()
        finally:
            self.app.call_from_thread(self._scan_done)
        self.app.call_from_thread(self.show_entries, found)

    def _scan_done(self) -> None:
        self.scanning = False
        if self.scan_again:
            self.rescan()

    def show_partial(self, entries: list[RunEntry]) -> None:
        """Rows found so far by a first scan that is still walking."""
        if not self.scanned:
            self.entries = entries
            self.refresh_table()

    def show_entries(self, entries: list[RunEntry]) -> None:
        self.entries = entries
        self.scanned = True
        self.refresh_table()

    def refresh_table(self) -> None:
        """Re-render the rows for the current filter, sort and grouping; keep the cursor row."""
        table = self.query_one("#runs", DataTable)
        current = self.current_entry()
        visible = [e for e in self.entries if matches(e, self.filter_text)]
        self.shown = order_entries(visible, self.sort, self.reverse, self.grouped)
        table.clear()
        for entry in self.shown:
            table.add_row(*self._cells(entry), key=str(entry.path))
        if current is not None and current in self.shown:
            table.move_cursor(row=self.shown.index(current))
        self._update_labels()

    def _cells(self, e: RunEntry) -> list[Any]:
        name = e.name
        if self.grouped and e.kind == "cell":
            name = "  └ " + e.name.split("/", 1)[-1] if "/" in e.name else e.name
        step = "-" if e.step is None else str(e.step)
        if e.max_steps is not None and e.step is not None:
            step = f"{e.step}/{e.max_steps}"
        return [
            Text("●", style="bold magenta") if e.path in self.marked else " ",
            name,
            e.kind,
            e.method,
            self._status(e),
            step,
            format_elapsed(e.elapsed),
            "-" if e.metric is None else f"{e.metric:.3f}",
        ]

    @staticmethod
    def _status(e: RunEntry) -> Text:
        """The status, and who holds the run's lock when someone does."""
        text = Text(e.status, style=STATUS_STYLE.get(e.status, ""))
        if e.holder:
            text.append(f" · lock: {e.holder}", style="dim")
        return text

    def _update_labels(self) -> None:
        empty = self.query_one("#runs-empty", Static)
        if self.scanned and not self.entries:
            empty.update(
                f"No runs, studies or evaluations under {self.runs_dir}.\n\n"
                f"Press [b]D[/b] (shift+d) to start `xrdiag demo --out {self.runs_dir / 'demo'}`"
                " in the background, or [b]n[/b] to start a training run from a config."
            )
            empty.display = True
        else:
            empty.display = False
        table = self.query_one("#runs", DataTable)
        table.display = not empty.display
        if table.display and self.focused is None and self.app.screen is self:
            table.focus()
        arrow = "▼" if self.reverse else "▲"
        parts = [f"{len(self.shown)}/{len(self.entries)} shown", f"sort {self.sort} {arrow}"]
        if self.scanning and not self.scanned:
            parts.append("scanning…")
        if self.filter_text:
            parts.append(f"filter '{self.filter_text}'")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        parts.append("grouped by study" if self.grouped else "flat")
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    def export_target(self) -> list[Path]:
        """What `export: report` writes: the marked rows, else the row under the cursor."""
        if self.marked:
            return [e.path for e in self.entries if e.path in self.marked]
        entry = self.current_entry()
        return [entry.path] if entry is not None else []

    def current_entry(self) -> RunEntry | None:
        table = self.query_one("#runs", DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    # -- actions ---------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected, "#runs")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def action_sort_by(self, column: str) -> None:
        self.sort_by(column)

    def sort_by(self, column: str) -> None:
        """Sort by `column`; the same column again reverses the order."""
        if column not in {k for k, _, _ in COLUMNS}:
            return
        self.reverse = not self.reverse if column == self.sort else False
        self.sort = column
        self.refresh_table()

    def action_sort_next(self) -> None:
        keys = [k for k, _, _ in COLUMNS]
        self.sort = keys[(keys.index(self.sort) + 1) % len(keys)]
        self.reverse = False
        self.refresh_table()

    def action_group(self) -> None:
        self.grouped = not self.grouped
        self.refresh_table()

    def action_open(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            self.post_message(OpenTarget(entry.path, entry.kind))

    def action_diagnostics(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            kind = "eval" if entry.kind != "study" else "study"
            self.post_message(OpenTarget(entry.path, kind))

    def action_mark(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        self.marked.symmetric_difference_update({entry.path})
        table = self.query_one("#runs", DataTable)
        mark = Text("●", style="bold magenta") if entry.path in self.marked else " "
        table.update_cell(str(entry.path), "mark", mark)
        if table.cursor_row < len(self.shown) - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._update_labels()

    def action_compare(self) -> None:
        paths = [e.path for e in self.shown if e.path in self.marked]
        paths += [p for p in self.marked if p not in paths]
        if len(paths) < 2:
            self.notify("Mark two or more rows with space, then press c.", severity="warning")
            return
        self.post_message(CompareTargets(paths))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.refresh_table()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.refresh_table()
        self.query_one("#runs", DataTable).focus()

    def action_stop(self) -> None:
        entry = self.current_entry()
        if entry is None or entry.kind not in ("run", "cell"):
            self.notify("Select a run to stop.", severity="warning")
            return
        self.app.stop_run(entry.path)  # type: ignore[attr-defined]

    def action_new_run(self) -> None:
        self.app.action_new_run()  # type: ignore[attr-defined]

    def action_demo(self) -> None:
        self.app.start_demo()  # type: ignore[attr-defined]

    def action_rescan(self) -> None:
        self.rescan()
