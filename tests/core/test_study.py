"""A miniature study on the tiny encoder: layout, bookkeeping (skip, resume), aggregation, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from xrdiag.cli.study import demo_command, study_command
from xrdiag.core.events import read_events
from xrdiag.core.layout.dirs import RunDir, classify
from xrdiag.core.layout.names import STUDY_FILE
from xrdiag.core.study.aggregate import aggregate_study
from xrdiag.core.study.config import (
    StudyConfig,
    load_study_config,
    read_study_config,
    study_to_toml,
)
from xrdiag.core.study.runner import cell_dir, run_study
from xrdiag.core.training.loop import train
from xrdiag.errors import UserError
from xrdiag.report.study_summary import write_study_summary


def mini(tiny: Path, *extra: str) -> list[str]:
    """A handful of steps on the tiny encoder, small caps, a variant identical to the baseline."""
    return [
        f"train.model.name={tiny}",
        "train.model.freeze_layers=0",
        "train.model.max_length=24",
        "train.corpus.max_per_domain=20",
        "train.optim.max_steps=3",
        "train.optim.warmup_steps=0",
        "train.protocol.dev_max_per_domain=3",
        "study.seeds=[0,1]",
        "eval.max_per_domain=6",
        "eval.bootstrap=20",
        "eval.max_length=24",
        "stats.draws=500",
        "stats.bootstrap=50",
        *extra,
    ]


def config(tiny: Path, tmp_path: Path, *extra: str) -> StudyConfig:
    path = tmp_path / "study.toml"
    path.write_text('[study]\npreset = "quick"\n\n[variants.same]\n', encoding="utf-8")
    return load_study_config(
        path, mini(tiny, 'study.variants=["baseline","hybrid","same"]', *extra)
    )


@pytest.fixture(scope="module")
def study(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("study")
    out = tmp / "out"
    outcome = run_study(config(tiny_model_dir, tmp), out)
    assert outcome.status == "finished" and outcome.done == outcome.total == 6
    return out


def test_layout_follows_the_contract(study: Path) -> None:
    assert classify(study) == "study"
    assert classify(study / "base") == "eval"
    for variant in ("baseline", "hybrid", "same"):
        for seed in (0, 1):
            cell = cell_dir(study, variant, seed)
            assert classify(cell) == "run"
            marker = json.loads((cell / "DONE").read_text())
            assert marker["status"] == "done" and marker["step"] == 3
            assert classify(cell / "diagnostics" / "step-000003") == "eval"
    summary = pl.read_parquet(study / "summary.parquet")
    assert summary.schema["variant"] == pl.String and summary.schema["seed"] == pl.Int64
    assert set(summary["checkpoint"]) == {"base"} | {
        f"{v}/seed-{s}" for v in ("baseline", "hybrid", "same") for s in (0, 1)
    }
    assert (
        summary.filter(pl.col("variant") == "base")["seed"].null_count()
        == summary.filter(pl.col("variant") == "base").height
    )
    figures = pl.read_parquet(study / "figures.parquet")
    assert figures.columns == [
        "variant", "figure", "lang", "domain", "value", "ci_low", "ci_high", "n", "n_seeds",
        "pool", "method", "note",
    ]  # fmt: skip
    assert {"base", "baseline", "hybrid", "same"} <= set(figures["variant"])
    quadrants = figures.filter(pl.col("figure") == "quadrant_recall@1")
    assert set(zip(quadrants["lang"], quadrants["domain"], strict=True)) == {
        (a, b) for a in ("seen", "unseen") for b in ("seen", "unseen")
    }
    comparison = pl.read_parquet(study / "comparison.parquet")
    assert comparison.schema["significant"] == pl.Boolean
    assert "Study summary" in write_study_summary(study).read_text()  # the view the CLI writes


def test_identical_variant_trains_identically(study: Path) -> None:
    comparison = pl.read_parquet(study / "comparison.parquet")
    same = comparison.filter(pl.col("variant") == "same")
    assert same.height > 0
    assert (same["delta"] == 0.0).all() and (same["p_value"] == 1.0).all()


def test_recall_figure_is_the_mean_of_the_cells(study: Path) -> None:
    summary = pl.read_parquet(study / "summary.parquet")
    cells = summary.filter(
        (pl.col("variant") == "hybrid")
        & (pl.col("metric") == "recall@1|cos|none")
        & (pl.col("domain") != "all")
        & (pl.col("src_lang") != pl.col("tgt_lang"))
        & ((pl.col("src_lang") == "en") | (pl.col("tgt_lang") == "en"))
    )
    figures = pl.read_parquet(study / "figures.parquet")
    overall = figures.filter(
        (pl.col("variant") == "hybrid")
        & (pl.col("figure") == "recall@1")
        & (pl.col("lang") == "all")
        & (pl.col("domain") == "all")
    )
    assert overall["value"][0] == pytest.approx(cells["value"].mean(), abs=1e-12)


def test_rerun_skips_finished_cells(study: Path) -> None:
    cell = cell_dir(study, "hybrid", 1)
    before = {p: p.stat().st_mtime_ns for p in cell.rglob("*") if p.is_file()}
    outcome = run_study(read_study_config(study), study, resume=True)
    assert outcome.status == "finished"
    after = {p: p.stat().st_mtime_ns for p in cell.rglob("*") if p.is_file()}
    assert after == before


def test_interrupted_cell_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = config(
        tiny_model_dir,
        tmp_path,
        'study.variants=["baseline"]',
        "study.seeds=[0]",
        "study.keep_checkpoints=true",
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / STUDY_FILE).write_text(study_to_toml(cfg), encoding="utf-8")
    cell = cell_dir(out, "baseline", 0)
    stopped = train(cfg.cell_config("baseline", 0), cell, stop_after=1)
    assert stopped.status == "stopped" and stopped.step == 1
    outcome = run_study(cfg, out, resume=True)
    assert outcome.status == "finished"
    kinds = [e["kind"] for e in read_events(cell / "events.jsonl")]
    assert "resume" in kinds and kinds[-1] == "end"
    assert RunDir(cell).latest_checkpoint()[0] == 3
    assert (cell / "DONE").is_file()
    assert json.loads((cell / "DONE").read_text())["checkpoint_kept"] is True


def test_quick_preset_deletes_checkpoints_once_evaluated(study: Path) -> None:
    """The quick preset keeps events, config and diagnostics of a cell, not its ~0.5 GB weights;
    the dashboard still resolves the cell to its diagnostics."""
    from xrdiag.core.layout.resolve import resolve_diagnostics

    assert read_study_config(study).keep_checkpoints is False
    for cell in (study / "cells").glob("*/seed-*"):
        marker = json.loads((cell / "DONE").read_text())
        assert marker["checkpoint_kept"] is False
        assert not (cell / "checkpoints").exists()
        assert (study / marker["diagnostics"] / "results.parquet").is_file()
        assert resolve_diagnostics(cell).eval_dir == study / marker["diagnostics"]


def test_fresh_study_refuses_a_used_dir_and_resume_checks_config(
    study: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="--resume"):
        run_study(read_study_config(study), study)
    other = config(tiny_model_dir, tmp_path, "train.optim.max_steps=4")
    with pytest.raises(UserError, match="config differs"):
        run_study(other, study, resume=True)


def test_aggregate_is_reproducible(study: Path) -> None:
    before = pl.read_parquet(study / "comparison.parquet")
    aggregate_study(study)
    assert pl.read_parquet(study / "comparison.parquet").equals(before)


def test_cli_print_config_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(study_command, ["--print-config", "--preset", "quick"])
    assert res.exit_code == 0 and 'preset = "quick"' in res.output
    res = runner.invoke(study_command, [], standalone_mode=False)
    assert isinstance(res.exception, UserError)
    res = runner.invoke(demo_command, ["--out", str(tmp_path / "x"), "--resume"])
    assert isinstance(res.exception, UserError)


def test_cli_ctrl_c_stops_cleanly_then_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGINT while a cell trains: exit 0 with the resume command; --resume finishes the study."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "xrdiag", "study", "--preset", "quick", "--out", str(out)]
    for item in mini(
        tiny_model_dir,
        'study.variants=["baseline"]',
        "study.seeds=[0]",
        "train.optim.max_steps=400",
        "train.run.checkpoint_every=1000",
    ):
        args += ["--set", item]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )
    events = cell_dir(out, "baseline", 0) / "events.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if events.is_file() and any(e["kind"] == "step" for e in read_events(events)):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "resume with: xrdiag study --out" in stderr
    assert not (cell_dir(out, "baseline", 0) / "DONE").exists()
    assert RunDir(cell_dir(out, "baseline", 0)).latest_checkpoint() is not None
    res = CliRunner().invoke(
        study_command, ["--out", str(out), "--resume", "--set", "train.optim.max_steps=400"]
    )
    assert isinstance(res.exception, UserError)  # the config must match the stored one


def test_demo_on_a_study_dir_resumes_it_and_prints_the_table(study: Path) -> None:
    res = CliRunner().invoke(demo_command, ["--out", str(study)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # rich wraps at the terminal's width
    assert "did training change anything?" in out and "the primary question" in out
    assert "minimum detectable effect" in out or "higher than" in out or "lower than" in out
    assert str(study) in out and "finished 6 cells" in out


def test_protocol_mistakes_are_caught_before_anything_runs(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cfg = config(tiny_model_dir, tmp_path, 'train.protocol.train_langs=["en","de"]')
    with pytest.raises(UserError, match="protocol.train_langs"):
        run_study(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    cfg = config(tiny_model_dir, tmp_path, "train.protocol.dev_max_per_domain=2")
    with pytest.raises(UserError, match="dev_max_per_domain"):
        run_study(cfg, tmp_path / "out")


@pytest.mark.anyio
async def test_the_dashboard_shows_each_variants_verdict_with_its_mde(study: Path) -> None:
    """Study screen on a real study: the highlighted variant's primary verdict and MDE."""
    from textual.app import App
    from textual.widgets import Static

    from xrdiag.tui.screens.study import StudyScreen

    class One(App):
        def on_mount(self) -> None:
            self.push_screen(StudyScreen(study))

    app = One()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("down", "down")  # base, baseline, then a compared variant
        await pilot.pause()
        detail = str(app.screen.query_one("#study-detail", Static).render())
        comparison = pl.read_parquet(study / "comparison.parquet")
        row = comparison.filter(pl.col("role") == "primary").row(0, named=True)
        assert row["variant"] in detail
        assert f"{row['mde']:.3f}" in detail or "higher than" in detail or "lower than" in detail
