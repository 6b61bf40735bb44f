"""The study runner: variants x seeds of training, each final checkpoint evaluated, one aggregate.

Layout of a study directory (the contract the report and dashboard read):
`study.toml` (the resolved config), `eval-corpus.parquet` (the held-out rows every model is
evaluated on), `task.parquet` (a task-accuracy study's pairs, when built from the corpus),
`base/` (eval dir of the untouched model; not in a task study: it has no classifier),
`cells/<variant>/seed-<s>/` (a run dir; `DONE` once trained and evaluated, its diagnostics in
`diagnostics/step-NNNNNN/`), and the aggregate `summary.parquet`, `figures.parquet`,
`comparison.parquet`, `summary.md`.

Cells run one after another; a cell with `DONE` is never rerun, an interrupted one resumes
from its newest checkpoint through the training loop's own resume. Ctrl-C: the loop checkpoints
and returns "interrupted", and the study stops there, to be continued with `--resume`.
`core/study/jobs.py` runs cells in parallel processes and `core/study/plan.py` hands them to a
scheduler; every path runs a cell through `run_cell`, which claims it (one process per cell).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.analyses.registry import default_names
from xrdiag.core.layout import names
from xrdiag.core.layout.atomic import write_atomic, write_text_atomic
from xrdiag.core.layout.dirs import RunDir, StudyDir, done_marker
from xrdiag.core.study.config import StudyConfig, read_study_config, study_to_toml
from xrdiag.errors import UserError

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
    return StudyDir(out).cell(variant, seed).root


def _prepare(cfg: StudyConfig, out: Path, resume: bool) -> None:
    """A fresh study needs an empty --out; a resumed one must have been started with `cfg`."""
    if resume:
        stored = read_study_config(out)
        if study_to_toml(stored) != study_to_toml(cfg):
            raise UserError(
                f"--resume: the config differs from {StudyDir(out).config_file}; resume without "
                "--config/--set (the study's own config) or start a new --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        hint = " (use --resume to continue it)" if StudyDir(out).config_file.is_file() else ""
        raise UserError(f"--out {out}: exists and is not an empty directory{hint}")
    _check_corpus(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(StudyDir(out).config_file, study_to_toml(cfg))


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


def eval_rows(cfg: StudyConfig) -> pl.DataFrame:
    """The rows every model is evaluated on: eval.splits, or every row training never saw
    (eval.held_out), of eval.langs (and the pivot)."""
    from xrdiag.core.corpus import load_corpus

    base = cfg.base_config()
    e, p = cfg.eval, base.protocol
    corpus = load_corpus(base.corpus.path)
    if e.langs:
        corpus = corpus.filter(langs=sorted({*e.langs, p.pivot}))
    if not e.held_out:
        return corpus.filter(splits=e.splits).frame
    trained = (pl.col("split") == "train") & pl.col("domain").is_in(list(p.train_domains))
    return corpus.frame.filter(~trained)


def _eval_corpus(cfg: StudyConfig, out: Path) -> Path:
    """The evaluation rows (`eval_rows`), written once."""
    path = StudyDir(out).eval_corpus
    if not path.is_file():
        write_atomic(path, eval_rows(cfg).write_parquet)
    return path


def task_file(cfg: StudyConfig, out: Path) -> Path:
    """A task study's labelled pairs: train.objective.pairs_file, else `task.parquet`, built
    from the corpus once (eval.task_pairs over eval.langs and the pivot, lexical negatives)."""
    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.task.build import build_task

    base = cfg.base_config()
    if base.objective.pairs_file:
        return Path(base.objective.pairs_file).expanduser().resolve()
    path = StudyDir(out).task
    if not path.is_file():
        e = cfg.eval
        corpus = load_corpus(base.corpus.path)
        langs = sorted({*e.langs, base.protocol.pivot}) if e.langs else None
        frame = build_task(corpus, langs=langs, pairs=e.task_pairs, model=None, seed=e.seed,
                           max_per_domain=e.task_max_per_domain)  # fmt: skip
        write_atomic(path, frame.write_parquet)
    return path.resolve()


def cell_config(cfg: StudyConfig, out: Path, variant: str, seed: int) -> Any:
    """A cell's training config; a task study's trains the classifier on the study's pairs."""
    pairs = str(task_file(cfg, out)) if cfg.eval.outcome == "task" else None
    return cfg.cell_config(variant, seed, pairs_file=pairs)


