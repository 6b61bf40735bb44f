"""The Study screen's cells line follows cells that other processes run.

A real `xrdiag study run-cell` process trains and evaluates one cell of a planned tiny study
while the screen is open: the line says the cell is running (training, then evaluating) as
long as that process holds it, and finished once its DONE marker is written; the Runs index
agrees.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from screen_app import ScreenApp
from textual.app import App
from textual.widgets import Static

from xrdiag.core.study.config import load_study_config
from xrdiag.core.study.plan import plan_study
from xrdiag.tui.runs_index import scan_runs
from xrdiag.tui.screens.study import StudyScreen

SIZE = (160, 30)
TIMEOUT_S = 600.0  # a shared machine: generous, never asserted


def planned_study(tiny: Path, tmp: Path) -> Path:
    config = tmp / "study.toml"
    config.write_text('[study]\npreset = "quick"\n', encoding="utf-8")
    sets = [
        f"train.model.name={tiny}",
        "train.model.freeze_layers=0",
        "train.model.max_length=24",
        "train.corpus.max_per_domain=20",
        "train.optim.max_steps=20",
        "train.optim.warmup_steps=0",
        "train.protocol.dev_max_per_domain=3",
        'study.variants=["baseline","hybrid"]',
        "study.seeds=[0,1]",
        "eval.max_per_domain=6",
        "eval.bootstrap=20",
        "eval.max_length=24",
    ]
    out = tmp / "runs" / "study"
    plan_study(load_study_config(config, sets), out)
    return out


def cells_text(app: App) -> str:
    screen = app.screen
    assert isinstance(screen, StudyScreen)
    screen.show_cells()  # what the screen's timer does every few seconds
    return str(screen.query_one("#study-cells", Static).render())


@pytest.mark.anyio
async def test_a_cell_run_by_another_process_shows_running_then_finished(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = planned_study(tiny_model_dir, tmp_path)
    app = ScreenApp(lambda: StudyScreen(out))
    async with app.run_test(size=SIZE) as pilot:
        assert cells_text(app) == "cells: 0 of 4 finished · pending: 4"
        note = str(app.screen.query_one("#study-note", Static).render())
        assert "no figures.parquet yet" in note
        proc = subprocess.Popen(
            [sys.executable, "-m", "xrdiag", "study", "run-cell", "--out", str(out),
             "--index", "0", "--threads", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        seen: set[str] = set()
        runs_status = set()
        deadline = time.monotonic() + TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            text = cells_text(app)
            if "running: baseline/seed-0 (training, step" in text:
                seen.add("training")
            if "running: baseline/seed-0 (evaluating)" in text:
                seen.add("evaluating")
            if "running: " in text:  # the Runs list shows the cell once it has a run.toml
                rows = {e.name: e.status for e in scan_runs(out.parent)}
                runs_status.add((rows["study"], rows.get("study/baseline/seed-0")))
            await pilot.pause(0.1)
        output, _ = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, output[-3000:]
        assert seen, "the cell never showed as running while its process trained or evaluated"
        assert ("running", "running") in runs_status  # the Runs screen agrees
        assert cells_text(app) == "cells: 1 of 4 finished · pending: 3"
        rows = {e.name: e.status for e in scan_runs(out.parent)}
        assert rows["study/baseline/seed-0"] == "finished"
