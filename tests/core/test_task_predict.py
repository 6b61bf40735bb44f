"""End to end on the tiny encoder: build the task, train a pair classifier on its English pairs
with the real loop, predict the dev pairs from the checkpoint, and check every number against a
direct computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.task_accuracy import task_results
from xrdiag.core.corpus import load_corpus
from xrdiag.core.events import read_events
from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.task.build import build_task, write_task
from xrdiag.core.task.pairs_io import read_pairs
from xrdiag.core.task.predict import PREDICTION_COLUMNS, predict_pairs
from xrdiag.core.training.config import load_config
from xrdiag.core.training.dev_eval import task_dev_sample
from xrdiag.core.training.head_file import HEAD_META, HEAD_WEIGHTS
from xrdiag.core.training.loop import read_run_config, train
from xrdiag.errors import UserError

DEV_CAP = 12


def settings(tiny: Path, task: Path) -> list[str]:
    return [
        f"model.name={tiny}", "model.max_length=32", "model.freeze_embeddings=false",
        "batches.batch_size=8", "batches.alpha=0", "batches.beta=0", "corpus.max_per_domain=10",
        "protocol.dev_max_per_domain=3", "optim.lr=1e-3", "optim.warmup_steps=0",
        "optim.max_steps=3", "run.checkpoint_every=2", "run.keep_last=3", "run.device=cpu",
        "objective.kind=pair_classification", f"objective.pairs_file={task}",
        "objective.train_lang_pairs=en-en", f"objective.dev_max_per_lang_pair={DEV_CAP}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("task-run")
    frame = build_task(load_corpus("default"), langs=["en", "fr", "zh"], pairs="en-*",
                       max_per_domain=20, model=str(tiny_model_dir), device="cpu")  # fmt: skip
    task = write_task(frame, root / "task.parquet")
    said: list[str] = []
    result = train(
        load_config(None, settings(tiny_model_dir, task)), root / "run", echo=said.append
    )
    return {"task": task, "result": result, "root": root, "said": said}


def direct_logits(ckpt: Path, s1: list[str], s2: list[str]) -> np.ndarray:
    """The head on the checkpoint, computed here: HF forward, masked mean, the head in numpy."""
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoModel, AutoTokenizer

    meta = json.loads((ckpt / HEAD_META).read_text())
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModel.from_pretrained(ckpt).eval()
    w = load_file(str(ckpt / HEAD_WEIGHTS))
    out = []
    for a, b in zip(s1, s2, strict=True):
        enc = tok(meta["prefix"] + a, meta["prefix"] + b, truncation=True,
                  max_length=meta["max_length"], return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0].numpy().astype(np.float64)
        pooled = hidden.mean(axis=0)  # one unpadded pair: the masked mean is the mean
        x = np.tanh(pooled @ w["dense.weight"].T + w["dense.bias"])
        out.append(x @ w["out_proj.weight"].T + w["out_proj.bias"])
    return np.asarray(out)


def test_checkpoint_carries_its_head(run: dict) -> None:
    ckpt = run["result"].checkpoint
    assert run["result"].status == "finished"
    meta = json.loads((ckpt / HEAD_META).read_text())
    assert meta["num_labels"] == 2 and meta["dim"] == 32 and meta["pooling"] == "mean"
    assert meta["label_names"] == ["0", "1"] and meta["max_length"] == 32
    assert meta["layer"] == 2 and (ckpt / HEAD_WEIGHTS).is_file()


def test_predictions_equal_the_heads_logits(run: dict) -> None:
    pairs = read_pairs(run["task"], 2).frame
    dev = pairs.filter(pl.col("split") == "dev")
    pred = predict_pairs(run["result"].checkpoint, dev, batch_size=16)
    assert pred.columns == list(PREDICTION_COLUMNS) and pred.height == dev.height
    assert pred["pair_id"].to_list() == dev["pair_id"].to_list()
    logits = direct_logits(
        run["result"].checkpoint, dev["sentence1"].to_list(), dev["sentence2"].to_list()
    )
    assert (pred["pred"].to_numpy() == logits.argmax(axis=1)).all()
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pred["prob"].to_numpy(), soft.max(axis=1), atol=1e-5)
    results = task_results(pred, layer=2, bootstrap=50)
    direct = float((logits.argmax(axis=1) == dev["label"].to_numpy()).mean())
    pooled = pl.concat([results.filter(pl.col("metric") == m) for m in ("accuracy_mono",
                        "accuracy_cross")])  # fmt: skip
    assert float((pooled["value"] * pooled["n"]).sum() / pooled["n"].sum()) == pytest.approx(
        direct, abs=1e-12
    )
    for (l1, l2), cell in pred.group_by("lang1", "lang2"):
        row = results.filter(
            (pl.col("metric") == "accuracy")
            & (pl.col("src_lang") == l1)
            & (pl.col("tgt_lang") == l2)
            & (pl.col("domain") == "all")
        )
        assert row["value"].item() == pytest.approx(
            float((cell["pred"] == cell["label"]).mean()), abs=1e-12
        )


def test_live_task_accuracy_is_the_checkpoints(run: dict) -> None:
    """The eval event's task accuracy at the last step = predictions of the last checkpoint on
    the same seeded dev sample; training saw en-en only, the event covers every pair."""
    events = read_events(run["root"] / "run" / "events.jsonl", "eval")
    assert [e["step"] for e in events] == [0, 3]
    task = events[-1]["task"]
    dev = read_pairs(run["task"], 2).frame.filter(pl.col("split") == "dev")
    sample = task_dev_sample(dev, DEV_CAP, seed=0)
    assert task["n"] == sample.height == 3 * DEV_CAP
    pred = predict_pairs(run["result"].checkpoint, sample)
    correct = pred.with_columns(ok=(pl.col("pred") == pl.col("label")).cast(pl.Float64))
    per = {f"{a}|{b}": v for a, b, v in
           correct.group_by("lang1", "lang2").agg(pl.col("ok").mean()).iter_rows()}  # fmt: skip
    assert task["accuracy"]["by_pair"] == pytest.approx(per, abs=1e-12)
    assert task["accuracy"]["mean"] == pytest.approx(np.mean(list(per.values())), abs=1e-12)
    assert task["accuracy"]["mono"] == pytest.approx(per["en|en"], abs=1e-12)
    assert any(f"dev task accuracy {task['accuracy']['mean']:.3f}" in x for x in run["said"])
    steps = read_events(run["root"] / "run" / "events.jsonl", "step")
    assert 0 <= steps[-1]["components"]["pair_acc"] <= 1


def test_resume_keeps_head_and_weights(run: dict, tiny_model_dir: Path) -> None:
    cfg = load_config(None, settings(tiny_model_dir, run["task"]))
    part = run["root"] / "part"
    assert train(cfg, part, stop_after=2).status == "stopped"
    resumed = train(read_run_config(RunDir(part)), part, resume=True)
    assert resumed.status == "finished" and resumed.step == 3
    for name in (HEAD_WEIGHTS, "model.safetensors"):
        from safetensors.numpy import load_file

        a = load_file(str(run["result"].checkpoint / name))
        b = load_file(str(resumed.checkpoint / name))
        for key in a:
            np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=f"{name} {key}")


def test_a_checkpoint_without_a_head(tiny_model_dir: Path, run: dict) -> None:
    pairs = read_pairs(run["task"], 2).frame.head(4)
    with pytest.raises(UserError, match="no pair-classification head"):
        predict_pairs(tiny_model_dir, pairs)
    with pytest.raises(UserError, match="missing column"):
        predict_pairs(run["result"].checkpoint, pairs.drop("sentence2"))


# --------------------------------------------------------------------------- eval --task


def cli(argv: list[str]) -> tuple[int, str]:
    """The command as a user runs it (a subprocess: its real exit code and streams)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "xrdiag", *argv], capture_output=True,
                          text=True, check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def evaluated(run: dict) -> Path:
    """`xrdiag eval --analyses task` on the trained checkpoint, through the command line."""
    out = run["root"] / "eval"
    argv = ["eval", "--model", str(run["result"].checkpoint), "--analyses", "task",
            "--task", str(run["task"]), "--bootstrap", "50", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    code, output = cli(argv)
    assert code == 0, output
    return out


def test_eval_task_scores_the_held_out_pairs(run: dict, evaluated: Path) -> None:
    """Every dev and test pair is predicted once; each accuracy cell equals its predictions'."""
    from xrdiag.core.layout.dirs import EvalDir

    found = EvalDir(evaluated)
    assert found.exists() and found.predictions.is_file()
    pred = pl.read_parquet(found.predictions)
    held = read_pairs(run["task"], 2).frame.filter(pl.col("split") != "train")
    assert sorted(pred["pair_id"].to_list()) == sorted(held["pair_id"].to_list())
    results = pl.read_parquet(found.results).filter(pl.col("analysis") == "task")
    assert set(results["metric"]) >= {"accuracy", "macro_f1", "accuracy_mono", "accuracy_cross"}
    again = predict_pairs(run["result"].checkpoint, held)
    assert dict(zip(again["pair_id"], again["pred"], strict=True)) == dict(
        zip(pred["pair_id"], pred["pred"], strict=True)
    )
    for (l1, l2, dom), cell in pred.group_by("lang1", "lang2", "domain"):
        row = results.filter(
            (pl.col("metric") == "accuracy") & (pl.col("src_lang") == l1)
            & (pl.col("tgt_lang") == l2) & (pl.col("domain") == dom)
        )  # fmt: skip
        assert row["n"].item() == cell.height
        assert row["value"].item() == pytest.approx(
            float((cell["pred"] == cell["label"]).mean()), abs=1e-12
        )
    manifest = json.loads(found.manifest.read_text())
    assert manifest["options"]["analyses"] == ["task"]
    assert manifest["task"]["n"] == held.height
    assert manifest["task"]["pairs"] == str(Path(run["task"]).resolve())


def test_eval_task_needs_its_pairs(run: dict, tmp_path: Path) -> None:
    """No pairs: one line and exit 2, nothing written."""
    argv = ["eval", "--model", str(run["result"].checkpoint), "--analyses", "task",
            "--device", "cpu", "--out", str(tmp_path / "e")]  # fmt: skip
    code, output = cli(argv)
    assert code == 2 and "--task" in output and "Traceback" not in output
    assert not (tmp_path / "e" / "results.parquet").exists()


def test_task_accuracy_in_report_and_compare(evaluated: Path, tmp_path: Path) -> None:
    """The report shows the task table; compare gates on accuracy (A vs itself: no drop)."""
    code, output = cli(["report", str(evaluated), "--out", str(tmp_path / "r")])
    assert code == 0, output
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Task" in text and "accuracy\\_cross" in text and "task accuracy monolingual" in text
    code, output = cli(["compare", str(evaluated), str(evaluated), "--no-reeval",
                               "--fail-if", "accuracy < -0.01"])  # fmt: skip
    assert code == 0, output
    code, output = cli(["compare", str(evaluated), str(evaluated), "--no-reeval",
                                  "--fail-if", "accuracy <= 0"])  # fmt: skip
    assert code == 1 and "accuracy" in output, output


def test_live_series_and_report_carry_dev_task_accuracy(run: dict) -> None:
    """The Live screen's task lines and the report's eval table are the eval events' numbers."""
    from xrdiag.report.run_tables import eval_table
    from xrdiag.tui.run_series import RunSeries

    events = read_events(run["root"] / "run" / "events.jsonl")
    evals = [e for e in events if e["kind"] == "eval"]
    series = RunSeries()
    series.add(events)
    for part in ("mono", "cross"):
        line = series.alignment[f"task {part}"]
        assert line.steps == [e["step"] for e in evals]
        assert line.values == [e["task"]["accuracy"][part] for e in evals]
    table = eval_table(events)
    assert table["task_accuracy_mean"].to_list() == [e["task"]["accuracy"]["mean"] for e in evals]
    assert any("task accuracy" in line for line in series.log)
