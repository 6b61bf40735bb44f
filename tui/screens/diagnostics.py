"""The Diagnostics screen: every view of one checkpoint's eval directory.

Retrieval language x domain heatmap (metric, scoring, correction, layer, target language), CKA
language x language with the layer-wise curve, probe accuracy by layer against chance, the 2-D
projection coloured by language or domain, and geometry. When the diagnostics are missing or
older than the checkpoint, `run_eval` runs in a thread worker with a progress bar, so keys keep
working while it computes (diagnostics_eval.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual_plotext import PlotextPlot

from xrdiag.core.layout.dirs import EvalDir
from xrdiag.core.layout.resolve import (
    DiagnosticsSource,
    has_weights,
    resolve_diagnostics,
    run_corpus,
    stale_reason,
)
from xrdiag.errors import UserError
from xrdiag.report import tables
from xrdiag.tui.screens.diagnostics_eval import BackgroundEval
from xrdiag.tui.screens.view_state import (
    COLOUR_BINDING,
    VIEW_BINDINGS,
    ViewState,
    cycle,
    tab_bindings,
)
from xrdiag.tui.widgets import result_table as rt
from xrdiag.tui.widgets.heatmap import Heatmap, describe
from xrdiag.tui.widgets.scatter import ProjectionScatter, plot_lines

GEOMETRY_SCALARS = ("isotropy_partition_ratio", "mean_random_cosine")
TABS = ("retrieval", "cka", "probes", "projection", "geometry")
# The registered analyses these tabs draw; any other gets a table tab of its own.
TAB_ANALYSES = ("retrieval", "cka", "probe", "projection", "geometry")


class DiagnosticsScreen(BackgroundEval, Screen):
    """Diagnostics of one checkpoint or evaluation."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        *VIEW_BINDINGS,
        Binding("v", "cycle('ret_view')", "lang x domain/lang"),
        COLOUR_BINDING,
        Binding("e", "evaluate", "re-evaluate"),
        *tab_bindings(TABS),
    ]

    DEFAULT_CSS = """
    DiagnosticsScreen #diag-title { height: 1; padding: 0 1; text-style: bold; }
    DiagnosticsScreen TabbedContent, DiagnosticsScreen TabPane { height: 1fr; }
    DiagnosticsScreen #diag-progress { height: 1; display: none; padding: 0 1; }
    DiagnosticsScreen #diag-progress.running { display: block; }
    DiagnosticsScreen #diag-status { width: 1fr; padding: 0 1; }
    DiagnosticsScreen .controls { height: 1; color: $text-muted; }
    DiagnosticsScreen .detail { height: 1; }
    DiagnosticsScreen #cka-curve, DiagnosticsScreen #probe-plot { height: 12; }
    DiagnosticsScreen #probe-table, DiagnosticsScreen #geo-table { height: auto; }
    """

    def __init__(
        self,
        target: Path,
        *,
        eval_options: Any | None = None,
        corpus: str | None = None,
        auto_eval: bool = True,
    ) -> None:
        super().__init__()
        self.target = Path(target)
        self.message = ""
        try:
            self.source = resolve_diagnostics(self.target)
        except UserError as exc:  # shown on the screen instead of ending the app
            self.source = DiagnosticsSource(self.target.name, self.target)
            self.message = str(exc)
        self.eval_options = eval_options
        self.corpus = corpus if corpus is not None else run_corpus(self.source.run_dir)
        self.auto_eval = auto_eval
        self.results = pl.DataFrame()
        self.projection = pl.DataFrame()
        self.state = ViewState()
        self.evaluating = False

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Diagnostics · {self.source.label}", id="diag-title")
        with Horizontal(id="diag-progress"):
            yield ProgressBar(id="diag-bar", show_eta=False)
            yield Static("", id="diag-status")
        with TabbedContent(initial="retrieval", id="diag-tabs"):
            with TabPane("Retrieval", id="retrieval"):
                yield Static("", id="ret-controls", classes="controls", markup=False)
                yield Heatmap(id="ret-heat")
                yield Static("", id="ret-detail", classes="detail")
            with TabPane("CKA", id="cka"):
                yield Static("", id="cka-controls", classes="controls", markup=False)
                yield Heatmap(id="cka-heat")
                yield Static("", id="cka-detail", classes="detail")
                yield PlotextPlot(id="cka-curve")
            with TabPane("Probes", id="probes"):
                yield PlotextPlot(id="probe-plot")
                yield DataTable(id="probe-table", cursor_type="row")
            with TabPane("Projection", id="projection"):
                yield ProjectionScatter(id="proj-plot")
            with TabPane("Geometry", id="geometry"):
                yield Static("", id="geo-controls", classes="controls", markup=False)
                yield DataTable(id="geo-table", cursor_type="row")
                yield Heatmap(id="geo-heat", fmt="{:.3f}")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        reason = stale_reason(self.source)
        if reason is not None and self.auto_eval:
            self.start_eval(reason)

    # -- data -----------------------------------------------------------------------------
    def load(self) -> None:
        """Read the eval dir (if any) and redraw every view."""
        from xrdiag.core.layout.frames import read_optional, read_results
        from xrdiag.errors import UserError

        found = EvalDir(self.source.eval_dir)
        results, projection = found.results, found.projection
        try:  # a damaged file is named, and the screen stays up
            self.results = read_results(results) if results.is_file() else pl.DataFrame()
            points = read_optional(projection, "the 2-D projection xrdiag wrote")
            self.projection = points if points is not None else pl.DataFrame()
        except UserError as exc:
            self.results, self.projection = pl.DataFrame(), pl.DataFrame()
            self.notify(str(exc), severity="error", timeout=15)
        if self.results.height:
            self._init_state()
        self.redraw()

    def _init_state(self) -> None:
        layers = tables.layers(self.results)
        if self.state.layer not in layers:
            self.state.layer = layers[-1]
        langs = tables.languages(self.results.filter(pl.col("analysis") == "retrieval"))
        if self.state.target not in langs and self.state.target != rt.MEAN:
            self.state.target = rt.MEAN

    def _options(self, name: str) -> list[Any]:
        res = self.results
        if name == "color_by":
            return ["lang", "domain"]
        if name == "ret_view":
            return ["domain", "lang"]
        if not res.height:
            return []
        metrics = res.filter(pl.col("analysis") == "retrieval")["metric"].unique().to_list()
        parts = [m.split("|") for m in metrics if m.count("|") == 2]
        if name == "base":
            return [b for b in rt.BASES if any(p[0] == b for p in parts)]
        if name == "scoring":
            return [s for s in rt.SCORINGS if any(p[1] == s for p in parts)]
        if name == "correction":
            return [c for c in rt.CORRECTIONS if any(p[2] == c for p in parts)]
        if name == "layer":
            return tables.layers(res)
        if name == "target":
            return [rt.MEAN, *tables.languages(res.filter(pl.col("analysis") == "retrieval"))]
        if name == "cka_domain":  # one domain key for the CKA, retrieval and task grids
            found = [d for a in ("cka", "task") for d in tables.plain_domains(res, a)]
            return tables.domains_order(list(dict.fromkeys(found)))
        return []

    # -- actions --------------------------------------------------------------------------
    def action_cycle(self, name: str) -> None:
        setattr(self.state, name, cycle(self._options(name), getattr(self.state, name)))
        self.redraw()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # -- drawing --------------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.results.height:
            note = self.message or ("evaluating…" if self.evaluating else self._missing_note())
            for widget_id in ("#ret-controls", "#cka-controls", "#geo-controls"):
                self.query_one(widget_id, Static).update(note)
            return
        self._draw_retrieval()
        self._draw_cka()
        self._draw_probes()
        self._draw_projection()
        self._draw_geometry()
        self._draw_other_analyses()

    def _draw_other_analyses(self) -> None:
        """One tab per registered analysis without a view of its own: its rows as a table.

        Tabs are added when such results appear (robustness, xSIM, ...), so a new analysis
        shows up here without a line of dashboard code.
        """
        tabs = self.query_one("#diag-tabs", TabbedContent)
        for name in tables.other_analyses(self.results):
            if name in TAB_ANALYSES:
                continue
            if name == "task":
                self._draw_task(tabs)
                continue
            pane_id = f"analysis-{name}"
            frame = tables.analysis_table(self.results, name, self.state.layer)
            if not self.query(f"#{pane_id}"):
                table = DataTable(id=f"{pane_id}-table", cursor_type="row")
                tabs.add_pane(TabPane(tables.analysis_title(name), table, id=pane_id))
                self.call_after_refresh(self._fill_analysis_table, pane_id, frame)
            else:
                self._fill_analysis_table(pane_id, frame)

    def _draw_task(self, tabs: TabbedContent) -> None:
        """Task accuracy: lang1 x lang2 heatmap (per domain: d), then the mono/cross summary."""
        if not self.query("#analysis-task"):
            pane = TabPane(
                tables.analysis_title("task"),
                Static("", id="task-controls", classes="controls", markup=False),
                Heatmap(id="task-heat"),
                DataTable(id="analysis-task-table", cursor_type="row"),
                id="analysis-task",
            )
            tabs.add_pane(pane)
            self.call_after_refresh(self._draw_task, tabs)
            return
        task = self.results.filter(pl.col("analysis") == "task")
        layer = tables.top_layer(task) or 0
        domains = tables.plain_domains(self.results, "task")
        domain = self.state.cka_domain if self.state.cka_domain in domains else tables.ALL
        matrix = rt.lang_by_lang(self.results, "task", "accuracy", layer, domain)
        self.query_one("#task-controls", Static).update(
            f"task accuracy, rows: sentence 1's language, columns: sentence 2's  "
            f"[d] domain {domain}  (diagonal: monolingual; off it: generalized cross-lingual)"
        )
        self.query_one("#task-heat", Heatmap).show(matrix, lo=0.0, hi=1.0, corner=f"layer {layer}")
        summary = tables.analysis_table(self.results, "task", layer).filter(
            pl.col("metric").is_in(["accuracy_mono", "accuracy_cross", "transfer_gap"])
        )
        self._fill_analysis_table("analysis-task", summary)

    def _fill_analysis_table(self, pane_id: str, frame: pl.DataFrame) -> None:
        table = self.query_one(f"#{pane_id}-table", DataTable)
        table.clear(columns=True)
        if not frame.height:
            return
        table.add_columns(*frame.columns)
        for row in frame.iter_rows():
            table.add_row(*("-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
                            for v in row))  # fmt: skip

    def _missing_note(self) -> str:
        ckpt = self.source.checkpoint
        if ckpt is not None and not has_weights(ckpt):
            return (
                f"no diagnostics for {ckpt.name} yet, and the checkpoint has no weights to evaluate"
            )
        return "no diagnostics in this directory"

    def _draw_retrieval(self) -> None:
        s = self.state
        head = f"[m] {s.base}  [s] {s.scoring}  [c] {s.correction}  [l] layer {s.layer}  "
        if s.ret_view == "lang":
            self.query_one("#ret-controls", Static).update(
                head + f"[d] domain {s.cka_domain}   rows: query, columns: target language  [v]"
            )
            matrix = rt.lang_by_lang(
                self.results, "retrieval", s.metric, s.layer or 0, s.cka_domain
            )
        else:
            self.query_one("#ret-controls", Static).update(
                head + f"[t] into {s.target}   rows: query language, columns: domain  [v]"
            )
            matrix = rt.retrieval_by_domain(
                self.results, s.metric, s.layer or 0, s.target or rt.MEAN
            )
        self.query_one("#ret-heat", Heatmap).show(matrix, lo=0.0, hi=1.0, corner=s.metric)

    def _draw_cka(self) -> None:
        s = self.state
        metric = tables.cka_metric(self.results)
        matrix = rt.lang_by_lang(
            self.results, "cka", metric, s.layer or 0, s.cka_domain, symmetric=True
        )
        hub = s.target if s.target in matrix.rows else tables.default_target(matrix.rows)
        self.query_one("#cka-controls", Static).update(
            f"{tables.cka_label(metric)}  [l] layer {s.layer}  [d] domain {s.cka_domain}  "
            f"[t] curve against {hub}"
        )
        self.query_one("#cka-heat", Heatmap).show(matrix, corner=f"layer {s.layer}")
        lines = [
            (lang, tables.pair_series(self.results, metric, lang, hub or "", s.cka_domain))
            for lang in matrix.rows
            if lang != hub
        ]
        plot_lines(
            self.query_one("#cka-curve", PlotextPlot),
            lines,
            f"CKA with {hub} by layer ({s.cka_domain})",
        )

    def _draw_probes(self) -> None:
        res = self.results.filter(pl.col("analysis") == "probe")
        lines = [
            (name, tables.series(res, name, domain=rt.ALL))
            for name in (
                "lang_probe_acc",
                "lang_probe_chance",
                "domain_probe_acc",
                "domain_probe_chance",
            )
        ]
        plot_lines(
            self.query_one("#probe-plot", PlotextPlot),
            lines,
            "probe accuracy by layer (chance: what a constant guess scores)",
            ylim=(0.0, 1.0),
        )
        table = self.query_one("#probe-table", DataTable)
        table.clear(columns=True)
        table.add_columns("layer", "probe", "accuracy", "95% interval", "chance", "n")
        for task in ("lang", "domain"):
            chance = dict(tables.series(res, f"{task}_probe_chance", domain=rt.ALL))
            frame = res.filter(pl.col("metric") == f"{task}_probe_acc").sort("layer")
            for rec in frame.iter_rows(named=True):
                ci = (
                    f"[{rec['ci_low']:.3f}, {rec['ci_high']:.3f}]"
                    if rec["ci_low"] is not None
                    else ""
                )
                ch = chance.get(rec["layer"])
                table.add_row(
                    str(rec["layer"]),
                    task,
                    f"{rec['value']:.3f}",
                    ci,
                    "" if ch is None else f"{ch:.3f}",
                    str(rec["n"]),
                )

    def _draw_projection(self) -> None:
        plot = self.query_one("#proj-plot", ProjectionScatter)
        if not self.projection.height:
            plot.plt.clear_data()
            plot.plt.title("no projection.parquet in this directory")
            plot.refresh()
            return
        layers = self.projection["layer"].unique().to_list() if "layer" in self.projection else []
        layer = (
            self.state.layer if self.state.layer in layers else (max(layers) if layers else None)
        )
        plot.show(self.projection, self.state.color_by, layer)

    def _draw_geometry(self) -> None:
        s = self.state
        self.query_one("#geo-controls", Static).update(
            f"geometry by layer (domain all); grid: centroid cosine distance at layer {s.layer}"
        )
        table = self.query_one("#geo-table", DataTable)
        table.clear(columns=True)
        frame = tables.scalar_rows(
            self.results.filter(pl.col("analysis") == "geometry"), GEOMETRY_SCALARS
        )
        table.add_columns(*frame.columns)
        for row in frame.iter_rows():
            table.add_row(str(row[0]), *(_fmt(v) for v in row[1:]))
        matrix = rt.lang_by_lang(
            self.results, "geometry", "centroid_cosine_distance", s.layer or 0, symmetric=True
        )
        self.query_one("#geo-heat", Heatmap).show(matrix, corner="centroid cos dist")

    @on(Heatmap.CellHighlighted)
    def _cell(self, event: Heatmap.CellHighlighted) -> None:
        heat = event.data_table
        if not isinstance(heat, Heatmap) or heat.id not in ("ret-heat", "cka-heat"):
            return
        found = heat.cell_at(event.coordinate.row, event.coordinate.column)
        detail = "#ret-detail" if heat.id == "ret-heat" else "#cka-detail"
        text = describe(*found) if found else ""
        self.query_one(detail, Static).update(text)


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
