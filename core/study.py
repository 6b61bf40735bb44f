"""The study runner: variants x seeds of training, each final checkpoint evaluated, one aggregate.

Layout of a study directory (the contract the report and dashboard read):
`study.toml` (the resolved config), `eval-corpus.parquet` (the held-out rows every model is
evaluated on), `base/` (eval dir of the untouched model), `cells/<variant>/seed-<s>/` (a run dir;
`DONE` once trained and evaluated, its diagnostics in `diagnostics/step-NNNNNN/`), and the
aggregate `summary.parquet`, `figures.parquet`, `comparison.parquet`, `summary.md`.

Cells run one after another; a cell with `DONE` is never rerun, an interrupted one resumes
from its newest checkpoint through the training loop's own resume. Ctrl-C: the loop checkpoints
and returns "interrupted", and the study stops there, to be continued with `--resume`.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.core.runs import RunDir, step_name, write_text_atomic
from xrdiag.core.study_config import StudyConfig, study_from_dict, study_to_toml
from xrdiag.errors import UserError

STUDY_FILE = "study.toml"
DONE = "DONE"
EVAL_CORPUS = "eval-corpus.parquet"
# geometry and the PCA projection cost about a second on a capped last layer; the dashboard
# and the report show them for every cell.
EVAL_ANALYSES = ("retrieval", "cka", "probe", "geometry", "projection")
SUMMARY, FIGURES, COMPARISON, SUMMARY_MD = (
    "summary.parquet",
    "figures.parquet",
    "comparison.parquet",
    "summary.md",
)

# (what, done, total): "cells" counts finished cells; a cell's own phases report as its label.
Progress = Callable[[str, int, int | None], None]


@dataclass
class StudyOutcome:
    """How a study call ended (`finished` or `interrupted`) and what it wrote."""

    status: str
    out_dir: Path
    done: int
    total: int
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def cell_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "cells" / variant / f"seed-{seed}"


def read_study_config(out: Path) -> StudyConfig:
    """The config a study directory was started with."""
    path = out / STUDY_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--out {out}: no {STUDY_FILE}; expected a study directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML ({exc})") from None
    return study_from_dict(data, str(path))


def _prepare(cfg: StudyConfig, out: Path, resume: bool) -> None:
    """A fresh study needs an empty --out; a resumed one must have been started with `cfg`."""
    if resume:
        stored = read_study_config(out)
        if study_to_toml(stored) != study_to_toml(cfg):
            raise UserError(
                f"--resume: the config differs from {out / STUDY_FILE}; resume without "
                "--config/--set (the study's own config) or start a new --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        hint = " (use --resume to continue it)" if (out / STUDY_FILE).is_file() else ""
        raise UserError(f"--out {out}: exists and is not an empty directory{hint}")
    _check_corpus(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / STUDY_FILE, study_to_toml(cfg))


def _check_corpus(cfg: StudyConfig) -> None:
    """Mistakes that would only surface in the first cell, minutes in, are raised up front."""
    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.training.config import validate_against_corpus
    from xrdiag.core.training.dev_eval import PROBE_FOLDS

    base = cfg.base_config()
    validate_against_corpus(base, load_corpus(base.corpus.path), f"{cfg.source} [train]")
    if base.protocol.dev_max_per_domain < PROBE_FOLDS:
        raise UserError(
            f"{cfg.source}: train.protocol.dev_max_per_domain: "
            f"{base.protocol.dev_max_per_domain} is too few for the {PROBE_FOLDS}-fold dev "
            f"probes; expected at least {PROBE_FOLDS}"
        )


def _eval_corpus(cfg: StudyConfig, out: Path) -> Path:
    """The held-out rows (eval.splits of every language and domain), written once."""
    path = out / EVAL_CORPUS
    if not path.is_file():
        from xrdiag.core.corpus import load_corpus

        base = cfg.base_config()
        frame = load_corpus(base.corpus.path).filter(splits=cfg.eval.splits).frame
        tmp = path.with_name(f".{path.name}.tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)
    return path


def _evaluate(
    cfg: StudyConfig, model: str, corpus: Path, out_dir: Path, progress: Progress
) -> None:
    """Retrieval against the pivot both ways, CKA, probes, geometry and a PCA projection on the
    last layer, seeded, capped."""
    from xrdiag.core.evaluate import EvalOptions, run_eval

    e = cfg.eval
    opts = EvalOptions(
        analyses=EVAL_ANALYSES,
        layers="last",
        pivot=cfg.base_config().protocol.pivot,
        max_per_domain=e.max_per_domain,
        seed=e.seed,
        bootstrap=e.bootstrap,
        ks=(1,),
        bias_queries_per_lang=50,
        probe_max_rows=e.probe_max_rows,
        max_length=e.max_length,
        device=e.device,
    )
    run_eval(model, str(corpus), out_dir, opts, progress=progress)


def _done_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / DONE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _prefixed(progress: Progress, label: str) -> Progress:
    return lambda name, done, total: progress(f"{label} {name}", done, total)


@contextmanager
def _watch_steps(run: RunDir, max_steps: int, progress: Progress, label: str) -> Iterator[None]:
    """Report a cell's training steps from its events.jsonl while it trains (a polling thread)."""
    from xrdiag.core.events import EventTail

    stop = threading.Event()

    def poll() -> None:
        tail = EventTail(run.events_file)
        while True:
            for event in tail.poll():
                if event.get("kind") in ("step", "resume") and "step" in event:
                    progress(label, int(event["step"]), max_steps)
            if stop.wait(0.5):
                break

    progress(label, 0, max_steps)
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)


