"""The dashboard survives bad runs, shows runs while it is still finding them, and names the
process holding a run's lock; a resumed run's redone steps are shown once."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from xrdiag.core.layout.lock import RunLock
from xrdiag.tui import runs_index
from xrdiag.tui.app import XrdiagApp
from xrdiag.tui.run_series import RunSeries
from xrdiag.tui.runs_index import scan_runs
from xrdiag.tui.screens.live import LiveScreen
from xrdiag.tui.screens.runs import RunsScreen

NOW = 1_767_225_600.0 + 3600.0

BROKEN = {
    "dann-int": "dann = 3\n",
    "optim-int": "optim = 3\n",
    "nested": "[robust]\nadversarial = 'pgd'\n",
    "not-toml": "[optim\nmax_steps = 3\n",
    "bad-bytes": b"\xff\xfe[optim]\n",
}


def broken_runs(base: Path, fixture_runs: Path) -> Path:
    runs = base / "runs"
    shutil.copytree(fixture_runs / "finished-dann", runs / "good")
    for name, text in BROKEN.items():
        run = runs / name
        shutil.copytree(fixture_runs / "finished-dann", run)
        data = text.encode() if isinstance(text, str) else text
        (run / "run.toml").write_bytes(data)
    bad_events = runs / "bad-events"
    shutil.copytree(fixture_runs / "finished-dann", bad_events)
    (bad_events / "events.jsonl").write_text(
        json.dumps({"kind": "start", "pid": "x", "host": 3, "time": "soon", "max_steps": "y"})
        + "\n"
        + json.dumps({"kind": "step", "step": 1.5, "time": 1e300, "components": 4})
        + "\n"
    )
    return runs


def test_a_broken_run_is_listed_as_invalid_and_the_others_stay_usable(
    tmp_path: Path, fixture_runs: Path
) -> None:
    runs = broken_runs(tmp_path, fixture_runs)
    entries = {e.name: e for e in scan_runs(runs, now=NOW)}
    assert set(entries) == {"good", "bad-events", *BROKEN}
    assert entries["good"].status == "finished" and entries["good"].method == "dann+hybrid"
    for name in BROKEN:
        assert entries[name].status == "invalid", name
        assert entries[name].method.startswith("invalid: run.toml: "), entries[name].method
    assert "[dann] is int 3, expected a table" in entries["dann-int"].method
    assert "[robust.adversarial] is str" in entries["nested"].method
    assert entries["bad-events"].status != "invalid"  # odd events degrade, never break a row


@pytest.mark.anyio
async def test_the_dashboard_lists_broken_runs_and_opens_the_good_one(
    tmp_path: Path, fixture_runs: Path
) -> None:
    runs = broken_runs(tmp_path, fixture_runs)
    app = XrdiagApp(runs, now=lambda: NOW)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunsScreen) and len(screen.shown) == 7
        table = screen.query_one("#runs")
        methods = [str(table.get_row_at(i)[3]) for i in range(len(screen.shown))]
        assert sum(m.startswith("invalid: ") for m in methods) == len(BROKEN)
        for name in ("bad-events", "dann-int", "good"):  # each opens without a crash
            row = [e.name for e in screen.shown].index(name)
            screen.query_one("#runs").move_cursor(row=row)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, LiveScreen)
            await pilot.press("escape")
            await pilot.pause()


@pytest.mark.anyio
async def test_rows_appear_while_the_scan_is_still_walking(
    tmp_path: Path, fixture_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    for i in range(3):
        shutil.copytree(fixture_runs / "finished-dann", runs / f"run-{i}")
    release = threading.Event()
    real = runs_index.run_entry

    def slow_after_first(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name != "run-0":
            release.wait(timeout=60)  # the rest of a large tree is still being walked
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runs_index, "run_entry", slow_after_first)
    monkeypatch.setattr("xrdiag.tui.screens.runs.SHOW_EVERY_S", 0.0)
    app = XrdiagApp(runs, now=lambda: NOW)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            for _ in range(200):  # until the first row is shown (the walk is blocked)
                await pilot.pause(0.05)
                if screen.shown:
                    break
            assert [e.name for e in screen.shown] == ["run-0"] and screen.scanning
            release.set()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert [e.name for e in screen.shown] == ["run-0", "run-1", "run-2"]
    finally:
        release.set()


@pytest.mark.anyio
async def test_runs_and_live_views_name_the_lock_holder(tmp_path: Path, fixture_runs: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(fixture_runs / "finished-dann", runs / "locked")
    with RunLock(runs / "locked") as lock:
        entry = scan_runs(runs, now=NOW)[0]
        assert entry.holder is not None and f"pid {lock_pid(lock)}" in entry.holder
        app = XrdiagApp(runs, now=lambda: NOW)
        async with app.run_test(size=(160, 36)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            table = app.screen.query_one("#runs")
            assert f"lock: pid {lock_pid(lock)}" in str(table.get_row_at(0)[4])
            await pilot.press("enter")
            await pilot.pause()
            head = str(app.screen.query_one("#live-head").render())
            assert f"lock: pid {lock_pid(lock)}" in head


def lock_pid(lock: RunLock) -> int:
    return json.loads(lock.path.read_text())["pid"]


def test_series_keep_the_last_event_per_step_after_a_resume(fixture_runs: Path) -> None:
    """Killed after step 8, resumed from the step-4 checkpoint: steps 5-8 come twice."""
    lines = (fixture_runs / "finished-dann" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    steps = [e for e in events if e["kind"] == "step"]
    first_try = [e for e in events if e.get("step", 0) <= 8 and e["kind"] in ("step", "eval")]
    redo = [{**e, "loss": 100.0 + e["step"]} if e["kind"] == "step" else e
            for e in events if e.get("step", 0) > 4 and e["kind"] != "start"]  # fmt: skip
    resumed = [events[0], *first_try, {"kind": "resume", "step": 4, "pid": 1}, *redo]
    series = RunSeries()
    series.add(resumed)
    loss_steps, loss = series.train["loss"].xy
    assert loss_steps == sorted(set(loss_steps)) == [e["step"] for e in steps]
    assert all(v == 100.0 + s for s, v in zip(loss_steps, loss, strict=True) if s > 4)
    recall_steps = series.recall["mean"].steps
    assert recall_steps == sorted(set(recall_steps))


@pytest.mark.anyio
async def test_a_damaged_eval_opens_with_its_error_named(tmp_path: Path) -> None:
    """A truncated results.parquet: the Diagnostics screen names the file and stays up."""
    from xrdiag.tui.screens.diagnostics import DiagnosticsScreen

    fixtures_b = Path(__file__).parent / "fixtures_b"
    runs = tmp_path / "runs"
    broken = shutil.copytree(fixtures_b / "eval", runs / "broken-eval")
    data = (broken / "results.parquet").read_bytes()
    (broken / "results.parquet").write_bytes(data[: len(data) // 2])
    app = XrdiagApp(runs, now=lambda: NOW)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DiagnosticsScreen)
        messages = [n.message for n in app._notifications]
        assert any("results.parquet: not a readable Parquet file" in m for m in messages)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


@pytest.mark.anyio
async def test_degenerate_embeddings_draw_without_a_crash(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Every text the same: every sentence embeds alike, CKA and the projection are NaN."""
    import csv

    from textual.app import App

    from xrdiag.core.evaluate import EvalOptions, run_eval
    from xrdiag.tui.screens.diagnostics import DiagnosticsScreen

    corpus = tmp_path / "same.csv"
    with corpus.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "lang", "domain", "text"])
        for i in range(8):
            out.writerows([f"s{i}", lang, "news", "hello"] for lang in ("en", "fr", "de"))
    options = EvalOptions(device="cpu", ks=(1,), bootstrap=20, layers="all")
    run_eval(str(tiny_model_dir), str(corpus), tmp_path / "ev", options)

    class One(App[None]):
        def on_mount(self) -> None:
            self.push_screen(DiagnosticsScreen(tmp_path / "ev", auto_eval=False))

    app = One()
    async with app.run_test(size=(120, 36)) as pilot:
        for key in ["1", "m", "s", "c", "c", "2", "l", "3", "4", "k", "5"]:
            await pilot.press(key)
            await pilot.pause()
        assert isinstance(app.screen, DiagnosticsScreen)
    assert app._exception is None
