"""The runs index (discovery, status, tail reading) and the Runs screen (filter, sort, mark)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from xrdiag.core.events import read_events, tail_events
from xrdiag.core.layout.status import pid_alive, run_state
from xrdiag.core.training.describe import method_label
from xrdiag.tui.app import XrdiagApp
from xrdiag.tui.runs_index import format_elapsed, scan_runs
from xrdiag.tui.screens.runs import RunsScreen

NOW = 1_767_225_600.0 + 3600.0  # the fixed clock of conftest.Clock


def _by_name(runs: Path) -> dict[str, Any]:
    return {e.name: e for e in scan_runs(runs, now=NOW)}


def test_scan_finds_every_kind_with_status_and_metric(fixture_runs: Path) -> None:
    FIXTURES = fixture_runs
    entries = _by_name(FIXTURES)
    assert set(entries) == {
        "eval-base", "finished-dann", "interrupted-pgd", "running-dann", "study-demo",
        "study-demo/contrastive/seed-0", "study-demo/dann+hybrid/seed-0",
    }  # fmt: skip
    finished = entries["finished-dann"]
    events = read_events(FIXTURES / "finished-dann" / "events.jsonl")
    last_eval = [e for e in events if e["kind"] == "eval"][-1]
    assert finished.kind == "run" and finished.status == "finished"
    assert finished.method == "dann+hybrid"
    assert finished.step == 12 and finished.max_steps == 12
    assert finished.metric == last_eval["recall@1"]["mean"]
    assert finished.elapsed == events[-1]["time"] - events[0]["time"]
    assert entries["interrupted-pgd"].status == "interrupted"
    assert entries["interrupted-pgd"].method == "pgd"
    # No terminal event and a pid that is not alive: it crashed.
    assert entries["running-dann"].status == "failed"
    study = entries["study-demo"]
    assert (study.kind, study.status, study.step, study.max_steps) == ("study", "finished", 2, 2)
    assert entries["study-demo/contrastive/seed-0"].group == "study-demo"
    figures = pl.read_parquet(fixture_runs / "study-demo" / "figures.parquet")
    baseline = figures.filter(
        (pl.col("variant") == "contrastive")
        & (pl.col("figure") == "recall@1")
        & (pl.col("lang") == "all")
        & (pl.col("domain") == "all")
    )
    assert baseline.height == 1 and study.metric == baseline["value"][0]


def test_eval_metric_is_mean_cross_language_recall_at_top_layer(fixture_runs: Path) -> None:
    FIXTURES = fixture_runs
    frame = pl.read_parquet(FIXTURES / "eval-base" / "results.parquet")
    top = frame.filter(pl.col("analysis") == "retrieval")["layer"].max()
    rows = frame.filter(
        (pl.col("analysis") == "retrieval")
        & (pl.col("metric") == "recall@1|cos|none")
        & (pl.col("domain") == "all")
        & (pl.col("layer") == top)
    ).to_dicts()
    naive = [r["value"] for r in rows if r["src_lang"] != r["tgt_lang"]]
    assert naive
    got = _by_name(FIXTURES)["eval-base"].metric
    assert abs(got - sum(naive) / len(naive)) < 1e-9


def test_live_pid_means_running_and_elapsed_uses_now(runs_copy: Path, alive, clock) -> None:  # type: ignore[no-untyped-def]
    alive(runs_copy / "running-dann")
    entry = _by_name(runs_copy)["running-dann"]
    assert entry.status == "running"
    assert entry.elapsed == clock.now - clock.t0
    assert pid_alive(entry.pid)


def test_status_rules() -> None:
    start = {"kind": "start", "pid": 999_999_999, "host": "here", "time": 0.0}
    assert run_state([], 0, "here") == "pending"
    assert run_state([start, {"kind": "end"}], 0, "here") == "finished"
    assert run_state([start, {"kind": "stopped"}], 0, "here") == "interrupted"
    assert run_state([start, {"kind": "nonfinite"}], 0, "here") == "failed"
    assert run_state([start, {"kind": "step", "time": 0.0}], 0, "here") == "failed"
    remote = {**start, "host": "elsewhere"}
    assert run_state([remote, {"kind": "step", "time": 100.0}], 110, "here") == "running"
    assert run_state([remote, {"kind": "step", "time": 100.0}], 10_000, "here") == "failed"


def test_tail_reads_back_to_last_eval_and_skips_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [{"kind": "start", "step": 0, "time": 0.0, "pid": 1}]
    lines += [{"kind": "eval", "step": 0, "recall@1": {"mean": 0.5}, "pad": "x" * 5000}]
    lines += [{"kind": "step", "step": i, "pad": "y" * 3000} for i in range(1, 60)]
    path.write_text("\n".join(json.dumps(e) for e in lines) + '\n{"kind": "step", "st')
    first, events = tail_events(path)
    assert first == lines[0]
    assert events[-1]["step"] == 59  # the torn line is not an event
    assert any(e["kind"] == "eval" for e in events)
    assert any(e["kind"] == "start" for e in events)


def test_method_labels() -> None:
    assert method_label({}) == "contrastive"
    assert method_label({"robust": {"adversarial": {"enabled": True, "method": "pgd"}}}) == "pgd"
    cfg = {"dann": {"enabled": True}, "batches": {"alpha": 0.5, "beta": 1.0}}
    assert method_label(cfg) == "dann+hybrid"
    assert method_label({"robust": {"rs_rp": {"enabled": True}}}) == "rs-rp"
    assert method_label({"objective": {"kind": "pairs"}}) == "pairs"


def test_format_elapsed() -> None:
    assert [format_elapsed(s) for s in (None, 5, 65, 7260)] == ["-", "5s", "1m05s", "2h01m"]


# -- the screen -----------------------------------------------------------------------------


async def _ready(pilot) -> RunsScreen:  # type: ignore[no-untyped-def]
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    return screen


@pytest.mark.anyio
async def test_filter_sort_group_and_mark(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready(pilot)
        assert len(screen.shown) == 7
        await pilot.press("slash", *"dann")
        await pilot.pause()
        assert {e.name for e in screen.shown} == {
            "finished-dann", "running-dann", "study-demo/dann+hybrid/seed-0"
        }  # fmt: skip
        await pilot.press("escape")
        assert len(screen.shown) == 7
        await pilot.press("7")  # sort by recall@1, ascending: missing metrics first
        assert screen.sort == "metric" and not screen.reverse
        await pilot.press("g")  # flat, so the order is the sort order alone
        metrics = [e.metric for e in screen.shown if e.metric is not None]
        assert metrics == sorted(metrics)
        await pilot.press("7")
        assert screen.reverse
        metrics = [e.metric for e in screen.shown if e.metric is not None]
        assert metrics == sorted(metrics, reverse=True)
        await pilot.press("1", "g")  # by name, grouped: cells right after their study
        names = [e.name for e in screen.shown]
        study = names.index("study-demo")
        assert names[study + 1 : study + 3] == [
            "study-demo/contrastive/seed-0", "study-demo/dann+hybrid/seed-0"
        ]  # fmt: skip
        screen.query_one("#runs").move_cursor(row=0)
        await pilot.press("space", "space")
        assert screen.marked == {screen.shown[0].path, screen.shown[1].path}
        await pilot.press("up", "space")
        assert screen.marked == {screen.shown[0].path}


@pytest.mark.anyio
async def test_header_click_sorts(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready(pilot)
        table = screen.query_one("#runs")
        header_x = table.columns["status"].get_render_width(table) // 2
        offset = sum(table.columns[k].get_render_width(table) for k in ("mark", "name", "kind"))
        offset += table.columns["method"].get_render_width(table)
        await pilot.click("#runs", offset=(offset + header_x, 0))
        await pilot.pause()
        assert screen.sort == "status"
        statuses = [e.status for e in screen.shown if e.kind != "cell"]
        assert statuses == sorted(statuses)


@pytest.mark.anyio
async def test_empty_runs_dir_offers_demo(tmp_path: Path, clock: Any) -> None:
    app = XrdiagApp(tmp_path / "nothing-here", now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready(pilot)
        empty = screen.query_one("#runs-empty")
        assert empty.display
        assert "xrdiag demo" in str(empty.render())


@pytest.mark.anyio
async def test_enter_opens_live_run(fixture_runs: Path, clock: Any) -> None:
    from xrdiag.tui.screens.live import LiveScreen

    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready(pilot)
        row = [e.name for e in screen.shown].index("finished-dann")
        screen.query_one("#runs").move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, LiveScreen)
        assert app.screen.run_dir == fixture_runs / "finished-dann"
        await pilot.press("escape")
        assert app.screen is screen
