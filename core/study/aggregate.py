"""A study's aggregate frames from its finished cells: summary, figures, comparison.

`summary.parquet` holds every finished cell's results (and the base model's) with `variant` and
`seed`; the figures and the comparison with the baseline are computed by
`analyses/study_figures.py`; `summary.md` is a view, written by `report/study_summary.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from xrdiag.analyses.study_figures import Protocol, outcomes_frame, task_outcomes_frame
from xrdiag.core.layout import names
from xrdiag.core.layout.atomic import write_atomic
from xrdiag.core.layout.dirs import EvalDir, StudyDir, done_marker
from xrdiag.core.study.config import StudyConfig, read_study_config
from xrdiag.errors import UserError


def finished_cells(out: Path, cfg: StudyConfig) -> Iterator[tuple[str, int, EvalDir]]:
    """(variant, seed, its final evaluation) of each cell whose DONE marker says `done`, in the
    config's order: interrupted or non-finite cells stay out of every aggregate."""
    study = StudyDir(out)
    for variant, seed in cfg.cells():
        marker = done_marker(study.cell(variant, seed).root)
        if marker is not None and marker.get("status") == "done":
            yield variant, seed, EvalDir(out / marker["diagnostics"])


def summary_frame(out: Path, cfg: StudyConfig) -> pl.DataFrame:
    """Every finished cell's results (and the base model's), with `variant` and `seed`."""
    frames = []
    study = StudyDir(out)
    if study.base.results.is_file():
        frames.append(_tagged(pl.read_parquet(study.base.results), names.BASE, None, names.BASE))
    for variant, seed, ev in finished_cells(out, cfg):
        frames.append(_tagged(pl.read_parquet(ev.results), variant, seed, f"{variant}/seed-{seed}"))
    return pl.concat(frames) if frames else pl.DataFrame()


def _tagged(frame: pl.DataFrame, variant: str, seed: int | None, checkpoint: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(checkpoint).alias("checkpoint"),
        pl.lit(variant, dtype=pl.String).alias("variant"),
        pl.lit(seed, dtype=pl.Int64).alias("seed"),
    )


def study_protocol(cfg: StudyConfig) -> Protocol:
    """What the study's training saw: the pivot, the training languages and domains."""
    base = cfg.base_config()
    if cfg.eval.outcome == "task":  # what the classifier trained on: its language pairs
        from xrdiag.core.task.lang_pairs import parse_patterns

        pairs = tuple(parse_patterns(base.objective.train_lang_pairs, (), "train_lang_pairs"))
        langs = sorted({lang for pair in pairs for lang in pair if lang != "*"})
        return Protocol(pivot=base.protocol.pivot, train_langs=tuple(langs),
                        train_domains=("all",), metric="accuracy", train_pairs=pairs)  # fmt: skip
    return Protocol(
        pivot=base.protocol.pivot,
        train_langs=tuple(base.protocol.train_langs),
        train_domains=tuple(base.protocol.train_domains),
    )


def outcome_frame(out: Path, cfg: StudyConfig) -> pl.DataFrame:
    """Every finished cell's per-query outcomes (and the base model's), from queries.parquet.

    A cell evaluated by xrdiag 0.1 wrote none: its outcomes cannot be resampled, and the study
    is refused with the command that re-evaluates it.
    """
    study = StudyDir(out)
    frames = []
    if cfg.eval.outcome == "task":
        return _task_outcomes(out, cfg)
    if study.base.queries.is_file():
        frames.append(outcomes_frame(pl.read_parquet(study.base.queries), names.BASE, None))
    for variant, seed, ev in finished_cells(out, cfg):
        queries = ev.queries
        if not queries.is_file():
            raise UserError(
                f"{queries.parent}: no {names.QUERIES} (evaluated by an older xrdiag); its "
                "figures.parquet stays as it was; re-run the study in a new --out for "
                "per-query statistics"
            )
        frames.append(outcomes_frame(pl.read_parquet(queries), variant, seed))
    return pl.concat(frames) if frames else pl.DataFrame()


def _task_outcomes(out: Path, cfg: StudyConfig) -> pl.DataFrame:
    """A task study's outcomes: each finished cell's predictions (predictions.parquet)."""
    frames = []
    for variant, seed, ev in finished_cells(out, cfg):
        predictions = ev.predictions
        if not predictions.is_file():
            raise UserError(f"{predictions.parent}: no {names.PREDICTIONS}; expected the task's")
        frames.append(task_outcomes_frame(pl.read_parquet(predictions), variant, seed))
    return pl.concat(frames) if frames else pl.DataFrame()


def aggregate_study(out: Path, cfg: StudyConfig | None = None) -> dict[str, Path]:
    """Write summary.parquet, figures.parquet and comparison.parquet; return their paths."""
    from xrdiag.analyses.study_figures import compare_variants, study_figures

    cfg = cfg or read_study_config(out)
    summary = summary_frame(out, cfg)
    outcomes = outcome_frame(out, cfg)
    protocol = study_protocol(cfg)
    st = cfg.stats
    figures = study_figures(outcomes, summary, protocol, alpha=st.alpha)
    comparison = compare_variants(
        outcomes,
        protocol,
        baseline=cfg.baseline,
        primary=st.primary_key(),
        alpha=st.alpha,
        power=st.power,
    )
    files = {}
    for name, frame in (
        (names.SUMMARY, summary),
        (names.FIGURES, figures),
        (names.COMPARISON, comparison),
    ):
        path = StudyDir(out).file(name)
        write_atomic(path, frame.write_parquet)
        files[name] = path
    return files