def run_cell(
    cfg: StudyConfig,
    out: Path,
    variant: str,
    seed: int,
    progress: Progress,
    echo: Callable[[str], None],
) -> str:
    """Train (or resume) and evaluate one cell; "done", "skipped", "interrupted" or "nonfinite"."""
    from xrdiag.core.training.loop import train

    root = cell_dir(out, variant, seed)
    if _done_marker(root) is not None:
        return "skipped"
    started = time.perf_counter()
    tcfg = cfg.cell_config(variant, seed)
    label = f"{variant}/seed-{seed}"
    run = RunDir(root)
    latest = run.latest_checkpoint() if run.exists() else None
    if latest is not None and latest[0] >= tcfg.optim.max_steps:
        step, ckpt = latest  # trained; the evaluation was interrupted
    else:
        if root.exists() and not run.exists():
            shutil.rmtree(root)  # a start killed before run.toml: nothing to keep
        with _watch_steps(run, tcfg.optim.max_steps, progress, f"{label} train"):
            result = train(tcfg, root, resume=run.exists(), echo=echo)
        if result.status == "interrupted":
            return "interrupted"
        if result.status == "nonfinite" or result.checkpoint is None:
            marker = {"variant": variant, "seed": seed, "status": "nonfinite", "step": result.step}
            write_text_atomic(root / DONE, json.dumps(marker) + "\n")
            return "nonfinite"
        step, ckpt = result.step, result.checkpoint
    diag = root / "diagnostics" / step_name(step)
    _evaluate(cfg, str(ckpt), out / EVAL_CORPUS, diag, _prefixed(progress, f"{label} eval"))
    kept = cfg.keep_checkpoints
    if not kept:  # diagnostics written: the weights are only needed to evaluate again
        shutil.rmtree(run.checkpoints_dir, ignore_errors=True)
    marker = {
        "variant": variant,
        "seed": seed,
        "status": "done",
        "step": step,
        "checkpoint": str(ckpt.relative_to(out)),
        "diagnostics": str(diag.relative_to(out)),
        "checkpoint_kept": kept,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomic(root / DONE, json.dumps(marker) + "\n")
    return "done"


def run_study(
    cfg: StudyConfig,
    out: Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
) -> StudyOutcome:
    """Evaluate the base model, train and evaluate every unfinished cell, then aggregate."""
    report: Progress = progress or (lambda _n, _d, _t: None)
    say = echo or (lambda _m: None)
    out = Path(out)
    started = time.perf_counter()
    _prepare(cfg, out, resume)
    cells = cfg.cells()
    done = sum(_done_marker(cell_dir(out, v, s)) is not None for v, s in cells)
    try:
        corpus = _eval_corpus(cfg, out)
        if not (out / "base" / "manifest.json").is_file():  # written last by run_eval
            say("evaluating the base model")
            _evaluate(
                cfg,
                cfg.base_config().model.name,
                corpus,
                out / "base",
                _prefixed(report, "base eval"),
            )
        report("cells", done, len(cells))
        for variant, seed in cells:
            if _done_marker(cell_dir(out, variant, seed)) is not None:
                continue
            say(f"cell {variant} seed {seed}")
            status = run_cell(cfg, out, variant, seed, report, say)
            if status == "interrupted":
                return _stopped(out, done, len(cells), started)
            done += 1
            report("cells", done, len(cells))
    except KeyboardInterrupt:
        return _stopped(out, done, len(cells), started)
    files = aggregate_study(out, cfg)
    return StudyOutcome("finished", out, done, len(cells), files, time.perf_counter() - started)


def _stopped(out: Path, done: int, total: int, started: float) -> StudyOutcome:
    return StudyOutcome("interrupted", out, done, total, {}, time.perf_counter() - started)


def summary_frame(out: Path, cfg: StudyConfig) -> pl.DataFrame:
    """Every finished cell's results (and the base model's), with `variant` and `seed`."""
    frames = []
    base = out / "base" / "results.parquet"
    if base.is_file():
        frames.append(_tagged(pl.read_parquet(base), "base", None, "base"))
    for variant, seed in cfg.cells():
        marker = _done_marker(cell_dir(out, variant, seed))
        if marker is None or marker.get("status") != "done":
            continue
        results = out / marker["diagnostics"] / "results.parquet"
        frames.append(_tagged(pl.read_parquet(results), variant, seed, f"{variant}/seed-{seed}"))
    return pl.concat(frames) if frames else pl.DataFrame()


def _tagged(frame: pl.DataFrame, variant: str, seed: int | None, checkpoint: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(checkpoint).alias("checkpoint"),
        pl.lit(variant, dtype=pl.String).alias("variant"),
        pl.lit(seed, dtype=pl.Int64).alias("seed"),
    )


def aggregate_study(out: Path, cfg: StudyConfig | None = None) -> dict[str, Path]:
    """Write summary.parquet, figures.parquet, comparison.parquet and summary.md."""
    from xrdiag.core.study_figures import (
        Protocol,
        compare_variants,
        robustness_figures,
        summary_markdown,
    )

    cfg = cfg or read_study_config(out)
    summary = summary_frame(out, cfg)
    base = cfg.base_config()
    protocol = Protocol(
        pivot=base.protocol.pivot,
        train_langs=tuple(base.protocol.train_langs),
        train_domains=tuple(base.protocol.train_domains),
    )
    st = cfg.stats
    figures = robustness_figures(summary, protocol, n_resamples=st.bootstrap, seed=st.seed)
    comparison = compare_variants(
        summary,
        protocol,
        baseline=cfg.baseline,
        draws=st.draws,
        n_resamples=st.bootstrap,
        seed=st.seed,
        alpha=st.alpha,
    )
    md = summary_markdown(figures, comparison, protocol, baseline=cfg.baseline, alpha=st.alpha)
    files = {}
    for name, frame in ((SUMMARY, summary), (FIGURES, figures), (COMPARISON, comparison)):
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)
        files[name] = path
    write_text_atomic(out / SUMMARY_MD, md)
    files[SUMMARY_MD] = out / SUMMARY_MD
    return files
