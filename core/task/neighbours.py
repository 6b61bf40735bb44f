"""Hard-neighbour negatives: for a sentence, the nearest sentence of another id in a language.

With an encoder (`--model`), sentence1 (id i, lang1) is embedded by the base model and its
neighbour is the lang2 sentence of another id j of the same split and domain with the highest
cosine similarity: the non-translation the encoder finds most like a translation, i.e. a
negative that is hard *for this encoder*. Embeddings go through the embedding cache
(`core/encoding/embedding.py`), so building again costs no forward pass.

Without an encoder the fallback is lexical and needs no model: the neighbour is the lang2
sentence of another id whose character 2-4-gram TF-IDF vector is closest to the *true
translation* (the lang2 sentence of id i). Cross-lingual surface overlap means nothing across
scripts, so the comparison stays inside lang2. It is deterministic: ties (equal scores) go to
the candidate that comes first in id order, so the seed is not needed.

Never a neighbour: id i itself, nor an id whose lang1 or lang2 text equals id i's (corpora
repeat short sentences under several ids; such a "negative" would be a paraphrase).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from xrdiag.core.corpus import Corpus

NGRAMS = (2, 4)


def encoder_vectors(
    corpus: Corpus, wide: pl.DataFrame, langs: Sequence[str], model: str, device: str = "auto"
) -> dict[str, np.ndarray]:
    """Unit-length last-layer embeddings per language, rows aligned with `wide` (zeros where
    a language lacks the id), from the model's embedding cache."""
    from xrdiag.core.encoding.embedding import embed_corpus
    from xrdiag.core.encoding.encoder import Encoder

    part = corpus.filter(langs=list(langs))
    emb = embed_corpus(Encoder(model, device=device), part, "last")
    vectors = next(iter(emb.layers.values())).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row_of = {id_: r for r, id_ in enumerate(wide["id"].to_list())}
    out = {lang: np.zeros((wide.height, vectors.shape[1]), np.float32) for lang in langs}
    for k, (id_, lang) in enumerate(emb.meta.select("id", "lang").iter_rows()):
        if id_ in row_of:
            out[lang][row_of[id_]] = vectors[k]
    return out


def lexical_vectors(wide: pl.DataFrame, langs: Sequence[str]) -> dict[str, Any]:
    """Character n-gram TF-IDF vectors per language (sparse, unit rows), aligned with `wide`."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    out = {}
    for lang in langs:
        texts = [t or "" for t in wide[lang].to_list()]
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True)
        out[lang] = vec.fit_transform(texts).tocsr()
    return out


def _codes(texts: Sequence[str | None]) -> np.ndarray:
    """Equal texts share a code (missing ones get unique codes)."""
    seen: dict[str, int] = {}
    return np.array(
        [seen.setdefault(t, len(seen)) if t is not None else -1 - i for i, t in enumerate(texts)]
    )


def nearest_others(
    queries: Any,
    candidates: Any,
    texts1: Sequence[str | None],
    texts2: Sequence[str | None],
) -> np.ndarray:
    """For each row i, the row j != i with the highest similarity queries[i] . candidates[j]
    whose texts differ from row i's in both languages; -1 when there is none.

    Rows are the ids of one group (split, domain) in id order; ties go to the smallest j.
    """
    sims = queries @ candidates.T
    sims = np.asarray(sims.toarray() if hasattr(sims, "toarray") else sims, dtype=np.float64)
    c1, c2 = _codes(texts1), _codes(texts2)
    banned = (c1[:, None] == c1[None, :]) | (c2[:, None] == c2[None, :])
    missing = np.array([t is None for t in texts2])
    banned |= missing[None, :]
    sims[banned] = -np.inf
    best = sims.argmax(axis=1) if sims.size else np.zeros(0, np.int64)
    found = np.isfinite(sims[np.arange(len(best)), best]) if sims.size else best.astype(bool)
    return np.where(found, best, -1)
