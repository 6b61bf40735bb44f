"""`xrdiag task build`: a labelled cross-lingual paraphrase task from a parallel corpus."""

from __future__ import annotations

from pathlib import Path

import click

from xrdiag.cli.console import console, step_progress
from xrdiag.cli.options import columns_option


@click.group()
def task() -> None:
    """Sentence-pair tasks: build one from a parallel corpus (evaluate with eval --task)."""


@task.command("build")
@click.option("--corpus", "corpus_path", default="default", show_default=True)
@columns_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--langs", default=None, help="Comma-separated languages (default: all).")
@click.option(
    "--pairs",
    "pair_patterns",
    default=None,
    help="Comma list of lang1-lang2 patterns, e.g. en-en,en-*,*-* (default: every ordered pair).",
)
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="Encoder whose nearest non-translations are the hard negatives; 'none': lexical.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--neighbour-share",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of negatives that are hard neighbours (the rest: word-order swaps).",
)
@click.option("--max-per-domain", type=int, default=None, help="Seeded cap of ids per domain.")
@click.option("--device", default="auto", show_default=True)
def build_command(
    corpus_path: str,
    columns: str | None,
    out: Path,
    langs: str | None,
    pair_patterns: str | None,
    model: str,
    seed: int,
    neighbour_share: float,
    max_per_domain: int | None,
    device: str,
) -> None:
    """Positives: a sentence and its translation (en-en: a synonym paraphrase); negatives: its
    nearest non-translation of the same domain, or the translation with two words swapped
    (PAWS). Balanced labels, seeded, split like the corpus. Writes Parquet with columns
    pair_id, id, sentence1, sentence2, label, lang1, lang2, domain, split, kind."""
    from rich.markup import escape
    from rich.table import Table

    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.task.build import build_task, task_summary, write_task

    corpus = load_corpus(corpus_path, columns=columns)
    patterns = [p.strip() for p in pair_patterns.split(",")] if pair_patterns else None
    with step_progress() as progress:
        progress("building the task", 0, None)
        frame = build_task(
            corpus, langs=[x.strip() for x in langs.split(",")] if langs else None,
            pairs=patterns, model=None if model == "none" else model,
            seed=seed, neighbour_share=neighbour_share, max_per_domain=max_per_domain,
            device=device,
        )  # fmt: skip
    written = write_task(frame, out)
    summary = task_summary(frame)
    table = Table(title=f"{frame.height:,} pairs -> {escape(str(written))}")
    for col in summary.columns:
        table.add_column(col, justify="right" if summary[col].dtype.is_numeric() else "left")
    for row in summary.iter_rows():
        table.add_row(*(escape(str(v)) for v in row))
    console().print(table)
