"""The Study screen: the variant x quadrant table of `xrdiag study`, drilling into any cell's run.

Rows are variants (the untouched base model first), columns are the figures of figures.parquet
(overall recall@1, then the seen/unseen language x domain quadrants, then the rest). Each cell
shows the value with its interval and, below it, the delta against the baseline from
comparison.parquet with `*` where that delta is significant after adjustment. Enter opens the
Diagnostics screen of the highlighted variant's run (the base model's eval dir for `base`).

Above the table, one line says where the cells are (finished, running and in which phase,
interrupted, failed, pending), refreshed every few seconds: cells run by other processes
(`study --jobs`, `study run-cell` under a scheduler) show as running from their claim and
events (core/study/cells.py), the same status the Runs screen shows.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import polars as pl
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from xrdiag.core.layout import names
from xrdiag.core.layout.dirs import StudyDir, classify
from xrdiag.core.layout.frames import read_optional
from xrdiag.core.layout.names import BASE
from xrdiag.core.layout.status import FAILED, FINISHED, INTERRUPTED, PENDING, RUNNING
from xrdiag.errors import UserError
from xrdiag.report.study_summary import verdict
from xrdiag.report.study_tables import variant_table

QUADRANTS = (("seen", "seen"), ("seen", "unseen"), ("unseen", "seen"), ("unseen", "unseen"))
CELLS_REFRESH_S = 2.0


def read_study(study_dir: Path) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame | None]:
    """study.toml, figures.parquet and comparison.parquet (None when absent) of a study dir."""
    if classify(study_dir) != "study":
        raise UserError(f"{study_dir}: not a study dir (expected {names.STUDY_FILE})")
    study = StudyDir(study_dir)
    try:
        config = tomllib.loads(study.config_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{study.config_file}: not valid TOML ({exc})") from None
    # The checked reader: a damaged or foreign file is one UserError the screen shows.
    figures = read_optional(study.file(names.FIGURES), "a study's figures (xrdiag study writes it)")
    comparison = read_optional(study.file(names.COMPARISON), "a study's comparison table")
    return config, figures if figures is not None else pl.DataFrame(), comparison


# A task study's pair groups: trained pairs, zero-shot pairs, same- and cross-language pairs.
TASK_GROUPS = ("seen", "unseen", "mono", "cross")


def figure_columns(figures: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(figure, lang, domain) columns in reading order: overall, quadrants, then the rest."""
    keys = list(dict.fromkeys(figures.select("figure", "lang", "domain").iter_rows()))

    def rank(key: tuple[str, str, str]) -> tuple[int, int, str]:
        figure, lang, domain = key
        if lang == "all" and domain == "all":
            return (0 if figure in ("recall@1", "accuracy") else 2, 0, figure)
        if (lang, domain) in QUADRANTS:
            return (1, QUADRANTS.index((lang, domain)), figure)
        if figure == "accuracy" and lang in TASK_GROUPS and domain == "all":
            return (1, TASK_GROUPS.index(lang), figure)
        return (3, 0, f"{figure}|{lang}|{domain}")

    return sorted(keys, key=rank)


def study_cells(study_dir: Path, config: dict[str, Any]) -> list[Path]:
    """The cell run dirs the study's config names (variants x seeds), existing or not."""
    study = config.get("study", {}) if isinstance(config.get("study"), dict) else {}
    variants, seeds = study.get("variants", []), study.get("seeds", [])
    if not isinstance(variants, list) or not isinstance(seeds, list):
        return []
    dirs = StudyDir(study_dir)
    return [dirs.cell(str(v), int(s)).root for v in variants for s in seeds if isinstance(s, int)]


def cells_line(cells: list[Path], now: float | None = None) -> str:
    """`cells: 1 of 4 finished · running: a/seed-0 (training, step 3 of 40) · pending: 2`."""
    from xrdiag.core.study.cells import cell_label, cell_state

    if not cells:
        return ""
    states = [(cell_label(c), cell_state(c, now)) for c in cells]
    finished = sum(st.status == FINISHED for _, st in states)
    parts = [f"cells: {finished} of {len(states)} finished"]
    running = [f"{label} ({st.describe()})" for label, st in states if st.status == RUNNING]
    if running:
        parts.append("running: " + ", ".join(running))
    for status in (INTERRUPTED, FAILED):
        named = [label for label, st in states if st.status == status]
        if named:
            parts.append(f"{status}: " + ", ".join(named))
    pending = sum(st.status == PENDING for _, st in states)
    if pending:
        parts.append(f"pending: {pending}")
    return " · ".join(parts)


def column_label(key: tuple[str, str, str]) -> str:
    figure, lang, domain = key
    if lang == "all" and domain == "all":
        return figure
    if figure == "accuracy" and domain == "all":  # a task study's language pair or group
        return f"accuracy {lang}"
    short = "R@1" if figure == "quadrant_recall@1" else figure
    return f"{short} L-{lang} D-{domain}"


