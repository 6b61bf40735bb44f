"""Regenerate the dashboard's committed fixture directories (tests/tui/fixtures/).

Run as `python tests/tui/make_fixtures.py`. Every directory is made by the real engine on the
tiny test encoder: `xrdiag train` runs (finished, interrupted by a real SIGINT), a real
`run_eval` directory, and a study directory laid out per the study contract. Then the files are
made small and reproducible: checkpoint weights are stripped (their COMPLETE markers stay),
absolute paths become relative, and every event time is re-based on a fixed clock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures"
REPO = HERE.parent.parent
FROZEN_T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: every fixture run starts here
STEP_SECONDS = 2.0

BASE_CONFIG = """
[model]
name = "{model}"
max_length = 32
[corpus]
max_per_domain = 20
[protocol]
dev_max_per_domain = 4
[batches]
batch_size = 8
alpha = {alpha}
beta = {beta}
[dann]
enabled = {dann}
hidden = 16
[robust.adversarial]
enabled = {adv}
method = "pgd"
steps = 2
[optim]
max_steps = {steps}
warmup_steps = 2
lr = 0.002
[run]
device = "cpu"
eval_every = 4
checkpoint_every = 6
keep_last = 1
"""


def config_text(model: Path, steps: int, method: str) -> str:
    """A tiny training config: `dann+hybrid`, `pgd` or plain `contrastive`."""
    hybrid = method == "dann+hybrid"
    return BASE_CONFIG.format(
        model=model,
        alpha=0.5 if hybrid else 1.0,
        beta=0.5 if hybrid else 1.0,
        dann=str(hybrid).lower(),
        adv=str(method == "pgd").lower(),
        steps=steps,
    )


def train(config: Path, out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "xrdiag", "train", "--config", str(config), "--out", str(out)],
        check=True,
        cwd=REPO.parent,
    )


def train_interrupted(config: Path, out: Path, after_steps: int = 3) -> None:
    """Start a long run, wait for `after_steps` step events, SIGINT it (it checkpoints, exits)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xrdiag", "train", "--config", str(config), "--out", str(out)],
        cwd=REPO.parent,
    )
    events = out / "events.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if events.is_file() and events.read_text().count('"kind": "step"') >= after_steps:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    if proc.wait(timeout=300) != 0:
        raise SystemExit(f"interrupted run exited {proc.returncode}")


def diagnose(run: Path, model_dir: Path) -> None:
    """Real diagnostics of the newest checkpoint, into RUN/diagnostics/step-N/."""
    from xrdiag.core.evaluate import EvalOptions, run_eval
    from xrdiag.core.layout.dirs import RunDir

    step, ckpt = RunDir(run).checkpoints()[-1]
    out = run / "diagnostics" / ckpt.name
    run_eval(str(ckpt), "default", out, EvalOptions(max_per_domain=10, bootstrap=50, device="cpu"))


def freeze(root: Path, tmp: Path, model_dir: Path) -> None:
    """Relative paths, fixed event times, fixed pids; no checkpoint weights."""
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".toml", ".md"}:
            text = path.read_text(encoding="utf-8")
            text = text.replace(str(model_dir), "tiny-encoder")
            text = re.sub(r'created = "[^"]*"', 'created = "2026-01-01T00:00:00Z"', text)
            text = re.sub(r'git = "[^"]*"', 'git = "fixture"', text)
            text = text.replace(str(tmp) + "/", "").replace(str(tmp), ".")
            path.write_text(text, encoding="utf-8")
    for events in root.rglob("events.jsonl"):
        lines = []
        for line in events.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            event["time"] = FROZEN_T0 + STEP_SECONDS * event.get("step", 0)
            if "pid" in event:
                event["pid"] = 999_999_999  # never a live process
                event["host"] = "fixture-host"
            if "step_time" in event:
                event["step_time"] = STEP_SECONDS
            lines.append(json.dumps(event, ensure_ascii=False))
        events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for ckpt in root.rglob("checkpoints/step-*"):
        for item in ckpt.iterdir():
            if item.name not in {"COMPLETE", "config.json"}:
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    for junk in root.rglob("*.tmp"):
        junk.unlink()


