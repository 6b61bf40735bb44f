"""A study's aggregate frames from its finished cells: summary, figures, comparison.

`summary.parquet` holds every finished cell's results (and the base model's) with `variant` and
`seed`; the figures and the comparison with the baseline are computed by
`analyses/study_figures.py`; `summary.md` is a view, written by `report/study_summary.py`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from xrdiag.analyses.study_figures import Protocol
from xrdiag.core.layout import names
from xrdiag.core.layout.atomic import write_atomic
from xrdiag.core.layout.dirs import EvalDir, StudyDir, done_marker
from xrdiag.core.study.config import StudyConfig, read_study_config


def summary_frame(out: Path, cfg: StudyConfig) -> pl.DataFrame:
    """Every finished cell's results (and the base model's), with `variant` and `seed`."""
    frames = []
    study = StudyDir(out)
    if study.base.results.is_file():
        frames.append(_tagged(pl.read_parquet(study.base.results), names.BASE, None, names.BASE))
    for variant, seed in cfg.cells():
        marker = done_marker(study.cell(variant, seed).root)
        if marker is None or marker.get("status") != "done":
            continue
        results = EvalDir(out / marker["diagnostics"]).results
        frames.append(_tagged(pl.read_parquet(results), variant, seed, f"{variant}/seed-{seed}"))
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
    return Protocol(
        pivot=base.protocol.pivot,
        train_langs=tuple(base.protocol.train_langs),
        train_domains=tuple(base.protocol.train_domains),
    )


def aggregate_study(out: Path, cfg: StudyConfig | None = None) -> dict[str, Path]:
    """Write summary.parquet, figures.parquet and comparison.parquet; return their paths."""
    from xrdiag.analyses.study_figures import compare_variants, robustness_figures

    cfg = cfg or read_study_config(out)
    summary = summary_frame(out, cfg)
    protocol = study_protocol(cfg)
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
