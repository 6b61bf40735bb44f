"""Diagnostics screen: snapshots of every view, the pivots against the results, background eval."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from screen_app import ScreenApp
from textual.widgets import TabbedContent
from textual.worker import WorkerFailed

from xrdiag.core.layout.resolve import resolve_diagnostics, stale_reason
from xrdiag.errors import UserError
from xrdiag.tui.screens.diagnostics import DiagnosticsScreen
from xrdiag.tui.widgets.heatmap import Heatmap

FIXTURES = Path(__file__).parent / "fixtures_b"
EVAL = FIXTURES / "eval"
SIZE = (120, 36)


def _app(target: Path, **kwargs: object) -> ScreenApp:
    return ScreenApp(lambda: DiagnosticsScreen(target, **kwargs))  # type: ignore[arg-type]


def _run_dir(root: Path, eval_dir: Path = EVAL, step: str = "step-000008") -> Path:
    """A run dir around a real eval dir: run.toml, a weightless checkpoint, its diagnostics."""
    run = root / "myrun"
    (run / "checkpoints" / step).mkdir(parents=True)
    (run / "checkpoints" / step / "COMPLETE").write_text("")
    (run / "run.toml").write_text('[corpus]\npath = "default"\n')
    shutil.copytree(eval_dir, run / "diagnostics" / step)
    return run


# -- snapshots -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys", [[], ["m", "c"], ["t", "l"]], ids=["default", "r5-center", "to-ar"]
)
def test_snapshot_retrieval(snap_compare, keys: list[str]) -> None:
    assert snap_compare(_app(EVAL), press=keys, terminal_size=SIZE)


@pytest.mark.parametrize(
    "keys",
    [["v", "d", "d"], ["2"], ["3"], ["4"], ["4", "k"], ["5"]],
    ids=["ret-lang", "cka", "probes", "proj", "dom", "geo"],
)
def test_snapshot_other_tabs(snap_compare, keys: list[str]) -> None:
    assert snap_compare(_app(EVAL), press=keys, terminal_size=SIZE)


def test_snapshot_run_dir(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(_app(_run_dir(tmp_path)), terminal_size=SIZE)


# -- the views show the results' numbers -------------------------------------------------------


def _cell_value(heat: Heatmap, row: str, col: str) -> float | None:
    assert heat.matrix is not None
    cell = heat.matrix.get(row, col)
    return None if cell is None else cell.value


@pytest.mark.anyio
async def test_retrieval_heatmap_is_the_results_rows() -> None:
    results = pl.read_parquet(EVAL / "results.parquet")
    app = _app(EVAL)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        top = int(results["layer"].max())  # type: ignore[arg-type]
        await pilot.press("m", "s", "c", "t", "t")  # recall@5, margin, center, into "en"
        assert screen.state.metric == "recall@5|margin|center"
        assert screen.state.layer == top and screen.state.target == "en"
        heat = screen.query_one("#ret-heat", Heatmap)
        want = results.filter(
            (pl.col("metric") == "recall@5|margin|center")
            & (pl.col("layer") == top)
            & (pl.col("tgt_lang") == "en")
        )
        assert want.height == 5 * 7  # five query languages x six domains and `all`
        for rec in want.iter_rows(named=True):
            got = _cell_value(heat, rec["src_lang"], rec["domain"])
            assert got == pytest.approx(rec["value"], abs=1e-6)
        assert heat.matrix is not None and heat.matrix.get("en", "news") is None


@pytest.mark.anyio
async def test_mean_target_averages_like_the_report() -> None:
    results = pl.read_parquet(EVAL / "results.parquet")
    app = _app(EVAL)
    async with app.run_test(size=SIZE):
        heat = app.screen.query_one("#ret-heat", Heatmap)
        top = int(results["layer"].max())  # type: ignore[arg-type]
        rows = results.filter(
            (pl.col("metric") == "recall@1|cos|none")
            & (pl.col("layer") == top)
            & (pl.col("src_lang") == "fr")
            & (pl.col("domain") == "medical")
        )["value"].to_list()
        assert len(rows) == 5
        assert _cell_value(heat, "fr", "medical") == pytest.approx(sum(rows) / 5, abs=1e-9)


@pytest.mark.anyio
async def test_cka_grid_is_symmetric_and_layer_switches() -> None:
    results = pl.read_parquet(EVAL / "results.parquet")
    app = _app(EVAL)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        await pilot.press("2", "l")  # layers 0..2: from the top layer to layer 0
        assert screen.query_one(TabbedContent).active == "cka"
        assert screen.state.layer == 0
        heat = screen.query_one("#cka-heat", Heatmap)
        pair = results.filter(
            (pl.col("metric") == "linear_cka")
            & (pl.col("layer") == 0)
            & (pl.col("domain") == "all")
            & (pl.col("src_lang") == "ar")
            & (pl.col("tgt_lang") == "fr")
        )
        assert pair.height == 1
        assert _cell_value(heat, "ar", "fr") == pytest.approx(pair["value"][0], abs=1e-9)
        assert _cell_value(heat, "fr", "ar") == pytest.approx(pair["value"][0], abs=1e-9)
        assert _cell_value(heat, "fr", "fr") is None


# -- targets and staleness --------------------------------------------------------------------


def test_resolve_targets(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    ckpt = run / "checkpoints" / "step-000008"
    diag = run / "diagnostics" / "step-000008"
    source = resolve_diagnostics(EVAL)
    assert source.eval_dir == EVAL and source.checkpoint is None
    for target in (run, ckpt, diag):
        source = resolve_diagnostics(target)
        assert source.eval_dir == diag and source.checkpoint == ckpt and source.run_dir == run
        assert source.label == "myrun/step-000008"
    with pytest.raises(UserError, match="not an eval dir"):
        resolve_diagnostics(tmp_path)
    cell = FIXTURES / "study" / "cells" / "dann+hybrid" / "seed-0"
    assert resolve_diagnostics(cell).label == "dann+hybrid/seed-0/step-000008"


def test_stale_reason(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    ckpt = run / "checkpoints" / "step-000008"
    source = resolve_diagnostics(run)
    assert stale_reason(source) is None  # no weights: nothing could be recomputed
    (ckpt / "model.safetensors").write_bytes(b"")
    results = source.eval_dir / "results.parquet"
    os.utime(results, (1_000_000, 1_000_000))
    assert stale_reason(source) == "checkpoint newer than its diagnostics"
    os.utime(results, None)
    os.utime(ckpt / "COMPLETE", (1_000_000, 1_000_000))
    assert stale_reason(source) is None
    results.unlink()
    assert stale_reason(source) == "no diagnostics yet"


# -- background evaluation --------------------------------------------------------------------


@pytest.mark.anyio
async def test_missing_diagnostics_evaluate_in_background(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from xrdiag.core import evaluate
    from xrdiag.core.evaluate import EvalOptions

    # The real run_eval, held at a gate until the keys were pressed: on a quiet machine the
    # tiny evaluation could otherwise finish before the test looks (a race, not a check).
    gate = threading.Event()
    real_run_eval = evaluate.run_eval

    def gated_run_eval(*args: object, **kwargs: object) -> object:
        gate.wait(60)
        return real_run_eval(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluate, "run_eval", gated_run_eval)

    run = tmp_path / "fresh"
    ckpt = run / "checkpoints" / "step-000002"
    shutil.copytree(tiny_model_dir, ckpt)
    (ckpt / "COMPLETE").write_text("")
    (run / "run.toml").write_text('[corpus]\npath = "default"\n')
    options = EvalOptions(
        analyses=("retrieval", "probe", "cka", "projection"),
        layers="all",
        langs="ar,en,es-419,fr,ru,zh",
        max_per_domain=10,
        bootstrap=20,
        device="cpu",
    )
    app = _app(run, eval_options=options)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        assert screen.evaluating and screen.query_one("#diag-progress").has_class("running")
        await pilot.press("2", "k")  # keys act while run_eval computes in its thread
        assert screen.query_one(TabbedContent).active == "cka"
        assert screen.state.color_by == "domain"
        assert screen.evaluating, "the evaluation finished before the keys were tested"
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.evaluating
        assert not screen.query_one("#diag-progress").has_class("running")
        written = pl.read_parquet(run / "diagnostics" / "step-000002" / "results.parquet")
        assert screen.results.equals(written)
        assert screen.query_one("#cka-heat", Heatmap).matrix.values()  # type: ignore[union-attr]


def test_weightless_newest_checkpoint_falls_back_to_newest_diagnostics(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    newer = run / "checkpoints" / "step-000012"
    newer.mkdir()
    (newer / "COMPLETE").write_text("")
    source = resolve_diagnostics(run)
    assert source.eval_dir == run / "diagnostics" / "step-000008"
    (newer / "model.safetensors").write_bytes(b"")  # now it could be evaluated: it wins
    source = resolve_diagnostics(run)
    assert source.eval_dir == run / "diagnostics" / "step-000012"
    assert stale_reason(source) == "no diagnostics yet"


@pytest.mark.anyio
async def test_retrieval_language_by_language_view() -> None:
    results = pl.read_parquet(EVAL / "results.parquet")
    app = _app(EVAL)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        await pilot.press("v", "d")  # query x target language, first single domain
        assert screen.state.ret_view == "lang" and screen.state.cka_domain == "conversation"
        heat = screen.query_one("#ret-heat", Heatmap)
        want = results.filter(
            (pl.col("metric") == "recall@1|cos|none")
            & (pl.col("layer") == int(results["layer"].max()))  # type: ignore[arg-type]
            & (pl.col("domain") == "conversation")
        )
        assert want.height == 6 * 5
        for rec in want.iter_rows(named=True):
            got = _cell_value(heat, rec["src_lang"], rec["tgt_lang"])
            assert got == pytest.approx(rec["value"], abs=1e-9)


@pytest.mark.anyio
async def test_failed_background_evaluation_is_reported(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    ckpt = run / "checkpoints" / "step-000012"
    ckpt.mkdir()
    (ckpt / "COMPLETE").write_text("")
    (ckpt / "model.safetensors").write_bytes(b"")
    (run / "run.toml").write_text('[corpus]\npath = "no-such-corpus.parquet"\n')
    app = _app(run)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        with contextlib.suppress(WorkerFailed):  # raised here only if it was still running
            await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.evaluating
        assert screen.message.startswith("evaluation failed: ")
        assert "no-such-corpus.parquet" in screen.message
        assert "evaluation failed" in str(screen.query_one("#ret-controls").render())


@pytest.mark.anyio
async def test_an_analysis_without_a_view_gets_a_table_tab(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A registered analysis the screen has no view for (robustness) shows as a table tab of
    exactly its top-layer rows, with no dashboard code of its own."""
    from textual.widgets import DataTable

    from xrdiag.core.evaluate import EvalOptions, run_eval
    from xrdiag.report import tables

    opts = EvalOptions(
        analyses=("retrieval", "robustness"), langs="en,fr", max_per_domain=4, bootstrap=0, ks=(1,),
        noise_kinds=("lowercase",), device="cpu", layers="last",
    )  # fmt: skip
    out = run_eval(str(tiny_model_dir), "default", tmp_path / "ev", opts)
    want = tables.analysis_table(out.results, "robustness")
    assert want.height > 0
    app = _app(tmp_path / "ev")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause()
        tabs = app.screen.query_one("#diag-tabs", TabbedContent)
        assert tabs.get_pane("analysis-robustness") is not None
        table = app.screen.query_one("#analysis-robustness-table", DataTable)
        assert table.row_count == want.height
        first = [str(c) for c in table.get_row_at(0)]
        assert first[0] == want["metric"][0] and first[4] == f"{want['value'][0]:.4f}"


