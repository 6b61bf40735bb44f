"""The study's answer table and summary.md: views of figures.parquet and comparison.parquet.

Every number comes from the frames the study wrote (`analyses/study_figures.py` computes them);
this module picks and formats, for the terminal (`xrdiag study`/`demo`) and for summary.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from xrdiag.analyses.study_figures import ALL, Protocol


def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def figure_value(
    figures: pl.DataFrame, variant: str, figure: str, lang: str = ALL, domain: str | None = ALL
) -> dict[str, object] | None:
    """One figure's row as a dict (domain None: any domain, for the worst domain)."""
    cond = (pl.col("variant") == variant) & (pl.col("figure") == figure) & (pl.col("lang") == lang)
    if domain is not None:
        cond &= pl.col("domain") == domain
    hit = figures.filter(cond)
    return hit.row(0, named=True) if hit.height else None


TABLE_COLUMNS: Sequence[tuple[str, str, str, str | None]] = (
    ("R@1", "recall@1", ALL, ALL),
    ("worst domain", "worst_domain_recall@1", ALL, None),
    ("domain gap", "domain_gap", ALL, ALL),
    ("lang gap", "lang_gap", ALL, ALL),
    ("spread", "domain_spread", ALL, ALL),
    # The four quadrants of the zero-shot protocol: seen/unseen language x domain.
    ("seenL/seenD", "quadrant_recall@1", "seen", "seen"),
    ("seenL/unseenD", "quadrant_recall@1", "seen", "unseen"),
    ("unseenL/seenD", "quadrant_recall@1", "unseen", "seen"),
    ("unseenL/unseenD", "quadrant_recall@1", "unseen", "unseen"),
    ("lang probe", "lang_probe_acc", ALL, ALL),
    ("domain probe", "domain_probe_acc", ALL, ALL),
    ("CKA", "cross_lang_cka", ALL, ALL),
)


# A task-accuracy study's columns: overall, the pairs training saw and the zero-shot ones, the
# same-language and the generalized cross-language pairs, then the domain figures.
TASK_COLUMNS: Sequence[tuple[str, str, str, str | None]] = (
    ("acc", "accuracy", ALL, ALL),
    ("seen pairs", "accuracy", "seen", ALL),
    ("zero-shot pairs", "accuracy", "unseen", ALL),
    ("mono", "accuracy", "mono", ALL),
    ("cross", "accuracy", "cross", ALL),
    ("lang gap", "lang_gap", ALL, ALL),
    ("worst domain", "worst_domain_accuracy", ALL, None),
    ("spread", "domain_spread", ALL, ALL),
)


def is_task(figures: pl.DataFrame) -> bool:
    """Whether figures are a task-accuracy study's."""
    return bool(figures.height) and bool((figures["figure"] == "accuracy").any())


