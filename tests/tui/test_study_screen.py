"""Study screen: the variant x quadrant table from figures/comparison, and drilling into a cell."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from screen_app import ScreenApp
from textual.widgets import DataTable, Static

from xrdiag.tui.screens.diagnostics import DiagnosticsScreen
from xrdiag.tui.screens.study import StudyScreen, figure_columns

STUDY = Path(__file__).parent / "fixtures_b" / "study"
SIZE = (120, 36)


def _app(study: Path = STUDY) -> ScreenApp:
    return ScreenApp(lambda: StudyScreen(study))


@pytest.mark.parametrize("keys", [[], ["down", "down"]], ids=["table", "cursor"])
def test_snapshot(snap_compare, keys: list[str]) -> None:
    assert snap_compare(_app(), press=keys, terminal_size=SIZE)


def test_snapshot_drilled_into_cell(snap_compare) -> None:
    assert snap_compare(_app(), press=["down", "enter"], terminal_size=SIZE)


def test_columns_overall_then_quadrants() -> None:
    figures = pl.read_parquet(STUDY / "figures.parquet")
    assert figure_columns(figures) == [
        ("recall@1", "all", "all"),
        ("quadrant_recall@1", "seen", "seen"),
        ("quadrant_recall@1", "seen", "unseen"),
        ("quadrant_recall@1", "unseen", "seen"),
        ("quadrant_recall@1", "unseen", "unseen"),
    ]


@pytest.mark.anyio
async def test_cells_show_figures_and_significant_deltas() -> None:
    figures = pl.read_parquet(STUDY / "figures.parquet")
    comparison = pl.read_parquet(STUDY / "comparison.parquet")
    app = _app()
    async with app.run_test(size=SIZE):
        table = app.screen.query_one(DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [
            "base",
            "contrastive",
            "dann+hybrid",
        ]
        for rec in figures.iter_rows(named=True):
            key = "|".join((rec["figure"], rec["lang"], rec["domain"]))
            text = str(table.get_cell(rec["variant"], key))
            first = text.splitlines()[0]
            assert first == f"{rec['value']:.3f} [{rec['ci_low']:.3f}, {rec['ci_high']:.3f}]"
            vs = comparison.filter(
                (pl.col("variant") == rec["variant"])
                & (pl.col("figure") == rec["figure"])
                & (pl.col("lang") == rec["lang"])
                & (pl.col("domain") == rec["domain"])
            )
            if vs.height == 0:
                assert "Δ" not in text
                continue
            mark = " *" if vs["significant"][0] else ""
            assert text.splitlines()[1] == f"Δ {vs['delta'][0]:+.3f}{mark}"
        assert comparison["significant"].any() and not comparison["significant"].all()


@pytest.mark.anyio
async def test_enter_drills_into_the_cells_run_and_back() -> None:
    app = _app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down")
        detail = str(app.screen.query_one("#study-detail", Static).render())
        assert "cells/dann+hybrid/seed-0" in detail
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        assert screen.source.run_dir == STUDY / "cells" / "dann+hybrid" / "seed-0"
        assert screen.results.height > 0
        await pilot.press("escape")
        assert isinstance(app.screen, StudyScreen)
        await pilot.press("up", "up", "enter")  # the base model: the study's base eval dir
        assert isinstance(app.screen, DiagnosticsScreen)
        assert app.screen.source.eval_dir == STUDY / "base"


@pytest.mark.anyio
async def test_study_without_figures_says_so(tmp_path: Path) -> None:
    study = tmp_path / "s"
    study.mkdir()
    shutil.copy(STUDY / "study.toml", study / "study.toml")
    app = _app(study)
    async with app.run_test(size=SIZE):
        note = str(app.screen.query_one("#study-note", Static).render())
        assert "no figures.parquet yet" in note


@pytest.mark.anyio
async def test_not_a_study_is_said_on_screen(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=SIZE):
        note = str(app.screen.query_one("#study-note", Static).render())
        assert "not a study dir (expected study.toml)" in note


@pytest.mark.anyio
async def test_a_damaged_figures_file_is_said_on_screen(tmp_path: Path) -> None:
    """figures.parquet cut short (a disk filled mid-copy) is one line on the screen, no crash."""
    study = tmp_path / "s"
    shutil.copytree(STUDY, study)
    data = (study / "figures.parquet").read_bytes()
    (study / "figures.parquet").write_bytes(data[: len(data) // 2])
    app = _app(study)
    async with app.run_test(size=SIZE):
        note = " ".join(str(app.screen.query_one("#study-note", Static).render()).split())
        assert "figures.parquet: not a readable Parquet file" in note
        assert "expected a study's figures" in note
