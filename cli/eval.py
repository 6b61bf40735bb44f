"""`xrdiag eval`: embed once (cached), run the diagnostics, write an eval directory."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from xrdiag.analyses import registry
from xrdiag.cli.console import console, step_progress
from xrdiag.cli.options import columns_option, dtype_option
from xrdiag.errors import UserError


def _quiet_in_workers(command: Callable[..., None]) -> Callable[..., None]:
    """A user error exits 2 without a word in a worker process of `accelerate launch`.

    Every process reads the same flags and files, so they fail alike, and the main process says
    why once (click's own usage errors are printed before this runs, once per process).
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except UserError:
            from xrdiag.core.encoding.distributed import is_worker

            if not is_worker():
                raise
            sys.exit(UserError.exit_code)

    return run


@click.command("eval")
@click.option("--model", default="default", show_default=True, help="HF model dir or hub id.")
@click.option("--corpus", "corpus_path", default="default", show_default=True)
@columns_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--analyses",
    default=",".join(registry.default_names()),
    show_default=True,
    help=f"Comma list of {', '.join(registry.names())}, or all.",
)
@click.option("--layers", default="last", show_default=True, help="all, last or e.g. 0,6,12.")
@click.option("--langs", default=None, help="Comma-separated languages (default: all).")
@click.option("--domains", default=None, help="Comma-separated domains (default: all).")
@click.option(
    "--splits", default=None, help="Comma-separated splits, e.g. dev,test (default: all)."
)
@click.option("--pivot", default=None, help="Retrieval against this language only (both ways).")
@click.option("--max-per-domain", type=int, default=None, help="Seeded cap of ids per domain.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="0 = no CIs.")
@click.option("--ks", default="1,5,10", show_default=True, help="Recall cut-offs.")
@click.option(
    "--bias-queries-per-lang",
    type=int,
    default=200,
    show_default=True,
    help="Seeded sample of queries per language for the language-bias rank spread.",
)
@click.option(
    "--pool",
    type=click.Choice(["common", "domain"]),
    default="common",
    show_default=True,
    help="Retrieval candidates: one pool per language pair for every domain's queries, or "
    "equal-size seeded pools within each domain (--pool-size, --pool-repeats).",
)
@click.option("--pool-size", type=int, default=None, help="With --pool domain (default: smallest).")
@click.option("--pool-repeats", type=int, default=5, show_default=True, help="Draws per domain.")
@click.option(
    "--duplicates",
    type=click.Choice(["text", "id"]),
    default="text",
    show_default=True,
    help="text: a candidate whose text equals the gold's counts as correct; id: strict ids.",
)
@click.option("--margin-k", type=int, default=4, show_default=True, help="k of the ratio margin.")
@click.option(
    "--lir-components",
    type=int,
    default=1,
    show_default=True,
    help="Directions LIR (and mean_subspace) remove.",
)
@click.option(
    "--block-size", type=int, default=4096, show_default=True, help="Query rows per matmul block."
)
@click.option(
    "--task",
    "task_pairs",
    default=None,
    help="Labelled sentence pairs for --analyses task (xrdiag task build, PAWS-X, XNLI); the "
    "model must be a pair-classification checkpoint.",
)
@click.option("--projection", type=click.Choice(["pca", "umap"]), default="pca", show_default=True)
@click.option("--projection-max-points", type=int, default=None, help="Seeded cap, reported.")
@click.option("--probe-max-rows", type=int, default=None, help="Seeded cap of probe rows.")
@click.option(
    "--pooling",
    type=click.Choice(["mean", "cls"]),
    default=None,
    help="Default: the model's (a checkpoint's training pooling), else mean.",
)
@click.option(
    "--max-length",
    type=int,
    default=None,
    help="Tokens per sentence. Default: the model's (a checkpoint's training length), else 512.",
)
@click.option("--device", default="auto", show_default=True)
@dtype_option
@click.option(
    "--noise-kinds",
    default="char,word_dropout,synonym,strip_punct,lowercase",
    show_default=True,
    help="Query noise for --analyses robustness: comma list of char_swap, char_drop, "
    "char_insert, char_replace, char (the four mixed), word_dropout, synonym (English), "
    "strip_punct, lowercase.",
)
@click.option(
    "--noise-rate",
    type=float,
    default=0.1,
    show_default=True,
    help="Probability that each character or word of a query is perturbed.",
)
@click.option("--noise-seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier evaluation in --out (a directory holding anything else is refused).",
)
@_quiet_in_workers
def eval_command(
    model: str,
    corpus_path: str,
    out: Path,
    analyses: str,
    as_json: bool,
    overwrite: bool,
    **options: Any,
) -> None:
    """Embed once (cached) and run alignment diagnostics; writes results.parquet + manifest.json."""
    from xrdiag.core.evaluate import EvalOptions, run_eval

    try:
        ks = tuple(int(k) for k in options.pop("ks").split(","))
    except ValueError:
        raise UserError("--ks: expected comma-separated integers such as 1,5,10") from None
    opts = EvalOptions(analyses=registry.parse_analyses(analyses), ks=ks, **options)
    from xrdiag.core.encoding.distributed import sharing_processes

    # Under `accelerate launch` with several processes they share the encoding; the main one
    # reports and writes, a worker stays silent and exits with the main process's status.
    with sharing_processes(opts.device) as processes:
        worker = processes is not None and not processes.is_main
        with nullcontext() if worker else step_progress() as progress:
            outcome = run_eval(
                model, corpus_path, out, opts, progress, overwrite=overwrite, processes=processes
            )
    if processes is not None and worker:
        sys.exit(processes.main_status)
    if as_json:
        from xrdiag.report.tables import scalar_metrics, summary_frame

        click.echo(
            json.dumps(
                {
                    "out": str(outcome.out_dir),
                    "rows": outcome.manifest["rows"]["n"],
                    "results": outcome.results.height,
                    "timings_s": outcome.timings,
                    "summary": summary_frame(outcome.results, opts.pivot).to_dicts(),
                    "scalars": scalar_metrics(outcome.results),
                },
                indent=2,
            )
        )
    else:
        from xrdiag.report.terminal import eval_summary

        eval_summary(console(), outcome, pivot=opts.pivot)