def answer_table(figures: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per variant) of the answer table; numbers straight from figures."""
    columns = TASK_COLUMNS if is_task(figures) else TABLE_COLUMNS
    first = columns[0][0]
    header = ["variant"]
    for label, *_ in columns:
        header += [label, f"{first} 95% CI", "n", "pool"] if label == first else [label]
    rows = []
    for variant in figures["variant"].unique(maintain_order=True).to_list():
        row = [variant]
        for label, figure, lang, domain in columns:
            hit = figure_value(figures, variant, figure, lang, domain)
            text = "-" if hit is None else _fmt(hit["value"])
            if hit is not None and figure.startswith("worst"):
                text += f" ({hit['domain']})"
            row.append(text)
            if label == first:
                ci = "-" if hit is None else f"{_fmt(hit['ci_low'], 2)}-{_fmt(hit['ci_high'], 2)}"
                row += [ci, "-" if hit is None else _fmt(hit.get("n")),
                        "-" if hit is None else _fmt(hit.get("pool"))]  # fmt: skip
        rows.append(row)
    return header, rows


def verdict(row: dict[str, object], alpha: float = 0.05) -> str:
    """The sentence a comparison allows: a difference with its interval, or the largest
    difference it could have missed (its minimum detectable effect), never "no difference"."""
    delta, low, high = row["delta"], row["ci_low"], row["ci_high"]
    what = f"{row['figure']} ({row['lang']}, {row['domain']})"
    if not isinstance(delta, float) or not np.isfinite(delta):
        return f"{what}: no test ({row.get('note') or 'undefined'})"
    interval = f"95% CI [{_fmt(low)}, {_fmt(high)}]"
    if row.get("significant"):
        word = "higher" if delta > 0 else "lower"
        return (f"{row['variant']} is {word} than {row['baseline']} on {what} by "
                f"{abs(delta):.3f} ({interval}, Holm p {_fmt(row['p_adjusted'], 3)})")  # fmt: skip
    mde = row.get("mde")
    bound = (f"no difference larger than {mde:.3f} (the minimum detectable effect at 80% power) "
             "detected" if isinstance(mde, float) and np.isfinite(mde)
             else "no difference detected (no minimum detectable effect: old study)")  # fmt: skip
    # The interval is per comparison, the verdict Holm-adjusted over the family: the Holm p says
    # why an interval that just excludes zero is not a finding.
    holm = row.get("p_adjusted")
    if isinstance(holm, float) and np.isfinite(holm):
        interval += f", Holm p {_fmt(holm, 3)}"
    return (
        f"{row['variant']} vs {row['baseline']} on {what}: {bound}; delta {delta:+.3f} ({interval})"
    )


def _table(rows: pl.DataFrame, alpha: float) -> list[str]:
    head = ["variant", "vs", "figure", "lang", "domain", "delta", "95% CI", "p", "p (Holm)",
            "MDE", "n", "pool", "verdict"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows.iter_rows(named=True):
        sentence = (
            "significant"
            if r.get("significant")
            else (f"none > {_fmt(r.get('mde'))}" if r.get("mde") is not None else "not significant")
        )
        out.append(
            f"| {r['variant']} | {r['baseline']} | {r['figure']} | {r['lang']} | {r['domain']} | "
            f"{r['delta']:+.3f} | [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | "
            f"{_fmt(r['p_value'], 3)} | {_fmt(r.get('p_adjusted'), 3)} | {_fmt(r.get('mde'))} | "
            f"{_fmt(r.get('n'))} | {_fmt(r.get('pool'))} | {sentence} |"
        )
    return out


STATISTICS = (
    "Statistics: every interval, p-value and minimum detectable effect (MDE) comes from a "
    "two-way test over seeds and sentence ids (the generalized t of Tsui & Weerahandi 1989 on a "
    "crossed seeds x ids variance, calibrated by simulation: false positives 0.03-0.06 at alpha "
    "0.05 with 3 and 5 seeds), because all cells of one seed come from one model and every "
    "language pair queries the same sentences (MultiBERTs, Sellam et al. 2022). The MDE is the "
    "smallest true difference the test finds with 80% power; a difference below it can hide "
    "under 'not significant'. Holm (1979) within each family: the primary contrasts, the "
    "exploratory ones, the training effect."
)


def summary_markdown(
    figures: pl.DataFrame,
    comparison: pl.DataFrame,
    protocol: Protocol,
    *,
    baseline: str,
    alpha: float = 0.05,
    primary: tuple[str, str, str] | None = None,
    seeds: int | None = None,
) -> str:
    """summary.md: the answer table, the training effect, the primary question's answer with
    its MDE, the exploratory comparisons, and how the statistics were done."""
    lines = ["# Study summary", ""]
    if protocol.is_task:
        trained = ", ".join(f"{a}-{b}" for a, b in protocol.train_pairs)
        lines += [
            f"Task accuracy of a sentence-pair classifier trained on the {trained} pairs, on "
            "every dev and test pair of every language pair at the last layer: `seen` the pairs "
            "training saw, `unseen` the zero-shot ones, `cross` the generalized setting (two "
            "languages in one pair); a sentence's pairs are one cluster; 95% intervals over "
            "seeds and sentence ids; `n` sentence ids.",
            "",
        ]
    else:
        lines += [
            f"Pivot {protocol.pivot}; training saw languages {', '.join(protocol.train_langs)} "
            f"and domains {', '.join(protocol.train_domains)}. recall@1 (cosine) against the "
            "pivot both ways at the last layer, every query ranked among the pair's common pool "
            "(`pool`); 95% intervals over seeds and sentence ids; `n` sentence ids.",
            "",
        ]
    if seeds is not None:
        advice = " (at least 5 are recommended: below 5 the seed-to-seed variance rests on " \
                 "few degrees of freedom and the MDE is large)" if seeds < 5 else ""  # fmt: skip
        lines += [f"Seeds: {seeds}{advice}.", ""]
    if primary is not None:
        question = f"{primary[0]} on {primary[1]} languages x {primary[2]} domains"
        if protocol.is_task:
            question = f"{primary[0]} on the {primary[1]} language pairs, {primary[2]} domains"
        lines += [f"Primary question: {question}, each variant vs {baseline}; everything else "
                  "is exploratory.", ""]  # fmt: skip
    if figures.height:
        header, rows = answer_table(figures)
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    if comparison.height == 0:
        lines += ["", "No comparison: the baseline or the other variants have no finished cells."]
        return "\n".join(lines) + "\n"
    if "role" not in comparison.columns:  # written by xrdiag 0.1
        lines += [
            "",
            "This study was aggregated by an older xrdiag: its tests treated correlated "
            "cells as independent and stated no MDE; re-run it to get calibrated verdicts.",
        ]
        return "\n".join(lines) + "\n"
    for role, title in (("training", f"Did training change anything? {baseline} vs base"),
                        ("primary", "The primary question"),
                        ("exploratory", "Exploratory (overall and quadrants)")):  # fmt: skip
        part = comparison.filter(pl.col("role") == role)
        if role == "exploratory":
            groups = pl.col("lang").is_in(["seen", "unseen", "mono", "cross"])
            part = part.filter(pl.col("figure").eq("quadrant_recall@1")
                               | (pl.col("figure").eq("accuracy") & groups)
                               | (pl.col("lang").eq(ALL) & pl.col("domain").eq(ALL)))  # fmt: skip
        if part.height == 0:
            continue
        lines += ["", f"## {title}", ""]
        lines += [f"- {verdict(r, alpha)}" for r in part.iter_rows(named=True)] + [""]
        lines += _table(part, alpha)
    lines += ["", f"All {comparison.height} comparisons are in comparison.parquet.", "",
              STATISTICS]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_study_summary(study_dir: Path) -> Path:
    """summary.md of a study directory, from its config, figures.parquet and comparison.parquet."""
    from xrdiag.core.layout import names
    from xrdiag.core.layout.atomic import write_text_atomic
    from xrdiag.core.layout.dirs import StudyDir
    from xrdiag.core.study.aggregate import study_protocol
    from xrdiag.core.study.config import read_study_config

    study = StudyDir(study_dir)
    cfg = read_study_config(study_dir)
    md = summary_markdown(
        pl.read_parquet(study.file(names.FIGURES)),
        pl.read_parquet(study.file(names.COMPARISON)),
        study_protocol(cfg),
        baseline=cfg.baseline,
        alpha=cfg.stats.alpha,
        primary=cfg.stats.primary_key(),
        seeds=len(cfg.seeds),
    )
    path = study.file(names.SUMMARY_MD)
    write_text_atomic(path, md)
    return path
