"""Rich tables for the terminal; they render what the engine computed and compute nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl


def corpus_tables(console: Any, info: dict[str, Any]) -> None:
    """Print `Corpus.describe()` as tables and its warnings, or the problems that stop a load.

    Names from the corpus (its path, languages, domains) are printed as text, never as markup.
    """
    from rich.markup import escape
    from rich.table import Table

    source = escape(str(info["source"]))
    if "n_rows" not in info:  # it did not load: the problems are all there is to show
        console.print(f"[bold red]{len(info['problems'])} problem(s)[/] in {source}:")
        for line in info["problems"]:
            console.print(f"  - {line}", markup=False, highlight=False, soft_wrap=True)
        return
    layout = f" ({escape(info['layout'])})" if info.get("layout") not in (None, "file") else ""
    console.print(
        f"[bold]{source}[/]{layout}: {info['n_rows']:,} rows, {info['n_ids']:,} ids, "
        f"{len(info['langs'])} languages, {len(info['domains'])} domains"
    )
    table = Table(title="sentences per language x domain")
    table.add_column("lang")
    for domain in info["domains"]:
        table.add_column(escape(domain), justify="right")
    table.add_column("total", justify="right")
    for lang in info["langs"]:
        row = info["counts"].get(lang, {})
        counts = [row.get(d, 0) for d in info["domains"]]
        table.add_row(escape(lang), *(f"{c:,}" for c in counts), f"{sum(counts):,}")
    console.print(table)
    ids = info.get("split_ids", {})
    rows = info.get("split_rows", {})
    splits = ", ".join(f"{k} {ids[k]:,} ids / {rows.get(k, 0):,} rows" for k in ids)
    console.print(f"splits: {splits}")
    alignment = info.get("alignment_completeness")
    if alignment is not None:
        console.print(f"ids present in every language: {alignment:.1%}")
    if info.get("duplicate_text_groups"):
        console.print(
            f"identical texts under different ids: {info['duplicate_text_groups']:,} groups "
            f"({info['duplicate_text_ids']:,} ids; kept in one split, and counted as the gold "
            "by retrieval's --duplicates text)"
        )
    warnings = info.get("problems") or []
    if not warnings:
        console.print("[green]no problems[/]")
        return
    console.print(f"[bold yellow]{len(warnings)} warning(s)[/]:")
    for line in warnings:
        console.print(f"  - {line}", markup=False, highlight=False, soft_wrap=True)


def embed_summary(
    console: Any,
    emb: Any,
    summary: pl.DataFrame,
    *,
    pivot: str,
    layer: int,
    out: Path | None,
) -> None:
    """Per-language x per-domain mean cosine to the pivot translation, plus where things went.

    Names from the user (model, paths, languages, domains) are printed as text, never markup.
    """
    from rich.markup import escape
    from rich.table import Table

    cached = f" ({len(emb.cached_layers)} of {len(emb.layers)} layers from the cache)"
    console.print(
        f"[bold]{emb.n:,}[/] sentences embedded with {escape(str(emb.model))}, "
        f"layers {sorted(emb.layers)}" + cached
    )
    if summary.height:
        domains = sorted(d for d in summary["domain"].unique().to_list() if d != "all") + ["all"]
        title = f"mean cosine to the {escape(pivot)} translation, layer {layer}"
        table = Table(title=title)
        table.add_column("lang")
        for domain in domains:
            table.add_column(escape(domain), justify="right")
        for lang in sorted(summary["lang"].unique().to_list()):
            cells = summary.filter(pl.col("lang") == lang)
            values = dict(zip(cells["domain"].to_list(), cells["cosine"].to_list(), strict=True))
            cols = (f"{values[d]:.3f}" if d in values else "-" for d in domains)
            table.add_row(escape(lang), *cols)
        console.print(table)
    if out is not None:
        console.print(f"embeddings written to {escape(str(out))}")


def eval_summary(console: Any, outcome: Any, *, pivot: str | None) -> None:
    """Headline table of an evaluation, then timings and where the files are."""
    from rich.markup import escape
    from rich.table import Table

    from xrdiag.report.tables import scalar_metrics, summary_frame

    manifest = outcome.manifest
    console.print(
        f"[bold]{escape(str(manifest['checkpoint']))}[/] on {manifest['rows']['n']:,} rows, "
        f"layers {manifest['layers']}: {outcome.results.height:,} result rows"
    )
    summary = summary_frame(outcome.results, pivot)
    if summary.height:
        table = Table(title=f"retrieval and CKA at layer {max(manifest['layers'])} (all domains)")
        for col in summary.columns:
            table.add_column(escape(col), justify="left" if col == "lang" else "right")
        for row in summary.iter_rows():
            values = ("-" if v is None else f"{v:.3f}" for v in row[1:])
            table.add_row(escape(str(row[0])), *values)
        console.print(table)
    for metric, value in scalar_metrics(outcome.results).items():
        console.print(f"{escape(metric)}: {value:.3g}")
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.timings.items())
    console.print(f"time: {steps}")
    console.print(f"written to {escape(str(outcome.out_dir))}/ (results.parquet, manifest.json)")
