"""The Compare screen: two or more checkpoints side by side, every view with its deltas.

The numbers are those of `xrdiag compare`: `load_comparable` reads the inputs (re-evaluating on
shared rows when they differ, in a thread worker so the screen stays live) and
`compare_results` pairs every metric cell of the reference A with each other input. The screen
shows A, the selected B and B - A for retrieval (query language x domain) and CKA (language x
language), a table of the per-layer scalars (probes, geometry), and both projections. `*` marks
a significant delta; the diff-only toggle hides deltas within the threshold.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from xrdiag.report import tables
from xrdiag.tui.screens.view_state import (
    COLOUR_BINDING,
    VIEW_BINDINGS,
    ViewState,
    cycle,
    tab_bindings,
)
from xrdiag.tui.widgets import result_table as rt
from xrdiag.tui.widgets.heatmap import Heatmap, describe
from xrdiag.tui.widgets.scatter import ProjectionScatter

SCALARS = (
    "lang_probe_acc",
    "domain_probe_acc",
    "lang_probe_chance",
    "domain_probe_chance",
    "isotropy_partition_ratio",
    "mean_random_cosine",
)
TABS = ("retrieval", "cka", "scalars", "projection")


class CompareScreen(Screen):
    """Side-by-side comparison of checkpoints."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("f", "toggle_diff", "diff only"),
        Binding("b", "next_other", "next B"),
        *VIEW_BINDINGS,
        COLOUR_BINDING,
        *tab_bindings(TABS),
    ]

    DEFAULT_CSS = """
    CompareScreen #cmp-title, CompareScreen #cmp-notes { height: auto; padding: 0 1; }
    CompareScreen #cmp-title { text-style: bold; }
    CompareScreen #cmp-notes.empty { display: none; }
    CompareScreen TabbedContent, CompareScreen TabPane { height: 1fr; }
    CompareScreen VerticalScroll { height: 1fr; }
    CompareScreen .controls { height: 1; color: $text-muted; }
    CompareScreen .side { height: 1; text-style: bold; margin-top: 1; }
    CompareScreen .detail { height: 1; }
    CompareScreen #cmp-scalars { height: 1fr; }
    CompareScreen ProjectionScatter { width: 1fr; height: 1fr; }
    """

    def __init__(self, targets: list[Path], *, threshold: float = 0.01) -> None:
        super().__init__()
        self.targets = [Path(t) for t in targets]
        self.threshold = threshold
        self.frames: list[pl.DataFrame] = []
        self.labels: list[str] = []
        self.notes: list[str] = []
        self.projections: list[pl.DataFrame] = []
        self.comparison = pl.DataFrame()
        self.other = 1
        self.diff_only = False
        self.state = ViewState()
        self.pending = True

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Compare · loading…", id="cmp-title", markup=False)
        yield Static("", id="cmp-notes", classes="empty", markup=False)
        with TabbedContent(initial="retrieval", id="cmp-tabs"):
            with TabPane("Retrieval", id="retrieval"):
                with VerticalScroll():
                    yield Static("", id="ret-controls", classes="controls", markup=False)
                    yield Static("", id="ret-a-label", classes="side", markup=False)
                    yield Heatmap(id="ret-a")
                    yield Static("", id="ret-b-label", classes="side", markup=False)
                    yield Heatmap(id="ret-b")
                    yield Static("", id="ret-d-label", classes="side", markup=False)
                    yield Heatmap(id="ret-d", fmt="{:+.2f}")
                    yield Static("", id="ret-detail", classes="detail", markup=False)
            with TabPane("CKA", id="cka"):
                with VerticalScroll():
                    yield Static("", id="cka-controls", classes="controls", markup=False)
                    yield Static("", id="cka-a-label", classes="side", markup=False)
                    yield Heatmap(id="cka-a")
                    yield Static("", id="cka-b-label", classes="side", markup=False)
                    yield Heatmap(id="cka-b")
                    yield Static("", id="cka-d-label", classes="side", markup=False)
                    yield Heatmap(id="cka-d", fmt="{:+.3f}")
                    yield Static("", id="cka-detail", classes="detail", markup=False)
            with TabPane("Probes & geometry", id="scalars"):
                yield DataTable(id="cmp-scalars", cursor_type="row", zebra_stripes=True)
            with TabPane("Projection", id="projection"):
                with Horizontal():
                    yield ProjectionScatter(id="proj-a")
                    yield ProjectionScatter(id="proj-b")
        yield Footer()

    def on_mount(self) -> None:
        self._load_worker()

    # -- loading ----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _load_worker(self) -> None:
        from xrdiag.core.compare import compare_results, load_comparable
        from xrdiag.core.layout.frames import read_optional
        from xrdiag.core.layout.resolve import written_diagnostics
        from xrdiag.errors import UserError

        if len(self.targets) < 2:
            raise UserError("compare: mark at least two checkpoints or eval dirs (space)")

        def progress(name: str, done: int, total: int | None) -> None:
            count = f" {done}/{total}" if total else ""
            self.app.call_from_thread(self._set_title, f"Compare · re-evaluating: {name}{count}")

        frames, labels, notes = load_comparable(self.targets, progress=progress)
        comparison = compare_results(frames, labels, threshold=self.threshold)
        projections = []
        for target in self.targets:
            path = written_diagnostics(target)[0].projection
            points = read_optional(path, "the 2-D projection xrdiag wrote")
            projections.append(points if points is not None else pl.DataFrame())
        self.frames, self.labels, self.notes = frames, labels, notes
        self.comparison, self.projections = comparison, projections

    def _set_title(self, text: str) -> None:
        self.query_one("#cmp-title", Static).update(text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "compare-load":
            return
        if event.state == WorkerState.ERROR:
            self.pending = False
            self._set_title(f"Compare · failed: {event.worker.error}")
        elif event.state == WorkerState.SUCCESS:
            self.pending = False
            self._init_state()
            self.redraw()

    def _init_state(self) -> None:
        ref = self.frames[0]
        layers = tables.layers(ref)
        if layers:
            self.state.layer = layers[-1]
        self.state.target = rt.MEAN

    # -- actions ------------------------------------------------------------------------------
    def _options(self, name: str) -> list[object]:
        if not self.frames:
            return []
        ref = self.frames[0]
        retrieval = ref.filter(pl.col("analysis") == "retrieval")
        parts = [m.split("|") for m in retrieval["metric"].unique().to_list() if m.count("|") == 2]
        index = {"base": 0, "scoring": 1, "correction": 2}
        if name in index:
            order = {"base": rt.BASES, "scoring": rt.SCORINGS, "correction": rt.CORRECTIONS}[name]
            return [o for o in order if any(p[index[name]] == o for p in parts)]
        if name == "layer":
            return list(tables.layers(ref))
        if name == "target":
            return [rt.MEAN, *tables.languages(retrieval)]
        if name == "cka_domain":
            return list(tables.plain_domains(ref, "cka"))
        if name == "color_by":
            return ["lang", "domain"]
        return []

    def action_cycle(self, name: str) -> None:
        setattr(self.state, name, cycle(self._options(name), getattr(self.state, name)))
        self.redraw()

    def action_toggle_diff(self) -> None:
        self.diff_only = not self.diff_only
        self.redraw()

    def action_next_other(self) -> None:
        if len(self.labels) > 2:
            self.other = self.other % (len(self.labels) - 1) + 1
            self.redraw()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # -- drawing ----------------------------------------------------------------------------
    @property
    def label_a(self) -> str:
        return self.labels[0]

    @property
    def label_b(self) -> str:
        return self.labels[self.other]

    def deltas(self) -> pl.DataFrame:
        """The comparison rows of the selected B, only those beyond the threshold in diff-only."""
        rows = self.comparison.filter(pl.col("b") == self.label_b)
        return rows.filter(pl.col("exceeds")) if self.diff_only else rows

    def delta_grid(self, matrix: rt.Matrix) -> rt.Matrix:
        """In diff-only, blank the delta cells within the threshold (`exceeds` of compare)."""
        if self.diff_only:
            matrix.cells = {
                key: cell
                for key, cell in matrix.cells.items()
                if cell.value is not None and abs(cell.value) > self.threshold
            }
        return matrix

    def redraw(self) -> None:
        if self.pending or not self.frames:
            return
        mode = "diff only" if self.diff_only else "all cells"
        which = f" ({self.other}/{len(self.labels) - 1}, b: next)" if len(self.labels) > 2 else ""
        self._set_title(
            f"Compare · A {self.label_a} · B {self.label_b}{which} · {mode} "
            f"(|Δ| > {self.threshold:g}) · * significant"
        )
        notes = self.query_one("#cmp-notes", Static)
        notes.update("\n".join(self.notes))
        notes.set_class(not self.notes, "empty")
        self._draw_retrieval()
        self._draw_cka()
        self._draw_scalars()
        self._draw_projection()

    def _draw_retrieval(self) -> None:
        s = self.state
        layer = s.layer or 0
        self.query_one("#ret-controls", Static).update(
            f"[m] {s.base}  [s] {s.scoring}  [c] {s.correction}  [l] layer {s.layer}  "
            f"[t] into {s.target}  [b] next B  [f] diff only"
        )
        target = s.target or rt.MEAN
        a = rt.retrieval_by_domain(self.frames[0], s.metric, layer, target)
        b = rt.retrieval_by_domain(self.frames[self.other], s.metric, layer, target)
        rows = self.comparison.filter(pl.col("b") == self.label_b)
        # Averages ("mean" target) are taken over every cell, then compared with the threshold.
        d = self.delta_grid(rt.retrieval_by_domain(rows, s.metric, layer, target, value="delta"))
        self.query_one("#ret-a-label", Static).update(f"A  {self.label_a}")
        self.query_one("#ret-b-label", Static).update(f"B  {self.label_b}")
        self.query_one("#ret-d-label", Static).update(f"Δ  B - A ({s.metric})")
        self.query_one("#ret-a", Heatmap).show(a, lo=0.0, hi=1.0, corner=s.metric)
        self.query_one("#ret-b", Heatmap).show(b, lo=0.0, hi=1.0, corner=s.metric)
        self.query_one("#ret-d", Heatmap).show(d, diverging=True, corner="delta")

    def _draw_cka(self) -> None:
        s = self.state
        layer = s.layer or 0
        self.query_one("#cka-controls", Static).update(
            f"{tables.cka_label(tables.cka_metric(self.frames[0]))}  [l] layer {s.layer}  "
            f"[d] domain {s.cka_domain}  [b] next B  [f] diff only"
        )

        def grid(frame: pl.DataFrame, value: str = "value") -> rt.Matrix:
            return rt.lang_by_lang(
                frame,
                "cka",
                tables.cka_metric(frame),
                layer,
                s.cka_domain,
                value=value,
                symmetric=True,
            )

        self.query_one("#cka-a-label", Static).update(f"A  {self.label_a}")
        self.query_one("#cka-b-label", Static).update(f"B  {self.label_b}")
        self.query_one("#cka-d-label", Static).update("Δ  B - A")
        self.query_one("#cka-a", Heatmap).show(grid(self.frames[0]), lo=0.0, hi=1.0)
        self.query_one("#cka-b", Heatmap).show(grid(self.frames[self.other]), lo=0.0, hi=1.0)
        rows = self.comparison.filter(pl.col("b") == self.label_b)
        self.query_one("#cka-d", Heatmap).show(self.delta_grid(grid(rows, "delta")), diverging=True)

    def _draw_scalars(self) -> None:
        table = self.query_one("#cmp-scalars", DataTable)
        table.clear(columns=True)
        table.add_columns("metric", "layer", "domain", self.label_a, self.label_b, "Δ", "")
        rows = (
            self.deltas()
            .filter(
                pl.col("metric").is_in(list(SCALARS))
                & pl.col("src_lang").is_null()
                & (pl.col("domain") == rt.ALL)
            )
            .sort("metric", "layer")
        )
        for rec in rows.iter_rows(named=True):
            table.add_row(
                rec["metric"],
                str(rec["layer"]),
                rec["domain"],
                _num(rec["value_a"]),
                _num(rec["value_b"]),
                "" if rec["delta"] is None else f"{rec['delta']:+.4f}",
                "*" if rec["significant"] else "",
            )

    def _draw_projection(self) -> None:
        for widget_id, index in (("#proj-a", 0), ("#proj-b", self.other)):
            plot = self.query_one(widget_id, ProjectionScatter)
            frame = self.projections[index] if index < len(self.projections) else pl.DataFrame()
            if frame.height:
                layers = frame["layer"].unique().to_list() if "layer" in frame.columns else []
                layer = self.state.layer if self.state.layer in layers else None
                plot.show(frame, self.state.color_by, layer)
                plot.plt.title(f"{self.labels[index]}: by {self.state.color_by}")

    @on(Heatmap.CellHighlighted)
    def _cell(self, event: Heatmap.CellHighlighted) -> None:
        heat = event.data_table
        if not isinstance(heat, Heatmap) or heat.id is None:
            return
        found = heat.cell_at(event.coordinate.row, event.coordinate.column)
        detail = "#ret-detail" if heat.id.startswith("ret") else "#cka-detail"
        side = {"a": self.label_a, "b": self.label_b, "d": "B - A"}.get(heat.id[-1], "")
        text = f"{side}: {describe(*found)}" if found else ""
        self.query_one(detail, Static).update(text)


def _num(value: object) -> str:
    return "" if value is None else f"{value:.4g}"
