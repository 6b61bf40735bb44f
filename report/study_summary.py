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


def answer_table(figures: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per variant) of the answer table; numbers straight from figures."""
    header = ["variant"]
    for label, *_ in TABLE_COLUMNS:
        header += [label, "R@1 95% CI"] if label == "R@1" else [label]
    rows = []
    for variant in figures["variant"].unique(maintain_order=True).to_list():
        row = [variant]
        for _label, figure, lang, domain in TABLE_COLUMNS:
            hit = figure_value(figures, variant, figure, lang, domain)
            text = "-" if hit is None else _fmt(hit["value"])
            if hit is not None and figure.startswith("worst"):
                text += f" ({hit['domain']})"
            row.append(text)
            if figure == "recall@1":
                ci = "-" if hit is None else f"{_fmt(hit['ci_low'], 2)}-{_fmt(hit['ci_high'], 2)}"
                row.append(ci)
        rows.append(row)
    return header, rows


def summary_markdown(
    figures: pl.DataFrame,
    comparison: pl.DataFrame,
    protocol: Protocol,
    *,
    baseline: str,
    alpha: float = 0.05,
) -> str:
    """summary.md: the answer table, the comparison with the baseline, what is significant."""
    lines = [
        "# Study summary",
        "",
        f"Pivot {protocol.pivot}; training saw languages {', '.join(protocol.train_langs)} and "
        f"domains {', '.join(protocol.train_domains)}. recall@1 (cosine) against the pivot both "
        "ways at the last layer; 95% CIs over seeds and queries.",
        "",
    ]
    if figures.height:
        header, rows = answer_table(figures)
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"## Against {baseline} (paired over seed x language pair x domain cells)", ""]
    if comparison.height == 0:
        lines.append("No comparison: the baseline or the other variants have no finished cells.")
        return "\n".join(lines) + "\n"
    head = ["variant", "figure", "lang", "domain", "delta", "95% CI", "p", "p (Holm)", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    main = comparison.filter(
        pl.col("figure").eq("quadrant_recall@1")
        | (pl.col("lang").eq(ALL) & pl.col("domain").eq(ALL))
    )
    for r in main.iter_rows(named=True):
        mark = "significant" if r["significant"] else ""
        lines.append(
            f"| {r['variant']} | {r['figure']} | {r['lang']} | {r['domain']} | "
            f"{r['delta']:+.3f} | [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
            f"{r['p_value']:.3g} | {r['p_adjusted']:.3g} | {mark} |"
        )
    sig = comparison.filter(pl.col("significant"))
    lines.append("")
    if sig.height == 0:
        lines.append(
            f"No difference from {baseline} is significant (Holm-adjusted p < {alpha} over all "
            f"{comparison.height} comparisons in comparison.parquet)."
        )
    else:
        lines.append(
            f"Significant after Holm correction over {comparison.height} comparisons (p < {alpha}):"
        )
        for r in sig.iter_rows(named=True):
            word = "higher" if r["delta"] > 0 else "lower"
            lines.append(
                f"- {r['variant']}: {r['figure']} (lang {r['lang']}, domain {r['domain']}) "
                f"{word} by {abs(r['delta']):.3f} (p_adj {r['p_adjusted']:.3g})"
            )
    lines += [
        "",
        "Cells share sentences across languages and seeds share the evaluation set, so the "
        "cell-level tests treat correlated cells as exchangeable; read small p-values with that "
        "in mind.",
    ]
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
    )
    path = study.file(names.SUMMARY_MD)
    write_text_atomic(path, md)
    return path