def make_study(study: Path, runs: dict[str, Path], base_eval: Path) -> None:
    """A study directory per the contract, from real runs and their real diagnostics."""
    import polars as pl

    study.mkdir(parents=True)
    (study / "study.toml").write_text(
        '[study]\nbaseline = "contrastive"\nvariants = ["contrastive", "dann+hybrid"]\n'
        "seeds = [0]\n",
        encoding="utf-8",
    )
    shutil.copytree(base_eval, study / "base")
    frames = [
        pl.read_parquet(base_eval / "results.parquet").with_columns(
            checkpoint=pl.lit("base"), variant=pl.lit("base"), seed=pl.lit(None, pl.Int64)
        )
    ]
    for variant, run in runs.items():
        cell = study / "cells" / variant / "seed-0"
        shutil.copytree(run, cell)
        (cell / "DONE").write_text(json.dumps({"variant": variant, "seed": 0}) + "\n")
        diag = sorted((cell / "diagnostics").iterdir())[-1]
        frames.append(
            pl.read_parquet(diag / "results.parquet").with_columns(
                checkpoint=pl.lit(f"{variant}/seed-0"),
                variant=pl.lit(variant),
                seed=pl.lit(0, pl.Int64),
            )
        )
    summary = pl.concat(frames, how="vertical_relaxed")
    summary.write_parquet(study / "summary.parquet")
    recall = summary.filter(
        (pl.col("analysis") == "retrieval") & (pl.col("metric") == "recall@1|cos|none")
    )
    figures = (
        recall.group_by("variant")
        .agg(value=pl.col("value").mean(), n=pl.len())
        .with_columns(
            figure=pl.lit("recall@1"),
            lang=pl.lit("all"),
            domain=pl.lit("all"),
            ci_low=pl.col("value"),
            ci_high=pl.col("value"),
        )
        .select("variant", "figure", "lang", "domain", "value", "ci_low", "ci_high", "n")
        .sort("variant")
    )
    figures.write_parquet(study / "figures.parquet")
    base = figures.filter(pl.col("variant") == "contrastive")["value"][0]
    comparison = figures.filter(pl.col("variant") == "dann+hybrid").select(
        "variant",
        baseline=pl.lit("contrastive"),
        figure="figure",
        lang="lang",
        domain="domain",
        value="value",
        value_baseline=pl.lit(base),
        delta=pl.col("value") - base,
        ci_low=pl.col("value") - base,
        ci_high=pl.col("value") - base,
        p_value=pl.lit(1.0),
        p_adjusted=pl.lit(1.0),
        significant=pl.lit(False),
    )
    comparison.write_parquet(study / "comparison.parquet")
    (study / "summary.md").write_text("# fixture study\n", encoding="utf-8")


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    from conftest import build_tiny_encoder

    from xrdiag.core.evaluate import EvalOptions, run_eval

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.environ["XRDIAG_CACHE_DIR"] = str(tmp / "cache")
        model = build_tiny_encoder(tmp / "tiny-model")
        runs = tmp / "runs"
        runs.mkdir()
        configs = {}
        for method, steps in [("dann+hybrid", 12), ("contrastive", 8), ("pgd", 2000)]:
            configs[method] = tmp / f"{method}.toml"
            configs[method].write_text(config_text(model, steps, method), encoding="utf-8")
        train(configs["dann+hybrid"], runs / "finished-dann")
        train(configs["contrastive"], runs / "baseline")
        train_interrupted(configs["pgd"], runs / "interrupted-pgd")
        for run in ("finished-dann", "baseline"):
            diagnose(runs / run, model)
        # A run that looks alive: the finished one cut after its second eval (no terminal event).
        shutil.copytree(runs / "finished-dann", runs / "running-dann")
        events = runs / "running-dann" / "events.jsonl"
        lines = events.read_text().splitlines()
        cut = [i for i, line in enumerate(lines) if '"kind": "eval"' in line][1]
        events.write_text("\n".join(lines[: cut + 1]) + "\n")
        shutil.rmtree(runs / "running-dann" / "diagnostics")
        shutil.rmtree(runs / "running-dann" / "checkpoints")
        run_eval(
            str(model),
            "default",
            runs / "eval-base",
            EvalOptions(max_per_domain=10, bootstrap=50, device="cpu"),
        )
        make_study(
            runs / "study-demo",
            {"contrastive": runs / "baseline", "dann+hybrid": runs / "finished-dann"},
            runs / "eval-base",
        )
        shutil.rmtree(runs / "baseline")
        freeze(runs, tmp, model)
        if OUT.exists():
            shutil.rmtree(OUT)
        shutil.copytree(runs, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
