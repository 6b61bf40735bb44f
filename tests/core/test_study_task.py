"""A miniature task-accuracy study on the tiny encoder: the study builds its paraphrase task,
every cell trains a pair classifier on English pairs, and the figures are the predictions'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.core.layout.dirs import EvalDir, StudyDir
from xrdiag.core.study.aggregate import study_protocol
from xrdiag.core.study.config import load_study_config, study_from_dict
from xrdiag.core.study.runner import cell_dir, run_study
from xrdiag.core.task.pairs_io import read_pairs
from xrdiag.report.study_summary import answer_table, write_study_summary

LANGS = ["fr", "sw"]


def task_settings(tiny: Path) -> list[str]:
    return [
        f"train.model.name={tiny}", "train.model.freeze_layers=0", "train.model.max_length=32",
        "train.optim.max_steps=3", "train.optim.warmup_steps=0", "train.optim.lr=1e-3",
        "train.batches.batch_size=8", "train.corpus.max_per_domain=20",
        "study.seeds=[0,1]", 'study.variants=["baseline","same","rs_rp"]',
        f"eval.langs={LANGS}", "eval.task_max_per_domain=12", "eval.bootstrap=20",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def task_study(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("task-study")
    path = tmp / "study.toml"
    path.write_text('[study]\npreset = "task"\n\n[variants.same]\n', encoding="utf-8")
    cfg = load_study_config(path, task_settings(tiny_model_dir))
    out = tmp / "out"
    outcome = run_study(cfg, out)
    assert outcome.status == "finished" and outcome.done == outcome.total == 6
    return out


def test_cells_train_a_classifier_on_the_studys_task(task_study: Path) -> None:
    study = StudyDir(task_study)
    pairs = read_pairs(study.task).frame
    assert set(zip(pairs["lang1"], pairs["lang2"], strict=True)) == {
        ("en", "en"), ("en", "fr"), ("en", "sw"), ("fr", "en"), ("sw", "en")}  # fmt: skip
    assert not study.base.root.exists()  # the untouched model has no classifier to evaluate
    cell = cell_dir(task_study, "rs_rp", 1)
    run_toml = (cell / "run.toml").read_text()
    assert 'kind = "pair_classification"' in run_toml and str(study.task.resolve()) in run_toml
    assert '"en-en"' in run_toml


def test_accuracy_figures_are_the_predictions(task_study: Path) -> None:
    """Each figure = the mean over its (lang pair, domain) strata of the per-id accuracy,
    averaged over seeds, computed here from the cells' predictions.parquet."""
    figures = pl.read_parquet(task_study / "figures.parquet")
    held = read_pairs(StudyDir(task_study).task).frame.filter(pl.col("split") != "train")
    for variant in ("baseline", "rs_rp"):
        per_seed: dict[str, list[float]] = {"all": [], "seen": [], "unseen": []}
        for seed in (0, 1):
            diag = next((cell_dir(task_study, variant, seed) / "diagnostics").iterdir())
            pred = pl.read_parquet(EvalDir(diag).predictions)
            assert pred.height == held.height
            per_id = pred.group_by("lang1", "lang2", "domain", "id").agg(
                (pl.col("pred") == pl.col("label")).cast(pl.Float64).mean().alias("v")
            )
            strata = per_id.group_by("lang1", "lang2", "domain").agg(pl.col("v").mean())
            seen = (pl.col("lang1") == "en") & (pl.col("lang2") == "en")
            per_seed["all"].append(strata["v"].mean())
            per_seed["seen"].append(strata.filter(seen)["v"].mean())
            per_seed["unseen"].append(strata.filter(~seen)["v"].mean())
        for group, values in per_seed.items():
            row = figures.filter(
                (pl.col("variant") == variant) & (pl.col("figure") == "accuracy")
                & (pl.col("lang") == group) & (pl.col("domain") == "all")
            )  # fmt: skip
            assert row.height == 1 and row["n_seeds"][0] == 2
            assert row["value"][0] == pytest.approx(np.mean(values), abs=1e-12)


def test_the_primary_question_is_zero_shot_accuracy(task_study: Path) -> None:
    comparison = pl.read_parquet(task_study / "comparison.parquet")
    primary = comparison.filter(pl.col("role") == "primary")
    assert set(primary["variant"]) == {"same", "rs_rp"}
    assert (primary["figure"] == "accuracy").all() and (primary["lang"] == "unseen").all()
    same = comparison.filter(pl.col("variant") == "same")
    assert (same["delta"] == 0.0).all()  # identical training: identical predictions
    assert primary["mde"].is_not_null().all()
    assert "training" not in comparison["role"].to_list()  # no base model in a task study
    summary = write_study_summary(task_study).read_text()
    assert "Task accuracy of a sentence-pair classifier trained on the en-en pairs" in summary
    assert "accuracy on the unseen language pairs" in summary
    header, rows = answer_table(pl.read_parquet(task_study / "figures.parquet"))
    assert header[:3] == ["variant", "acc", "acc 95% CI"] and "zero-shot pairs" in header
    assert [r[0] for r in rows] == ["baseline", "same", "rs_rp"]


def test_task_protocol_and_config_checks() -> None:
    cfg = study_from_dict({"study": {"preset": "task"}})
    protocol = study_protocol(cfg)
    assert protocol.is_task and protocol.train_pairs == (("en", "en"),)
    assert cfg.stats.primary_key() == ("accuracy", "unseen", "all")
    switched = study_from_dict({"study": {"preset": "quick"}, "eval": {"outcome": "task"}})
    assert switched.stats.primary == "accuracy:unseen:all"
    from xrdiag.errors import UserError

    with pytest.raises(UserError, match="eval.outcome"):
        study_from_dict({"eval": {"outcome": "bleu"}})


@pytest.mark.anyio
async def test_the_dashboard_shows_a_task_study(task_study: Path) -> None:
    """Study screen: task accuracy first, then the zero-shot groups, then each variant's verdict."""
    from textual.app import App
    from textual.widgets import DataTable, Static

    from xrdiag.tui.screens.study import StudyScreen

    class One(App):
        def on_mount(self) -> None:
            self.push_screen(StudyScreen(task_study))

    app = One()
    async with app.run_test(size=(180, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#study-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[1:6] == ["accuracy", "accuracy seen", "accuracy unseen", "accuracy mono",
                               "accuracy cross"]  # fmt: skip
        await pilot.press("down")
        await pilot.pause()
        detail = str(app.screen.query_one("#study-detail", Static).render())
        assert "accuracy (unseen, all)" in detail
