"""report.md: the headline findings first, then every pivot as a GitHub-flavoured Markdown table.

The findings are read off the pivots (best and worst language, hardest domain, probe accuracy
against chance, a run's progress, a study's significant differences); nothing is recomputed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import polars as pl

from xrdiag.report import run_tables, study_tables, tables

if TYPE_CHECKING:
    from xrdiag.report.bundle import Bundle, Source

MAX_MD_ROWS = 60  # longer tables (a run's steps, a comparison) are cut, pointing to tables/
# Characters that make Markdown of plain text: emphasis, code, links and images (`[`), tables,
# strike-through, and the backslash itself. `(`, `#`, `!` only act after `]` or at a line's
# start, which escaped brackets and our own line starts rule out.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"})
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def md_text(value: Any) -> str:
    """Text from a corpus, a model or a path, as Markdown that shows it and does nothing else.

    A domain, language or model name is the corpus author's: raw, `<img src=x onerror=..>`
    or `[click](javascript:..)` would be live in a renderer that allows HTML or links. HTML
    is escaped as entities (report.html escapes the same strings), Markdown with backslashes,
    newlines become spaces.
    """
    text = " ".join(str(value).splitlines())
    return text.translate(_HTML).translate(_MD_SPECIAL)


def cell(value: Any, digits: int = 3) -> str:
    """A table cell: numbers rounded, missing as `-`, text escaped (`md_text`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return md_text(value)


def md_table(frame: pl.DataFrame, digits: int = 3, max_rows: int = MAX_MD_ROWS) -> str:
    """A frame as a Markdown table (header, separator, one line per row)."""
    cols = frame.columns
    lines = [
        "| " + " | ".join(cell(c) for c in cols) + " |",
        "| " + " | ".join("---" if frame.schema[c] == pl.String else "---:" for c in cols) + " |",
    ]
    for row in frame.head(max_rows).iter_rows():
        lines.append("| " + " | ".join(cell(v, digits) for v in row) + " |")
    text = "\n".join(lines) + "\n"
    if frame.height > max_rows:
        text += f"\n_{frame.height - max_rows} more rows in tables/._\n"
    return text


# --------------------------------------------------------------------------- findings


def _mean_col(frame: pl.DataFrame, col: str) -> float | None:
    return frame[col].mean() if col in frame.columns else None  # type: ignore[return-value]


def result_findings(results: pl.DataFrame, who: str) -> list[str]:
    """Headline lines of one set of results: recall, languages, domains, probes, CKA."""
    out = []
    grid = tables.recall_lang_domain(results)
    if grid.height:
        domains = [c for c in grid.columns if c not in ("lang", tables.ALL)]
        col = tables.ALL if tables.ALL in grid.columns else None
        per_lang = grid.select(
            "lang", (pl.col(col) if col else pl.mean_horizontal(domains)).alias("v")
        )
        per_lang = per_lang.sort("v")
        scope = "all domains pooled" if col else "mean over domains"
        out.append(
            f"{who}: recall@1 ({tables.primary_metric(results)}, {scope}) averages "
            f"{per_lang['v'].mean():.3f}; best query language {per_lang['lang'][-1]} "
            f"({per_lang['v'][-1]:.3f}), worst {per_lang['lang'][0]} ({per_lang['v'][0]:.3f})"
        )
        if domains:
            means = sorted((grid[d].mean(), d) for d in domains)
            out.append(
                f"{who}: hardest domain {means[0][1]} (recall@1 {means[0][0]:.3f}), easiest "
                f"{means[-1][1]} ({means[-1][0]:.3f}); domain gap {means[-1][0] - means[0][0]:.3f}"
            )
    probes = tables.probe_by_layer(results)
    if probes.height:
        last = probes.row(-1, named=True)
        parts = []
        for metric in tables.PROBE_METRICS:
            if metric in last:
                chance = results.filter(pl.col("metric") == metric.replace("_acc", "_chance"))
                ref = f" (chance {chance['value'][0]:.3f})" if chance.height else ""
                parts.append(f"{metric} {last[metric]:.3f}{ref}")
        out.append(f"{who}: at layer {last['layer']}, " + ", ".join(parts))
    cka = tables.cka_by_layer(results)
    if cka.height:
        last = cka.row(-1, named=True)
        out.append(
            f"{who}: mean cross-language {tables.cka_label(tables.cka_metric(results))} "
            f"{last['mean_cka']:.3f} at layer "
            f"{last['layer']} ({last['pairs']} language pairs)"
        )
    task = tables.task_headline(results)
    if task is not None:
        parts = [f"{name} {value:.3f} (n={n})" for name, key in
                 (("monolingual", "accuracy_mono"), ("cross-lingual", "accuracy_cross"))
                 if key in task for value, n in [task[key]]]  # fmt: skip
        if "gap" in task:
            cell, gap, n = task["gap"]
            parts.append(f"largest transfer gap {cell} {gap:+.3f} (n={n})")
        out.append(f"{who}: task accuracy " + ", ".join(parts))
    return out


def findings(src: Source) -> list[str]:
    """Headline lines of one source, by kind."""
    out: list[str] = []
    if src.kind == "run":
        out.append(f"{src.label}: run {src.status}")
        steps = run_tables.step_table(src.events)
        if steps.height and "loss" in steps.columns:
            out.append(
                f"{src.label}: loss {steps['loss'][0]:.4f} at step {steps['step'][0]} -> "
                f"{steps['loss'][-1]:.4f} at step {steps['step'][-1]}"
            )
        evals = run_tables.eval_table(src.events)
        if evals.height and "recall@1_mean" in evals.columns:
            out.append(
                f"{src.label}: dev recall@1 {evals['recall@1_mean'][0]:.3f} at step "
                f"{evals['step'][0]} -> {evals['recall@1_mean'][-1]:.3f} at step "
                f"{evals['step'][-1]}"
            )
    if src.kind == "study":
        out.append(f"{src.label}: study, {src.status}")
        out += _study_findings(src)
    head = src.headline_results()
    if head.height:
        who = src.label if src.kind != "study" else f"{src.label} (base model)"
        if src.kind == "run":
            who = f"{src.label}@{head['checkpoint'][0]}"
        out += result_findings(head, who)
    return out


def _study_findings(src: Source) -> list[str]:
    """A study's verdicts: the primary question's per variant, each with its MDE; counts."""
    from xrdiag.report.study_summary import verdict

    out = []
    cmp = src.comparison
    if cmp is not None and cmp.height:
        roles = cmp["role"] if "role" in cmp.columns else pl.Series([""] * cmp.height)
        for role in ("training", "primary"):
            for row in cmp.filter(roles == role).iter_rows(named=True):
                out.append(f"{src.label}: {verdict(row)}")
        sig = cmp.filter(pl.col("significant") & (roles != "training"))
        out.append(
            f"{src.label}: {sig.height} of {cmp.filter(roles != 'training').height} "
            "variant-vs-baseline figures differ significantly (Holm within primary and "
            "exploratory families)"
        )
        if "role" not in cmp.columns:  # aggregated by xrdiag 0.1: list what it found
            for row in sig.sort("p_adjusted").head(8).iter_rows(named=True):
                out.append(
                    f"{src.label}: {row['variant']} vs {row['baseline']}, {row['figure']} "
                    f"({row['lang']}/{row['domain']}): {row['delta']:+.4f} "
                    f"[{cell(row['ci_low'], 4)}, {cell(row['ci_high'], 4)}], "
                    f"p_adj {row['p_adjusted']:.3g} (old study: uncalibrated)"
                )
    if src.figures is not None and src.figures.height:
        overall = study_tables.headline_variants(src.figures)
        for metric in ("recall@1", "accuracy"):
            if metric in overall.columns:
                best = overall.sort(metric, descending=True, nulls_last=True).row(0, named=True)
                out.append(
                    f"{src.label}: highest overall {metric}: {best['variant']} ({best[metric]:.3f})"
                )
    return out


def comparison_summary(comparison: pl.DataFrame) -> pl.DataFrame:
    """Per compared label and metric: cells, cells over the threshold, significant, mean delta."""
    return (
        comparison.group_by("a", "b", "analysis", "metric", maintain_order=True)
        .agg(
            pl.len().alias("cells"),
            pl.col("exceeds").sum().alias("exceeding"),
            pl.col("significant").sum().alias("significant"),
            pl.col("delta").mean().alias("mean_delta"),
            pl.col("delta").min().alias("min_delta"),
            pl.col("delta").max().alias("max_delta"),
        )
        .sort("b", "analysis", "metric", maintain_order=True)
    )


def top_changes(comparison: pl.DataFrame, n: int = 25) -> pl.DataFrame:
    """The cells with the largest |delta|."""
    cols = ["b", "analysis", "metric", "layer", "src_lang", "tgt_lang", "domain",
            "value_a", "value_b", "delta", "significant"]  # fmt: skip
    return (
        comparison.filter(pl.col("delta").is_not_null())
        .sort(pl.col("delta").abs(), descending=True)
        .head(n)
        .select(cols)
    )


# --------------------------------------------------------------------------- document

TITLES = {
    "recall_lang_domain": "Recall@1 by query language x domain (mean over target languages)",
    "retrieval_sizes": "Queries (n) and candidates per query (pool) behind the recall table",
    "cka_lang_lang_layer": "CKA (debiased where computed), language x language, layer ",
    "probe_by_layer": "Probe accuracy by layer",
    "cka_by_layer": "Mean cross-language CKA (debiased where computed) by layer",
    "training_steps": "Training steps",
    "training_evals": "Training evaluations (dev subset)",
    "variants": "Study variants: figures with CI and vs the baseline",
}


def title_of(name: str) -> str:
    """Human title of a pivot's file stem (`cka_lang_lang_layer2__base`), Markdown-escaped."""
    base, _, group = name.partition("__")
    group = md_text(group)
    if base.startswith("analysis_"):
        text = tables.analysis_title(base.removeprefix("analysis_")) + " (top layer)"
        return text + (f" ({group})" if group else "")
    for key, title in TITLES.items():
        if base.startswith(key):
            text = title + base[len(key) :] if key.endswith("layer") else title
            return text + (f" ({group})" if group else "")
    return md_text(name)


def render_markdown(bundle: Bundle) -> str:
    """The whole report.md."""
    parts = ["# xrdiag report\n"]
    parts.append(
        "Inputs: "
        + ", ".join(f"{md_text(s.label)} ({s.kind}, {md_text(s.path)})" for s in bundle.sources)
        + "\n"
    )
    for note in bundle.notes:
        parts.append(f"> **Note:** {md_text(note)}\n")
    parts.append("## Headline findings\n")
    lines = [f"- {md_text(line)}" for src in bundle.sources for line in findings(src)]
    if bundle.comparison is not None and bundle.comparison.height:
        c = bundle.comparison
        lines.append(
            f"- comparison: {c.height} cells, {int(c['exceeds'].sum())} beyond the threshold, "
            f"{int(c['significant'].sum())} with non-overlapping bootstrap intervals"
        )
    parts.append("\n".join(lines or ["- no results yet"]) + "\n")
    if bundle.comparison is not None:
        parts.append("## Comparison (delta = B - A)\n")
        parts.append(md_table(comparison_summary(bundle.comparison), 4))
        parts.append("\n### Largest changes\n")
        parts.append(md_table(top_changes(bundle.comparison), 4))
    for src in bundle.sources:
        parts.append(f"## {md_text(src.label)} ({src.kind})\n")
        if src.status:
            parts.append(f"Status: {md_text(src.status)}\n")
        for name, frame in bundle.pivots.get(src.label, {}).items():
            parts.append(f"### {title_of(name)}\n")
            parts.append(md_table(frame))
    return "\n".join(parts)
