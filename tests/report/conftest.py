"""Session fixtures for the report tests: real eval, run and study directories on the tiny encoder.

Everything is produced by the real engine (run_eval, the training loop) on a small slice of the
bundled corpus; the study directory is laid out by hand per the study contract from those real
results, so the report is tested against what the engine writes, not against invented frames.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.evaluate import EvalOptions, run_eval

OPTS = dict(max_per_domain=5, bootstrap=20, layers="all", device="cpu", seed=0, ks=(1, 5))


def make_eval(model: Path, out: Path, **over: object) -> Path:
    """A real eval dir of `model` on a small, seeded slice of the bundled corpus."""
    run_eval(str(model), "default", out, EvalOptions(**{**OPTS, **over}))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="session")
def eval_a(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_eval(tiny_model_dir, tmp_path_factory.mktemp("eval") / "model-a")


@pytest.fixture(scope="session")
def run_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step training run with the diagnostics of its final checkpoint."""
    from xrdiag.core.training.config import load_config
    from xrdiag.core.training.loop import train

    sets = [
        f"model.name={tiny_model_dir}", "model.max_length=32", "batches.batch_size=8",
        "corpus.max_per_domain=20", "protocol.dev_max_per_domain=4", "optim.lr=1e-3",
        "optim.warmup_steps=0", "optim.max_steps=4", "run.eval_every=2",
        "run.checkpoint_every=4", "run.device=cpu",
    ]  # fmt: skip
    root = tmp_path_factory.mktemp("run") / "run-a"
    result = train(load_config(None, sets), root)
    assert result.status == "finished"
    make_eval(result.checkpoint, root / "diagnostics" / result.checkpoint.name)
    return root


@pytest.fixture(scope="session")
def running_run(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the run whose event stream stops after step 2 (no end event): still training."""
    root = tmp_path_factory.mktemp("running") / "run-live"
    shutil.copytree(run_dir, root)
    shutil.rmtree(root / "diagnostics")
    lines = (root / "events.jsonl").read_text().splitlines()
    kept = []
    for line in lines:
        event = json.loads(line)
        if event.get("step", 0) > 2 or event["kind"] == "end":
            break
        kept.append(line)
    (root / "events.jsonl").write_text("\n".join(kept) + "\n")
    return root


def _cell_results(eval_dir: Path, variant: str, seed: int | None) -> pl.DataFrame:
    frame = pl.read_parquet(eval_dir / "results.parquet")
    name = "base" if seed is None else f"{variant}/seed-{seed}"
    return frame.with_columns(
        pl.lit(name).alias("checkpoint"),
        pl.lit(variant).alias("variant"),
        pl.lit(seed, dtype=pl.Int64).alias("seed"),
    )


def _overall(frame: pl.DataFrame) -> tuple[float, float, float, int]:
    """Mean recall@1 (domain all) and the min/max of its cells (a fixture's stand-in for a CI)."""
    r = frame.filter((pl.col("metric") == "recall@1|cos|none") & (pl.col("domain") == "all"))
    return float(r["value"].mean()), float(r["value"].min()), float(r["value"].max()), r.height  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def study_dir(eval_a: Path, run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study laid out per the contract: base = eval_a; cells contrastive and tuned (1 seed)."""
    root = tmp_path_factory.mktemp("study") / "study-a"
    (root / "cells").mkdir(parents=True)
    shutil.copytree(eval_a, root / "base")
    (root / "study.toml").write_text(
        '[study]\nbaseline = "contrastive"\nvariants = ["contrastive", "tuned"]\nseeds = [0]\n'
    )
    diag = next((run_dir / "diagnostics").iterdir())
    parts = [_cell_results(eval_a, "base", None)]
    figures, comparison = [], []
    for variant, source in (("contrastive", eval_a), ("tuned", diag)):
        cell = root / "cells" / variant / "seed-0"
        shutil.copytree(run_dir, cell, ignore=shutil.ignore_patterns("diagnostics"))
        shutil.copytree(source, cell / "diagnostics" / diag.name)
        (cell / "DONE").write_text(json.dumps({"variant": variant, "seed": 0}))
        parts.append(_cell_results(source, variant, 0))
    for variant, frame in (("base", parts[0]), ("contrastive", parts[1]), ("tuned", parts[2])):
        v, lo, hi, n = _overall(frame)
        figures.append((variant, "recall@1", "all", "all", v, lo, hi, n))
    base_v = figures[1][4]
    v = figures[2][4]
    comparison.append(("tuned", "contrastive", "recall@1", "all", "all", v, base_v, v - base_v,
                       v - base_v - 0.01, v - base_v + 0.01, 0.5, 0.5, False))  # fmt: skip
    pl.concat(parts).write_parquet(root / "summary.parquet")
    fig_cols = ["variant", "figure", "lang", "domain", "value", "ci_low", "ci_high", "n"]
    pl.DataFrame(figures, schema=fig_cols, orient="row").write_parquet(root / "figures.parquet")
    cmp_cols = ["variant", "baseline", "figure", "lang", "domain", "value", "value_baseline",
                "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "significant"]  # fmt: skip
    pl.DataFrame(comparison, schema=cmp_cols, orient="row").write_parquet(
        root / "comparison.parquet"
    )
    return root
