"""The `xrdiag` command line: parses arguments and dispatches; no metric logic lives here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from xrdiag import __version__
from xrdiag.console import console, step_progress
from xrdiag.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, prog_name="xrdiag")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache directory (default: XRDIAG_CACHE_DIR or the platform cache).",
)
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where the dashboard looks for runs, studies and evaluations.",
)
@click.pass_context
def cli(ctx: click.Context, cache_dir: Path | None, runs_dir: Path) -> None:
    """Cross-lingual alignment and robustness diagnostics for multilingual encoders.

    With no command, opens the dashboard on --runs (the same as `xrdiag ui`).
    """
    if cache_dir is not None:
        os.environ["XRDIAG_CACHE_DIR"] = str(cache_dir)
    if ctx.invoked_subcommand is None:
        from xrdiag.tui.app import run_app

        run_app(runs_dir)


# --------------------------------------------------------------------------- corpus
@cli.group()
def corpus() -> None:
    """Inspect and validate corpora."""


@corpus.command("info")
@click.argument("path", required=False, default="default")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def corpus_info(path: str, as_json: bool) -> None:
    """Languages x domains, splits, alignment and every validation problem of PATH.

    PATH is a Parquet/CSV/TSV/JSONL/TMX file, a gettext locale tree, or `default` (the bundled
    corpus). Exits 2 when the corpus has problems.
    """
    from xrdiag.core.corpus import check_corpus, load_corpus

    problems = check_corpus(path)
    info: dict[str, Any] = {"source": path, "problems": problems}
    if not problems:
        info = load_corpus(path).describe()
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        from xrdiag.report.terminal import corpus_tables

        corpus_tables(console(), info)
    if problems:
        sys.exit(UserError.exit_code)


# --------------------------------------------------------------------------- embed
@cli.command()
@click.option("--model", default="default", show_default=True, help="HF model dir or hub id.")
@click.option("--corpus", "corpus_path", default="default", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write .npz."
)
@click.option("--layers", default="last", show_default=True, help="all, last or e.g. 0,6,12.")
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default="mean", show_default=True)
@click.option("--langs", default=None, help="Comma-separated languages (default: all).")
@click.option("--domains", default=None, help="Comma-separated domains (default: all).")
@click.option("--splits", default=None, help="Comma-separated splits (default: all).")
@click.option("--max-per-domain", type=int, default=None, help="Seeded cap of ids per domain.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-length", type=int, default=512, show_default=True)
@click.option("--batch-size", type=int, default=None, help="Tokens per batch (default 4096).")
@click.option("--prefix", default=None, help="Input prefix (default: the model's, e5: 'query: ').")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or mps.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def embed(
    model: str,
    corpus_path: str,
    out: Path | None,
    layers: str,
    pooling: str,
    langs: str | None,
    domains: str | None,
    splits: str | None,
    max_per_domain: int | None,
    seed: int,
    max_length: int,
    batch_size: int | None,
    prefix: str | None,
    device: str,
    as_json: bool,
) -> None:
    """Embed a corpus (every requested layer in one pass, cached) and summarise alignment."""
    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.encoding.embedding import embed_corpus, save_embeddings, translation_cosine
    from xrdiag.core.encoding.encoder import DEFAULT_TOKEN_BUDGET, Encoder

    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: expected a positive number of tokens")
    data = load_corpus(corpus_path).filter(
        langs=langs, domains=domains, splits=splits, max_per_domain=max_per_domain, seed=seed
    )
    encoder = Encoder(
        model,
        device=device,
        pooling=pooling,
        max_length=max_length,
        prefix=prefix,
        token_budget=batch_size or DEFAULT_TOKEN_BUDGET,
    )
    label = f"embedding {len(data)} sentences"
    with step_progress() as progress:
        emb = embed_corpus(encoder, data, layers, progress=lambda d, t: progress(label, d, t))
    if out is not None:
        save_embeddings(emb, out)
    top = max(emb.layers)
    pivot = "en" if "en" in data.langs else data.langs[0]
    summary = translation_cosine(emb, top, pivot=pivot)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rows": emb.n,
                    "layers": sorted(emb.layers),
                    "cached_layers": emb.cached_layers,
                    "out": str(out) if out else None,
                    "pivot": pivot,
                    "translation_cosine": summary.to_dicts(),
                },
                indent=2,
            )
        )
    else:
        from xrdiag.report.terminal import embed_summary

        embed_summary(console(), emb, summary, pivot=pivot, layer=top, out=out)


# --------------------------------------------------------------------------- eval
@cli.command("eval")
@click.option("--model", default="default", show_default=True, help="HF model dir or hub id.")
@click.option("--corpus", "corpus_path", default="default", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--analyses",
    default="retrieval,cka,probe,geometry,projection",
    show_default=True,
    help="Comma list, or all (adds robustness).",
)
@click.option("--layers", default="last", show_default=True, help="all, last or e.g. 0,6,12.")
@click.option("--langs", default=None, help="Comma-separated languages (default: all).")
@click.option("--domains", default=None, help="Comma-separated domains (default: all).")
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
@click.option("--projection", type=click.Choice(["pca", "umap"]), default="pca", show_default=True)
@click.option("--projection-max-points", type=int, default=None, help="Seeded cap, reported.")
@click.option("--probe-max-rows", type=int, default=None, help="Seeded cap of probe rows.")
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default="mean", show_default=True)
@click.option("--max-length", type=int, default=512, show_default=True)
@click.option("--device", default="auto", show_default=True)
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
def eval_command(
    model: str,
    corpus_path: str,
    out: Path,
    analyses: str,
    as_json: bool,
    **options: Any,
) -> None:
    """Embed once (cached) and run alignment diagnostics; writes results.parquet + manifest.json."""
    from xrdiag.core.evaluate import EvalOptions, parse_analyses, run_eval

    try:
        ks = tuple(int(k) for k in options.pop("ks").split(","))
    except ValueError:
        raise UserError("--ks: expected comma-separated integers such as 1,5,10") from None
    opts = EvalOptions(analyses=parse_analyses(analyses), ks=ks, **options)
    with step_progress() as progress:
        outcome = run_eval(model, corpus_path, out, opts, progress=progress)
    if as_json:
        from xrdiag.core.evaluate import scalar_metrics, summary_frame

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


# --------------------------------------------------------------------------- cache
@cli.group()
def cache() -> None:
    """The embedding cache."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True)
def cache_info(as_json: bool) -> None:
    """Where the cache is, how many entries and bytes it holds."""
    from xrdiag.cache.store import ArrayStore

    info = ArrayStore().info()
    info["root"] = str(info["root"])
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")


@cache.command("clear")
def cache_clear() -> None:
    """Remove every cached embedding."""
    from xrdiag.cache.store import ArrayStore

    store = ArrayStore()
    removed = store.clear()
    click.echo(f"removed {removed} entries from {store.root}")


def _register_commands() -> None:
    """Commands that live beside their engine (train, study, report, ui); none imports heavily."""
    from xrdiag.core.training.cli_train import train_command

    cli.add_command(train_command, name="train")
    from xrdiag.core.study_cli import demo_command, study_command

    cli.add_command(study_command, name="study")
    cli.add_command(demo_command, name="demo")
    from xrdiag.tui.cli_ui import ui_command

    cli.add_command(ui_command, name="ui")
    from xrdiag.report.cli_report import compare_command, report_command

    cli.add_command(report_command, name="report")
    cli.add_command(compare_command, name="compare")
    # (more commands are registered here as they land)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    from xrdiag.entry import run_command

    run_command(cli, argv, "xrdiag")
