"""`xrdiag embed`: embed a corpus (every requested layer in one pass, cached), write .npz."""

from __future__ import annotations

import json
from pathlib import Path

import click

from xrdiag.cli.console import console, step_progress
from xrdiag.cli.options import columns_option, dtype_option
from xrdiag.errors import UserError


@click.command("embed")
@click.option("--model", default="default", show_default=True, help="HF model dir or hub id.")
@click.option("--corpus", "corpus_path", default="default", show_default=True)
@columns_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write .npz."
)
@click.option("--layers", default="last", show_default=True, help="all, last or e.g. 0,6,12.")
@click.option(
    "--pooling",
    type=click.Choice(["mean", "cls"]),
    default=None,
    help="Default: the model's (a checkpoint's training pooling), else mean.",
)
@click.option("--langs", default=None, help="Comma-separated languages (default: all).")
@click.option("--domains", default=None, help="Comma-separated domains (default: all).")
@click.option("--splits", default=None, help="Comma-separated splits (default: all).")
@click.option("--max-per-domain", type=int, default=None, help="Seeded cap of ids per domain.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--max-length",
    type=int,
    default=None,
    help="Tokens per sentence. Default: the model's (a checkpoint's training length), else 512.",
)
@click.option("--batch-size", type=int, default=None, help="Tokens per batch (default 4096).")
@click.option("--prefix", default=None, help="Input prefix (default: the model's, e5: 'query: ').")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or mps.")
@dtype_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def embed(
    model: str,
    corpus_path: str,
    columns: str | None,
    out: Path | None,
    layers: str,
    pooling: str | None,
    langs: str | None,
    domains: str | None,
    splits: str | None,
    max_per_domain: int | None,
    seed: int,
    max_length: int | None,
    batch_size: int | None,
    prefix: str | None,
    device: str,
    dtype: str,
    as_json: bool,
) -> None:
    """Embed a corpus (every requested layer in one pass, cached) and summarise alignment."""
    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.encoding.embedding import embed_corpus, save_embeddings, translation_cosine
    from xrdiag.core.encoding.encoder import DEFAULT_TOKEN_BUDGET, Encoder

    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: expected a positive number of tokens")
    data = load_corpus(corpus_path, columns=columns).filter(
        langs=langs, domains=domains, splits=splits, max_per_domain=max_per_domain, seed=seed
    )
    encoder = Encoder(
        model,
        device=device,
        pooling=pooling,
        max_length=max_length,
        prefix=prefix,
        token_budget=batch_size or DEFAULT_TOKEN_BUDGET,
        dtype=dtype,
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
