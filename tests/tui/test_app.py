"""The app shell: help, command palette, themes, navigation to the other screens, snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from xrdiag.tui.app import DARK, LIGHT, XrdiagApp
from xrdiag.tui.commands import COMMANDS
from xrdiag.tui.screens.help import HelpScreen, screen_bindings
from xrdiag.tui.screens.live import LiveScreen
from xrdiag.tui.screens.runs import RunsScreen

SIZE = (120, 36)


async def _runs_ready(pilot: Any) -> RunsScreen:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    return screen


def _select(screen: RunsScreen, name: str) -> None:
    screen.query_one("#runs").move_cursor(row=[e.name for e in screen.shown].index(name))


@pytest.mark.anyio
async def test_help_lists_the_current_screens_bindings(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        runs = await _runs_ready(pilot)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        described = dict(help_screen.rows)
        assert described["/"] == "Filter"
        assert described["space"] == "Mark"
        assert described["?"] == "Help"  # the app's bindings follow the screen's
        await pilot.press("escape")
        assert app.screen is runs
        _select(runs, "finished-dann")
        await pilot.press("enter", "question_mark")
        assert dict(app.screen.rows)["x"] == "Stop run"
        assert "space" not in dict(app.screen.rows)
        await pilot.press("escape", "escape")
        assert app.screen is runs


def test_screen_bindings_cover_every_declared_binding() -> None:
    class Fake:
        BINDINGS = RunsScreen.BINDINGS
        app = XrdiagApp(".")

    rows = screen_bindings(Fake())  # type: ignore[arg-type]
    assert len(rows) == len(RunsScreen.BINDINGS) + len(XrdiagApp.BINDINGS)


@pytest.mark.anyio
async def test_theme_toggle(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        await _runs_ready(pilot)
        assert app.theme == DARK
        await pilot.press("t")
        assert app.theme == LIGHT
        await pilot.press("t")
        assert app.theme == DARK


@pytest.mark.anyio
async def test_command_palette_offers_category_commands(fixture_runs: Path, clock: Any) -> None:
    from textual.command import CommandPalette

    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        await _runs_ready(pilot)
        assert all(":" in title for title, _, _ in COMMANDS)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"toggle theme")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == LIGHT
        assert isinstance(app.screen, RunsScreen)


@pytest.mark.anyio
async def test_enter_on_eval_opens_diagnostics(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        runs = await _runs_ready(pilot)
        _select(runs, "eval-base")
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "DiagnosticsScreen"
        await app.workers.wait_for_complete()


@pytest.mark.anyio
async def test_live_run_opens_its_diagnostics(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        runs = await _runs_ready(pilot)
        _select(runs, "finished-dann")
        await pilot.press("enter")
        assert isinstance(app.screen, LiveScreen)
        await pilot.press("d")
        await pilot.pause()
        assert type(app.screen).__name__ == "DiagnosticsScreen"
        await app.workers.wait_for_complete()


@pytest.mark.anyio
async def test_mark_two_and_compare(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        runs = await _runs_ready(pilot)
        _select(runs, "eval-base")
        await pilot.press("space")
        _select(runs, "finished-dann")
        await pilot.press("space", "c")
        await pilot.pause()
        assert type(app.screen).__name__ == "CompareScreen"
        await app.workers.wait_for_complete()


@pytest.mark.anyio
async def test_compare_needs_two_marks(fixture_runs: Path, clock: Any) -> None:
    app = XrdiagApp(fixture_runs, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        runs = await _runs_ready(pilot)
        await pilot.press("space", "c")
        assert app.screen is runs


def test_ui_command_is_registered() -> None:
    from xrdiag.cli import cli

    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0
    assert "--runs" in result.output


# -- snapshots (pytest-textual-snapshot; SVGs under __snapshots__) ----------------------------


def _settled(*keys: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        await pilot.pause(0.5)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


@pytest.fixture
def snap_runs(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixtures as a relative path, so no checkout's absolute path appears on screen."""
    monkeypatch.chdir(fixture_runs.parent)
    return Path(fixture_runs.name)


def _snapshot_app(runs: Path, clock: Any) -> XrdiagApp:
    app = XrdiagApp(runs, now=clock)
    app.animation_level = "none"
    return app


def test_snapshot_runs(snap_compare: Any, snap_runs: Path, clock: Any) -> None:
    assert snap_compare(_snapshot_app(snap_runs, clock), terminal_size=SIZE,
                        run_before=_settled())  # fmt: skip


def test_snapshot_live_run(snap_compare: Any, snap_runs: Path, clock: Any) -> None:
    # Rows (grouped, by name): eval-base, finished-dann, ...: one down opens the finished run.
    assert snap_compare(_snapshot_app(snap_runs, clock), terminal_size=SIZE,
                        run_before=_settled("down", "enter"))  # fmt: skip


def test_snapshot_help(snap_compare: Any, snap_runs: Path, clock: Any) -> None:
    assert snap_compare(_snapshot_app(snap_runs, clock), terminal_size=SIZE,
                        run_before=_settled("question_mark"))  # fmt: skip


@pytest.mark.anyio
async def test_export_report_from_the_palette(runs_copy: Path, clock: Any) -> None:
    app = XrdiagApp(runs_copy, now=clock)
    async with app.run_test(size=SIZE) as pilot:
        runs = await _runs_ready(pilot)
        _select(runs, "eval-base")
        await pilot.press("ctrl+p")
        await pilot.press(*"report md")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
    written = list((runs_copy / "reports" / "eval-base").glob("*.md"))
    assert written and "recall" in written[0].read_text(encoding="utf-8").lower()


@pytest.mark.anyio
async def test_demo_key_starts_xrdiag_demo_as_its_own_process(tmp_path: Path, clock: Any) -> None:
    """With no runs, D starts `python -m xrdiag demo --out RUNS/demo` (here a stand-in python
    that records its arguments and session, so the test does not train anything)."""
    record = tmp_path / "argv.json"
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {record}.tmp\n"
        f"ps -o sid= -p $$ >> {record}.tmp\n"
        f"mv {record}.tmp {record}\n"
    )
    fake.chmod(0o755)
    runs = tmp_path / "runs"
    app = XrdiagApp(runs, now=clock, python=str(fake))
    async with app.run_test(size=SIZE) as pilot:
        await _runs_ready(pilot)
        await pilot.press("D")
        assert app.children_started[0].wait(timeout=30) == 0
    lines = record.read_text().split()
    assert lines[:5] == ["-m", "xrdiag", "demo", "--out", str(runs / "demo")]
    assert int(lines[5]) == app.children_started[0].pid  # a session of its own