def _evaluate(
    cfg: StudyConfig, model: str, corpus: Path, out_dir: Path, progress: Progress
) -> None:
    """The default analyses of the registry (retrieval against the pivot both ways, CKA,
    probes, geometry, a PCA projection) on the last layer, seeded, capped. Geometry and the
    projection cost about a second; the dashboard and the report show them for every cell.
    A task study evaluates the task alone: its classifier on every dev and test pair."""
    from xrdiag.core.evaluate import EvalOptions, run_eval

    e = cfg.eval
    if e.outcome == "task":
        pairs = task_file(cfg, corpus.parent)  # the eval corpus lies in the study directory
        opts = EvalOptions(analyses=("task",), task_pairs=str(pairs), seed=e.seed,
                           bootstrap=e.bootstrap, device=e.device)  # fmt: skip
        run_eval(model, str(corpus), out_dir, opts, progress=progress)
        return
    opts = EvalOptions(
        analyses=default_names(),
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
        frozen_prefix=_frozen_prefix(cfg),
    )
    run_eval(model, str(corpus), out_dir, opts, progress=progress)


def _frozen_prefix(cfg: StudyConfig) -> int:
    """The blocks the base and every cell share bit for bit (computed once per sentence)."""
    m = cfg.base_config().model
    return m.freeze_layers if m.reuse_frozen_prefix else 0


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
    """Train (or resume) and evaluate one cell; "done", "skipped", "interrupted" or "nonfinite".

    The cell is claimed for the whole of it (core/study/claim.py): a cell that another live
    process runs is refused with a UserError naming that process.
    """
    from xrdiag.core.study.claim import CellClaim

    root = cell_dir(out, variant, seed)
    if done_marker(root) is not None:
        return "skipped"
    with CellClaim(root, f"{variant}/seed-{seed}"):
        if done_marker(root) is not None:  # finished by its holder while we waited to claim
            return "skipped"
        return _run_claimed_cell(cfg, out, variant, seed, progress, echo)


def _run_claimed_cell(
    cfg: StudyConfig,
    out: Path,
    variant: str,
    seed: int,
    progress: Progress,
    echo: Callable[[str], None],
) -> str:
    from xrdiag.core.training.loop import train

    root = cell_dir(out, variant, seed)
    started = time.perf_counter()
    tcfg = cell_config(cfg, out, variant, seed)
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
            write_text_atomic(root / names.DONE, json.dumps(marker) + "\n")
            return "nonfinite"
        step, ckpt = result.step, result.checkpoint
    diag = run.diagnostics(names.step_name(step)).root
    study = StudyDir(out)
    _evaluate(cfg, str(ckpt), study.eval_corpus, diag, _prefixed(progress, f"{label} eval"))
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
    write_text_atomic(root / names.DONE, json.dumps(marker) + "\n")
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
    done = sum(done_marker(cell_dir(out, v, s)) is not None for v, s in cells)
    try:
        prepare_shared(cfg, out, report, say)
        report("cells", done, len(cells))
        for variant, seed in cells:
            if done_marker(cell_dir(out, variant, seed)) is not None:
                continue
            say(f"cell {variant} seed {seed}")
            status = run_cell(cfg, out, variant, seed, report, say)
            if status == "interrupted":
                return _stopped(out, done, len(cells), started)
            done += 1
            report("cells", done, len(cells))
    except KeyboardInterrupt:
        return _stopped(out, done, len(cells), started)
    from xrdiag.core.study.aggregate import aggregate_study

    files = aggregate_study(out, cfg)
    return StudyOutcome("finished", out, done, len(cells), files, time.perf_counter() - started)


def prepare_shared(
    cfg: StudyConfig, out: Path, progress: Progress, echo: Callable[[str], None]
) -> None:
    """What every cell shares, done once before any cell: the eval rows, then the untouched
    model's evaluation into `base/` (a task study has none: its pairs are built instead).
    The sequential study, `study --jobs`, `study plan` and `study collect` call it."""
    corpus = _eval_corpus(cfg, out)
    base = StudyDir(out).base
    if cfg.eval.outcome == "task":
        task_file(cfg, out)  # built before the first cell, once
    elif not base.manifest.is_file():  # written last by run_eval
        echo("evaluating the base model")
        _evaluate(
            cfg, cfg.base_config().model.name, corpus, base.root, _prefixed(progress, "base eval")
        )


def _stopped(out: Path, done: int, total: int, started: float) -> StudyOutcome:
    return StudyOutcome("interrupted", out, done, total, {}, time.perf_counter() - started)
