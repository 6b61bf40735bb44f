"""The engine side of `xrdiag eval --analyses robustness`: perturb, embed through the cache, rank.

`analyses/perturb.py` perturbs the query texts, `core/embedding.py` embeds them with the same
encoder (a perturbed corpus has its own fingerprint, so its embeddings get their own cache
entries and a rerun encodes nothing), and `analyses/robustness.py` ranks them against the clean
documents. One noise at a time, so memory holds one perturbed copy, not one per kind.

Which rows are perturbed: with `--pivot`, the non-pivot languages (queries to the pivot; the
pivot's rows stay clean documents); without it, every row, since every ordered pair is
evaluated and every language is a query side. Each sentence's noise is keyed by its id and
language, so it does not change when other rows are added or filtered out.

The synonym noise is English only: when no query language is English (e.g. `--pivot en`) it
is skipped and reports no rows, rather than a drop of zero that would read as robustness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from xrdiag.analyses.perturb import is_english, noise_label, perturb_texts
from xrdiag.analyses.robustness import CLEAN, RECALL, metric_name, query_langs, robustness_results
from xrdiag.analyses.schema import empty_results
from xrdiag.cache.store import ArrayStore
from xrdiag.core.corpus import Corpus
from xrdiag.core.encoding.embedding import Embeddings, embed_corpus
from xrdiag.core.encoding.encoder import Encoder

Progress = Callable[[str, int, int | None], None]


def perturbed_query_corpus(
    corpus: Corpus,
    kind: str,
    rate: float,
    *,
    seed: int,
    pivot: str | None,
    lexicon: dict[str, list[str]] | None,
) -> tuple[Corpus, np.ndarray]:
    """The query rows of `corpus` with perturbed texts, and their row indices in `corpus`."""
    frame = corpus.frame.with_row_index("_row")
    queries = frame.filter(pl.col("lang").is_in(query_langs(corpus.langs, pivot)))
    rows = queries["_row"].to_numpy().astype(np.int64)
    keys = (queries["id"].cast(pl.String) + "\x1f" + queries["lang"]).to_list()
    texts = perturb_texts(
        queries["text"].to_list(),
        kind,
        rate,
        seed=seed,
        keys=keys,
        langs=queries["lang"].to_list(),
        lexicon=lexicon,
    )
    noisy = queries.drop("_row").with_columns(pl.Series("text", texts, dtype=pl.String))
    return Corpus(noisy, f"{corpus.source} ({noise_label(kind, rate)})"), rows


def noise_robustness(
    encoder: Encoder,
    corpus: Corpus,
    emb: Embeddings,
    *,
    kinds: Sequence[str],
    rate: float,
    noise_seed: int,
    pivot: str | None,
    bootstrap: int,
    seed: int,
    store: ArrayStore,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Robustness results (analysis `robustness`) for every noise kind and layer of `emb`.

    `corpus` is the corpus `emb` was computed from (same rows, same order).
    """
    report: Progress = progress or (lambda name, done, total: None)
    if corpus.frame.height != emb.n:
        raise ValueError(f"corpus has {corpus.frame.height} rows, embeddings {emb.n}")
    if not query_langs(corpus.langs, pivot) or len(corpus.langs) < 2:
        return empty_results()
    if not any(is_english(lang) for lang in query_langs(corpus.langs, pivot)):
        kinds = [k for k in kinds if k != "synonym"]
    lexicon = None
    if "synonym" in kinds:
        from xrdiag.core.data.synonyms import load_lexicon

        lexicon = load_lexicon()
    layers = sorted(emb.layers)
    frames: list[pl.DataFrame] = []
    clean_metric = metric_name(RECALL, CLEAN)
    for i, kind in enumerate(kinds):
        label = noise_label(kind, rate)
        noisy, rows = perturbed_query_corpus(
            corpus, kind, rate, seed=noise_seed, pivot=pivot, lexicon=lexicon
        )
        step = f"robustness {label}"
        pemb = embed_corpus(
            encoder, noisy, layers, store=store, progress=lambda d, t, s=step: report(s, d, t)
        )
        for layer in layers:
            clean = emb.layers[layer]
            full = clean.copy()
            full[rows] = pemb.layers[layer]
            frame = robustness_results(
                clean,
                {label: full},
                emb.meta,
                layer=layer,
                pivot=pivot,
                bootstrap=bootstrap,
                seed=seed,
            )
            if i > 0:  # the clean reference once, not once per noise
                frame = frame.filter(pl.col("metric") != clean_metric)
            frames.append(frame)
    return pl.concat(frames) if frames else empty_results()
