"""`xrdiag corpus info`: languages x domains, splits, alignment and every problem of a corpus."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from xrdiag.cli.console import console
from xrdiag.cli.options import columns_option
from xrdiag.errors import UserError


@click.group()
def corpus() -> None:
    """Inspect and validate corpora."""


@corpus.command("info")
@click.argument("path", required=False, default="default")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@columns_option
def corpus_info(path: str, as_json: bool, columns: str | None) -> None:
    """Languages x domains, splits, alignment and every validation problem of PATH.

    PATH is a Parquet/CSV/TSV/JSONL/TMX file, a gettext locale tree, a test set as distributed
    (a Tatoeba, FLORES-200, FLORES+ or NTREX-128 folder, or tatoeba:DIR, flores200:DIR,
    flores+:DIR, ntrex:DIR), a Hugging Face dataset (hf:NAME[:CONFIG][@SPLIT] or hf:/saved/dir),
    or `default` (the bundled corpus). Exits 2 when the corpus has problems.
    """
    from xrdiag.core.corpus import check_corpus, load_corpus

    problems = check_corpus(path, columns)
    info: dict[str, Any] = {"source": path, "problems": problems}
    if not problems:
        info = load_corpus(path, columns=columns).describe()
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        from xrdiag.report.terminal import corpus_tables

        corpus_tables(console(), info)
    if problems:
        sys.exit(UserError.exit_code)
