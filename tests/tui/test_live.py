"""The Live run screen: series from events, live tailing (torn lines), and stopping a real run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from xrdiag.core.events import read_events
from xrdiag.core.layout.dirs import RunDir
from xrdiag.tui.app import XrdiagApp
from xrdiag.tui.run_series import RunSeries
from xrdiag.tui.screens.live import LiveScreen, live_status
from xrdiag.tui.widgets.curves import Curves


def test_series_copy_the_events(fixture_runs: Path) -> None:
    events = read_events(fixture_runs / "finished-dann" / "events.jsonl")
    series = RunSeries()
    series.add(events)
    steps = [e for e in events if e["kind"] == "step"]
    evals = [e for e in events if e["kind"] == "eval"]
    assert series.train["loss"].steps == [e["step"] for e in steps]
    assert series.train["loss"].values == [e["loss"] for e in steps]
    assert series.train["lambda"].values == [e["lambda"] for e in steps]
    assert series.train["disc_acc"].values == [e["components"]["disc_domain_acc"] for e in steps]
    assert series.recall["unseen_langs"].values == [e["recall@1"]["unseen_langs"] for e in evals]
    assert series.alignment["cka"].values == [e["cka"]["mean"] for e in evals]
    assert series.alignment["lang probe"].values == [e["lang_probe"]["acc"] for e in evals]
    # One line per language: the mean of its two directions with the pivot, pooled domains.
    last = evals[-1]
    pooled = [
        r
        for r in last["retrieval"]
        if r["domain"] == "all" and "fr" in (r["src_lang"], r["tgt_lang"])
    ]
    assert len(pooled) == 2
    expected = sum(r["value"] for r in pooled) / 2
    assert abs(series.recall_lang["fr"].values[-1] - expected) < 1e-12
    assert "en" not in series.recall_lang  # the pivot is in every pair, not a line of its own
    medical = [r["value"] for r in last["retrieval"] if r["domain"] == "medical"]
    assert abs(series.recall_domain["medical"].values[-1] - sum(medical) / len(medical)) < 1e-12
    assert series.finished and series.eta() is None
    assert live_status(series, 0.0) == "finished"


def test_eta_from_recent_pace() -> None:
    series = RunSeries()
    series.add([{"kind": "start", "step": 0, "max_steps": 100, "time": 0.0, "pid": 1}])
    series.add(
        [{"kind": "step", "step": s, "time": 10.0 + 2.0 * s, "loss": 1.0} for s in (1, 2, 3)]
    )
    assert series.seconds_per_step() == pytest.approx(2.0)
    assert series.eta() == pytest.approx(97 * 2.0)


def _partial_run(src: Path, dst: Path, keep: int) -> list[str]:
    """Copy a fixture run with only its first `keep` event lines; return all of its lines."""
    shutil.copytree(src, dst)
    lines = (src / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (dst / "events.jsonl").write_text("".join(lines[:keep]), encoding="utf-8")
    return lines


@pytest.mark.anyio
async def test_appended_events_update_curves_and_torn_line_waits(
    fixture_runs: Path, tmp_path: Path, clock: Any
) -> None:
    run = tmp_path / "run"
    lines = _partial_run(fixture_runs / "finished-dann", run, keep=4)
    app = XrdiagApp(tmp_path, now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.push_screen(LiveScreen(run, now=clock))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        loss = screen.query_one("#curve-loss", Curves)
        before = len(loss.series["loss"][0])
        assert before == sum('"kind": "step"' in line for line in lines[:4])
        events = run / "events.jsonl"
        torn = lines[8][: len(lines[8]) // 2]
        with events.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines[4:8]) + torn)  # the last line is still being written
        await pilot.pause(1.2)  # poll (0.5 s) and redraw (0.33 s) timers
        expect = sum('"kind": "step"' in line for line in lines[:8])
        assert len(loss.series["loss"][0]) == expect
        assert screen.series.events == 8
        with events.open("a", encoding="utf-8") as fh:
            fh.write(lines[8][len(torn) :] + "".join(lines[9:]))
        await pilot.pause(1.2)
        assert screen.series.events == len(lines)
        assert screen.series.finished
        recall = screen.query_one("#curve-recall", Curves)
        n_evals = sum('"kind": "eval"' in line for line in lines)
        assert len(recall.series["mean"][0]) == n_evals
        await app.workers.wait_for_complete()


@pytest.mark.anyio
async def test_a_corrupt_line_is_reported_and_skipped(
    fixture_runs: Path, tmp_path: Path, clock: Any
) -> None:
    run = tmp_path / "run"
    lines = _partial_run(fixture_runs / "finished-dann", run, keep=3)
    with (run / "events.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("this is not json\n" + lines[3])
    app = XrdiagApp(tmp_path, now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.push_screen(LiveScreen(run, now=clock))
        await pilot.pause(1.2)
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        assert screen.read_error is not None and "line 4" in screen.read_error
        assert screen.series.events == 4  # the good line after the bad one is read
        await app.workers.wait_for_complete()


@pytest.mark.anyio
async def test_recall_view_cycles(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.push_screen(LiveScreen(fixture_runs / "finished-dann", now=clock))
        await pilot.pause()
        recall = app.screen.query_one("#curve-recall", Curves)
        assert "mean" in recall.series
        await pilot.press("v")
        assert "fr" in recall.series and "mean" not in recall.series
        await pilot.press("v")
        assert "medical" in recall.series
        await app.workers.wait_for_complete()


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


TRAIN_CONFIG = """
[model]
name = "{model}"
max_length = 32
[corpus]
max_per_domain = 10
[protocol]
dev_max_per_domain = 4
[batches]
batch_size = 4
[optim]
max_steps = 100000
[run]
device = "cpu"
eval_every = 100000
checkpoint_every = 100000
"""


@pytest.mark.anyio
async def test_start_and_stop_a_real_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Start `xrdiag train` from the app, stop it with `x`: it checkpoints and exits 0."""
    runs = tmp_path / "runs"
    config = tmp_path / "long.toml"
    config.write_text(TRAIN_CONFIG.format(model=tiny_model_dir), encoding="utf-8")
    app = XrdiagApp(runs)
    async with app.run_test(size=(120, 36)) as pilot:
        run = app.start_run(config, "long")
        assert run == runs / "long"
        proc = app.children_started[0]
        events = run / "events.jsonl"
        stepped = lambda: events.is_file() and '"kind": "step"' in events.read_text()  # noqa: E731
        _wait_for(lambda: stepped() or proc.poll() is not None, 180)
        assert stepped(), (runs / ".logs" / "long.log").read_text()
        await app.push_screen(LiveScreen(run))
        await pilot.pause(0.6)
        assert app.screen.series.step >= 1
        await pilot.press("x")
        assert proc.wait(timeout=180) == 0
        await pilot.pause(1.0)
        kinds = [e["kind"] for e in read_events(events)]
        assert kinds[-1] == "interrupted"
        assert RunDir(run).checkpoints()
        assert app.screen.series.last_kind == "interrupted"
        await app.workers.wait_for_complete()
    assert json.loads((RunDir(run).checkpoints()[-1][1] / "COMPLETE").read_text())["step"] >= 1