def cell_text(rec: dict[str, Any] | None) -> Text:
    """`0.412 [0.380, 0.440]` and, for a compared variant, `Δ +0.021 *` on the second line."""
    if rec is None or rec.get("value") is None:
        return Text("·", style="dim")
    text = Text(f"{rec['value']:.3f}")
    if rec.get("ci_low") is not None and rec.get("ci_high") is not None:
        text.append(f" [{rec['ci_low']:.3f}, {rec['ci_high']:.3f}]", style="dim")
    delta = rec.get("delta")
    if delta is not None:
        significant = bool(rec.get("significant"))
        style = ("bold green" if delta > 0 else "bold red") if significant else ""
        text.append(f"\nΔ {delta:+.3f}{' *' if significant else ''}", style=style)
        if not significant and rec.get("mde") is not None:  # what "not significant" can hide
            text.append(f" ≤{rec['mde']:.3f}", style="dim")
    return text


class StudyScreen(Screen):
    """A study's answer table."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("enter", "open", "open run"),
        Binding("n", "next_seed", "seed"),
    ]

    DEFAULT_CSS = """
    StudyScreen #study-title { height: 1; padding: 0 1; text-style: bold; }
    StudyScreen #study-note, StudyScreen #study-detail { height: auto; padding: 0 1; }
    StudyScreen #study-cells { height: auto; padding: 0 1; }
    StudyScreen #study-table { height: 1fr; }
    """

    def __init__(self, study_dir: Path) -> None:
        super().__init__()
        self.study_dir = Path(study_dir)
        self.problem = ""
        try:
            self.config, self.figures, self.comparison = read_study(self.study_dir)
        except UserError as exc:  # shown on the screen instead of ending the app
            self.config, self.figures, self.comparison = {}, pl.DataFrame(), None
            self.problem = str(exc)
        study = self.config.get("study", self.config)
        self.baseline = str(study.get("baseline", ""))
        self.table_rows = variant_table(self.figures, self.comparison)
        self.columns = figure_columns(self.figures) if self.figures.height else []
        self.variants = self._variant_order()
        self.seed_index = 0
        self.cells = study_cells(self.study_dir, self.config)

    def _variant_order(self) -> list[str]:
        if not self.figures.height:
            return []
        found = self.figures["variant"].unique(maintain_order=True).to_list()
        head = [v for v in (BASE, self.baseline) if v in found]
        return head + [v for v in found if v not in head]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"Study · {self.study_dir.name}   baseline: {self.baseline or '?'}",
            id="study-title",
        )
        yield Static(
            "value [95% interval]; Δ vs the baseline: * significant after adjustment, else "
            "≤MDE; L/D: seen/unseen languages/domains",
            id="study-note",
            markup=False,
        )
        yield Static("", id="study-cells", markup=False)
        yield DataTable(id="study-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="study-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.show_cells()
        if self.cells:
            self.set_interval(CELLS_REFRESH_S, self.show_cells)
        table = self.query_one(DataTable)
        if not self.columns:
            self.query_one("#study-note", Static).update(
                self.problem or "no figures.parquet yet: the study has not finished its first cell"
            )
            return
        table.add_column("variant", key="variant")
        for key in self.columns:
            table.add_column(column_label(key), key="|".join(key))
        by_key = {
            (r["variant"], r["figure"], r["lang"], r["domain"]): r
            for r in self.table_rows.iter_rows(named=True)
        }
        for variant in self.variants:
            label = Text(variant, style="bold" if variant == self.baseline else "")
            cells = [cell_text(by_key.get((variant, *key))) for key in self.columns]
            table.add_row(label, *cells, key=variant, height=2)
        self._describe()

    def show_cells(self) -> None:
        """Where the cells are now (read from their directories: cheap, a few small files)."""
        self.query_one("#study-cells", Static).update(cells_line(self.cells))

    # -- drilling -------------------------------------------------------------------------
    def current_variant(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.variants or table.cursor_row >= len(self.variants):
            return None
        return self.variants[table.cursor_row]

    def seeds(self, variant: str) -> list[Path]:
        """The variant's cell run dirs (`cells/<variant>/seed-<s>`), by seed."""
        return StudyDir(self.study_dir).variant_cells(variant)

    def run_dir(self, variant: str) -> Path | None:
        """Where enter leads for a variant: the base eval dir, or the chosen seed's run."""
        if variant == BASE:
            base = StudyDir(self.study_dir).base
            return base.root if base.exists() else None
        seeds = self.seeds(variant)
        return seeds[self.seed_index % len(seeds)] if seeds else None

    def _describe(self) -> None:
        variant = self.current_variant()
        if variant is None:
            return
        target = self.run_dir(variant)
        where = target.relative_to(self.study_dir) if target else "no run directory yet"
        lines = [f"enter: diagnostics of {where}"]
        cmp = self.comparison
        if cmp is not None and "role" in cmp.columns:  # calibrated verdicts (xrdiag >= 0.2)
            mine = cmp.filter((pl.col("variant") == variant)
                              & pl.col("role").is_in(["primary", "training"]))  # fmt: skip
            lines += [verdict(r) for r in mine.iter_rows(named=True)]
        self.query_one("#study-detail", Static).update("\n".join(lines))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe()

    def action_next_seed(self) -> None:
        self.seed_index += 1
        self._describe()

    def action_open(self) -> None:
        from xrdiag.tui.screens.diagnostics import DiagnosticsScreen

        variant = self.current_variant()
        target = self.run_dir(variant) if variant else None
        if target is None:
            self.notify(f"{variant}: no run directory to open yet", severity="warning")
            return
        try:
            self.app.push_screen(DiagnosticsScreen(target))
        except UserError as exc:
            self.notify(str(exc), severity="error")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