@pytest.mark.anyio
async def test_task_tab_is_the_task_rows(tmp_path: Path) -> None:
    """Task accuracy: a lang1 x lang2 grid of exactly the results' cells, per domain with d."""
    import numpy as np
    from textual.widgets import DataTable

    from xrdiag.analyses.task_accuracy import task_results

    rng = np.random.default_rng(0)
    langs = [("en", "en"), ("en", "fr"), ("fr", "fr"), ("fr", "en")]
    preds = pl.DataFrame(
        [
            {
                "id": f"s{i}",
                "lang1": a,
                "lang2": b,
                "domain": ("medical", "news")[i % 2],
                "label": int(i % 2),
                "pred": int(rng.integers(2)),
            }
            for i in range(40)
            for a, b in langs
        ]  # fmt: skip
    )
    eval_dir = tmp_path / "ev"
    shutil.copytree(EVAL, eval_dir)
    fixture = pl.read_parquet(EVAL / "results.parquet")
    task = task_results(preds, layer=int(fixture["layer"].max()), bootstrap=20)  # type: ignore[arg-type]
    task = task.with_columns(pl.lit(fixture["checkpoint"][0]).alias("checkpoint"))
    pl.concat([fixture, task.select(fixture.columns)], how="vertical_relaxed").write_parquet(
        eval_dir / "results.parquet"
    )
    app = _app(eval_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause()
        tabs = app.screen.query_one("#diag-tabs", TabbedContent)
        assert tabs.get_pane("analysis-task") is not None
        tabs.active = "analysis-task"
        await pilot.pause()
        heat = app.screen.query_one("#task-heat", Heatmap)
        for domain in ("all", "medical"):
            while app.screen.state.cka_domain != domain:  # type: ignore[attr-defined]
                await pilot.press("d")
            await pilot.pause()
            for a, b in langs:
                cell = preds.filter(
                    (pl.col("lang1") == a) & (pl.col("lang2") == b)
                    & ((pl.col("domain") == domain) | (domain == "all"))
                )  # fmt: skip
                want = float((cell["pred"] == cell["label"]).mean())
                assert _cell_value(heat, a, b) == pytest.approx(want, abs=1e-12)
        table = app.screen.query_one("#analysis-task-table", DataTable)
        assert {str(table.get_row_at(i)[0]) for i in range(table.row_count)} == {
            "accuracy_mono",
            "accuracy_cross",
            "transfer_gap",
        }
