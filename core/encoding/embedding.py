"""Embed a corpus through the cache: one forward pass for every layer the cache lacks.

Each layer is its own cache entry, keyed by everything that changes it (model and corpus
fingerprints, layer, pooling, prefix, max length), so asking for `0,6` after `all` is a pure hit
and asking for `all` after `last` computes only what is missing — still in one forward pass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from xrdiag.cache.store import ArrayStore, cache_key
from xrdiag.core.corpus import Corpus
from xrdiag.core.encoding.encoder import Encoder
from xrdiag.core.layout.atomic import temporary_sibling

if TYPE_CHECKING:
    from xrdiag.core.encoding.distributed import Processes

META_COLUMNS = ("id", "lang", "domain", "split")


@dataclass
class Embeddings:
    """Pooled embeddings per layer, rows aligned with `meta` (id, lang, domain, split)."""

    layers: dict[int, np.ndarray]
    meta: pl.DataFrame
    model: str
    model_fingerprint: str
    corpus_fingerprint: str
    spec: dict[str, Any]
    cached_layers: list[int]  # which layers came from the cache rather than the model

    @property
    def n(self) -> int:
        return self.meta.height


def layer_key(encoder: Encoder, corpus_fingerprint: str, layer: int) -> str:
    """The cache key of one layer's embeddings of one corpus."""
    return cache_key(
        kind="embeddings",
        model=encoder.fingerprint,
        corpus=corpus_fingerprint,
        layer=layer,
        **encoder.spec.as_key(),
    )


def embed_corpus(
    encoder: Encoder,
    corpus: Corpus,
    layers: str | Sequence[int] | None = "last",
    *,
    store: ArrayStore | None = None,
    progress: Callable[[int, int], None] | None = None,
    processes: Processes | None = None,
) -> Embeddings:
    """Embeddings of every row of `corpus` for the requested layers, cached where possible.

    With `processes` (`accelerate launch`, core/encoding/distributed.py) every process encodes a
    share of the rows the main process's cache lacks; the main process alone reads and writes
    the cache and gets every row; a worker gets no layers.
    """
    wanted = encoder.resolve_layers(layers)
    store = store if store is not None else ArrayStore()
    if processes is not None and not processes.is_main:
        return _worker_share(encoder, corpus, processes)
    fingerprint = corpus.fingerprint()
    found: dict[int, np.ndarray] = {}
    for layer in wanted:
        hit = store.get(layer_key(encoder, fingerprint, layer))
        if hit is not None and hit["embeddings"].shape[0] == corpus.frame.height:
            found[layer] = hit["embeddings"]
    missing = [layer for layer in wanted if layer not in found]
    if processes is not None:
        missing = processes.from_main(missing)
    if not missing:
        encoder.verify()
    else:
        texts = corpus.frame["text"].to_list()
        if processes is None:
            computed = encoder.encode(texts, layers=missing, progress=progress)
        else:
            computed = processes.encode(encoder, texts, missing, progress)
        for i, layer in enumerate(missing):
            found[layer] = computed[i]
            store.put(
                layer_key(encoder, fingerprint, layer),
                {"embeddings": computed[i]},
                meta={"model": encoder.model_name, "layer": layer, "rows": len(texts)},
            )
    return Embeddings(
        layers={layer: found[layer] for layer in wanted},
        meta=corpus.frame.select(META_COLUMNS),
        model=encoder.model_name,
        model_fingerprint=encoder.fingerprint,
        corpus_fingerprint=fingerprint,
        spec=encoder.spec.as_key(),
        cached_layers=[layer for layer in wanted if layer not in missing],
    )


def _worker_share(encoder: Encoder, corpus: Corpus, processes: Processes) -> Embeddings:
    """A worker's part: encode its share of the layers the main process lacks, hand it over.

    It reads no cache entry, writes none, and keeps nothing: its Embeddings hold no layers.
    """
    missing = processes.from_main(None)
    if missing:
        processes.hand_over(encoder, corpus.frame["text"].to_list(), missing)
    return Embeddings(
        layers={},
        meta=corpus.frame.select(META_COLUMNS),
        model=encoder.model_name,
        model_fingerprint="",
        corpus_fingerprint="",
        spec=encoder.spec.as_key(),
        cached_layers=[],
    )


def no_embeddings(encoder: Encoder, corpus: Corpus) -> Embeddings:
    """The corpus and model described, nothing encoded: for analyses that read other inputs."""
    return Embeddings(
        layers={},
        meta=corpus.frame.select(META_COLUMNS),
        model=encoder.model_name,
        model_fingerprint=encoder.fingerprint,
        corpus_fingerprint=corpus.fingerprint(),
        spec=encoder.spec.as_key(),
        cached_layers=[],
    )


def save_embeddings(emb: Embeddings, out: Path) -> None:
    """Write an `.npz`: `layer_<i>` arrays, the metadata columns, and a JSON header; atomically.

    Plain arrays only (strings as fixed-width unicode), so `np.load(allow_pickle=False)` reads it.
    """
    arrays: dict[str, np.ndarray] = {f"layer_{k}": v for k, v in emb.layers.items()}
    for col in META_COLUMNS:
        arrays[col] = np.asarray(emb.meta[col].to_list(), dtype=str)
    header = {
        "model": emb.model,
        "model_fingerprint": emb.model_fingerprint,
        "corpus_fingerprint": emb.corpus_fingerprint,
        "layers": sorted(emb.layers),
        **emb.spec,
    }
    arrays["header"] = np.asarray(json.dumps(header))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)  # created with the umask's modes, unlike mkstemp's 0600
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_embeddings(path: Path) -> tuple[dict[int, np.ndarray], pl.DataFrame, dict[str, Any]]:
    """Read back what `save_embeddings` wrote: layers, metadata frame, header."""
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        layers = {int(k): data[f"layer_{k}"] for k in header["layers"]}
        meta = pl.DataFrame({col: data[col].tolist() for col in META_COLUMNS})
    return layers, meta, header


def translation_cosine(emb: Embeddings, layer: int, pivot: str = "en") -> pl.DataFrame:
    """Mean cosine between each sentence and its `pivot` translation, per language and domain.

    A quick alignment read-out for the embed summary: 1.0 means translations coincide.
    """
    vectors = emb.layers[layer]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    meta = emb.meta.with_row_index("row")
    pivots = meta.filter(pl.col("lang") == pivot).select("id", pl.col("row").alias("pivot_row"))
    pairs = meta.filter(pl.col("lang") != pivot).join(pivots, on="id", how="inner")
    if pairs.height == 0:
        return pl.DataFrame(schema={"lang": pl.String, "domain": pl.String, "cosine": pl.Float64})
    rows = pairs["row"].to_numpy()
    cos = np.einsum("ij,ij->i", unit[rows], unit[pairs["pivot_row"].to_numpy()])
    pairs = pairs.with_columns(pl.Series("cosine", cos.astype(np.float64)))
    per_domain = pairs.group_by("lang", "domain").agg(pl.col("cosine").mean())
    overall = (
        pairs.group_by("lang")
        .agg(pl.col("cosine").mean())
        .with_columns(pl.lit("all").alias("domain"))
    )
    return pl.concat([per_domain, overall.select(per_domain.columns)]).sort("lang", "domain")
