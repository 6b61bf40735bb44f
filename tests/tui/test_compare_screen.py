"""Compare screen: snapshots, deltas equal B - A of the two results, diff-only, a third input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import polars as pl
import pytest
from screen_app import ScreenApp
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.worker import WorkerFailed

from xrdiag.tui.screens.compare import CompareScreen
from xrdiag.tui.widgets.heatmap import Heatmap

FIXTURES = Path(__file__).parent / "fixtures_b"
A = FIXTURES / "eval"
B = FIXTURES / "eval-other"
CELL = FIXTURES / "study" / "cells" / "dann+hybrid" / "seed-0"
SIZE = (120, 36)


def _app(*targets: Path) -> ScreenApp:
    return ScreenApp(lambda: CompareScreen(list(targets)))


async def _loaded(pilot: Pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize(
    "keys", [[], ["f"], ["2"], ["3"], ["4"]], ids=["retrieval", "diff", "cka", "scalars", "proj"]
)
def test_snapshot(snap_compare, keys: list[str]) -> None:
    assert snap_compare(_app(A, B), press=keys, terminal_size=SIZE, run_before=_loaded)


def _top(frame: pl.DataFrame) -> int:
    return int(frame["layer"].max())  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_delta_cells_are_b_minus_a() -> None:
    ra, rb = pl.read_parquet(A / "results.parquet"), pl.read_parquet(B / "results.parquet")
    app = _app(A, B)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("t", "t")  # into "en" (after "mean" and "ar")
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.state.target == "en"
        delta = screen.query_one("#ret-d", Heatmap).matrix
        assert delta is not None
        key = (
            (pl.col("metric") == "recall@1|cos|none")
            & (pl.col("layer") == _top(ra))
            & (pl.col("tgt_lang") == "en")
        )
        want = ra.filter(key).join(
            rb.filter(key), on=["src_lang", "domain"], suffix="_b"
        )  # independent B - A from the two results files
        assert want.height == 5 * 7
        for rec in want.iter_rows(named=True):
            cell = delta.get(rec["src_lang"], rec["domain"])
            assert cell is not None and cell.value is not None
            assert cell.value == pytest.approx(rec["value_b"] - rec["value"], abs=1e-9)
            apart = rec["ci_high"] < rec["ci_low_b"] or rec["ci_high_b"] < rec["ci_low"]
            assert cell.mark == ("*" if apart else "")


@pytest.mark.anyio
async def test_diff_only_hides_small_deltas_everywhere() -> None:
    app = _app(A, B)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await pilot.press("t", "t", "d")  # into en; CKA domain cycles away from `all` and back
        full = screen.query_one("#ret-d", Heatmap).matrix
        rows_full = screen.query_one("#cmp-scalars", DataTable).row_count
        await pilot.press("f")
        assert screen.diff_only
        diff = screen.query_one("#ret-d", Heatmap).matrix
        assert full is not None and diff is not None
        kept = {k for k, c in diff.cells.items() if c.value is not None}
        expected = {k for k, c in full.cells.items() if c.value is not None and abs(c.value) > 0.01}
        assert kept == expected and len(kept) < len(full.cells)
        assert screen.query_one("#cmp-scalars", DataTable).row_count <= rows_full
        for key in kept:
            assert diff.cells[key].value == full.cells[key].value


@pytest.mark.anyio
async def test_third_input_and_next_b() -> None:
    app = _app(A, B, CELL)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.labels == ["eval", "eval-other", "dann+hybrid/seed-0@step-000008"]
        assert screen.label_b == "eval-other"
        await pilot.press("b")
        assert screen.label_b == "dann+hybrid/seed-0@step-000008"
        await pilot.press("b")
        assert screen.label_b == "eval-other"


@pytest.mark.anyio
async def test_one_target_is_refused_on_screen() -> None:
    app = _app(A)
    async with app.run_test(size=SIZE) as pilot:
        with contextlib.suppress(WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot.pause()
        title = str(app.screen.query_one("#cmp-title", Static).render())
        assert "failed" in title and "at least two" in title
