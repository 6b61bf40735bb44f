"""Embedding-space geometry: isotropy, norms per language, distances between language centroids.

Anisotropic spaces (all vectors in a narrow cone) inflate every cosine similarity, which
distorts retrieval and similarity-based alignment scores; language centroids that sit far
apart are the language-specific offset that alignment methods try to remove.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.schema import ALL_DOMAINS, results_frame
from xrdiag.analyses.threads import single_blas_thread
from xrdiag.errors import UserError

Z95 = 1.959963984540054  # standard normal 97.5% quantile, for the normal-approximation intervals


def random_pairs(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n_pairs` index pairs (i, j), i != j, drawn uniformly with replacement with `seed`."""
    if n < 2:
        raise ValueError(f"random pairs need at least two rows, got {n}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = rng.integers(0, n - 1, n_pairs)
    return i, j + (j >= i)  # skip the diagonal: j is uniform over the n - 1 rows other than i


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def random_cosines(X: np.ndarray, n_pairs: int, seed: int) -> np.ndarray:
    """Cosine similarities of `n_pairs` random pairs of distinct rows (a zero row has cosine 0).

    Their mean is the usual anisotropy estimate (Ethayarajh, EMNLP 2019): near 0 for an
    isotropic space, near 1 when all vectors share one direction.
    """
    U = _unit(np.asarray(X, dtype=np.float64))
    i, j = random_pairs(len(U), n_pairs, seed)
    return np.einsum("ij,ij->i", U[i], U[j])


def partition_isotropy(X: np.ndarray) -> float:
    """I(W) = min_c Z(c) / max_c Z(c), Z(c) = sum_i exp(c^T w_i) (Mu & Viswanath, ICLR 2018).

    As in "All-but-the-Top" (sec. 2), c ranges over the unit eigenvectors of W^T W, each
    with both signs (an eigenvector's sign is arbitrary, so both belong to the set). Z is
    compared in log space (logsumexp), which gives the same ratio without overflow.
    """
    W = np.asarray(X, dtype=np.float64)
    _, vecs = np.linalg.eigh(W.T @ W)
    proj = W @ vecs  # [n, d]: c^T w_i for every eigenvector c
    log_z = np.concatenate([_logsumexp(proj), _logsumexp(-proj)])
    return float(np.exp(log_z.min() - log_z.max()))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0))


def centroid_distances(
    X: np.ndarray, labels: np.ndarray
) -> Iterator[tuple[Any, Any, float, float]]:
    """(a, b, euclidean, cosine distance) between the mean vectors of each label pair, a < b."""
    W = np.asarray(X, dtype=np.float64)
    names = sorted(set(labels.tolist()))
    means = {name: W[labels == name].mean(axis=0) for name in names}
    for a, b in combinations(names, 2):
        ma, mb = means[a], means[b]
        denom = np.linalg.norm(ma) * np.linalg.norm(mb)
        cos = float(ma @ mb / denom) if denom > 0 else 0.0
        yield a, b, float(np.linalg.norm(ma - mb)), 1.0 - cos


def _mean_ci(values: np.ndarray) -> tuple[float, float | None, float | None]:
    """Mean and its normal-approximation 95% interval (None with fewer than two values)."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def _row(metric: str, layer: int, domain: str, value: float, n: int, **extra: Any) -> dict:
    return {"analysis": "geometry", "metric": metric, "layer": layer, "domain": domain,
            "value": float(value), "n": n, **extra}  # fmt: skip


def _scope_rows(
    X: np.ndarray, langs: np.ndarray, layer: int, domain: str, n_pairs: int, seed: int
) -> list[dict[str, Any]]:
    """Every geometry metric for one layer over one set of rows (all, or one domain)."""
    X = np.asarray(X, dtype=np.float64)
    out: list[dict[str, Any]] = []
    if len(X) >= 2 and n_pairs > 0:
        mean, lo, hi = _mean_ci(random_cosines(X, n_pairs, seed))
        out.append(_row("mean_random_cosine", layer, domain, mean, n_pairs, ci_low=lo, ci_high=hi))
    if len(X) >= 1:
        ratio = partition_isotropy(X)
        out.append(_row("isotropy_partition_ratio", layer, domain, ratio, len(X)))
    norms = np.linalg.norm(X, axis=1)
    for lang in sorted(set(langs.tolist())):
        mask = langs == lang
        mean, lo, hi = _mean_ci(norms[mask])
        out.append(
            _row("mean_norm", layer, domain, mean, int(mask.sum()),
                 src_lang=lang, ci_low=lo, ci_high=hi)
        )  # fmt: skip
    sizes = {lang: int((langs == lang).sum()) for lang in set(langs.tolist())}
    for a, b, euclid, cosine in centroid_distances(X, langs):
        pair = {"src_lang": a, "tgt_lang": b}
        n = sizes[a] + sizes[b]
        out.append(_row("centroid_distance", layer, domain, euclid, n, **pair))
        out.append(_row("centroid_cosine_distance", layer, domain, cosine, n, **pair))
    return out


@single_blas_thread()
def geometry_results(
    embeddings: Mapping[int, np.ndarray],
    meta: pl.DataFrame,
    *,
    layers: Sequence[int] | None = None,
    n_pairs: int = 10_000,
    seed: int = 0,
    per_domain: bool = True,
) -> pl.DataFrame:
    """Per layer, over all rows ("all") and per domain: isotropy, norms and centroid distances.

    `mean_random_cosine` (n = pairs, normal-approximation CI over the pairs) and
    `isotropy_partition_ratio` pool every language; `mean_norm` is per language (src_lang);
    `centroid_distance` (Euclidean) and `centroid_cosine_distance` (1 - cosine) are given
    once per unordered language pair with src_lang < tgt_lang. The same seed draws the same
    pairs in every layer, so layers are compared on identical pairs.
    """
    if n_pairs < 0:
        raise UserError(f"geometry n_pairs must be zero or positive, got {n_pairs}")
    lacking = [c for c in ("lang", "domain") if c not in meta.columns]
    if lacking:
        raise ValueError(f"metadata frame lacks columns {lacking}")
    if layers is None:
        layers = sorted(embeddings)
    missing = [layer for layer in layers if layer not in embeddings]
    if missing:
        raise UserError(
            f"--layers: no layer {missing} in the embeddings (have {sorted(embeddings)})"
        )
    langs, doms = meta["lang"].to_numpy(), meta["domain"].to_numpy()
    scopes = [(ALL_DOMAINS, np.arange(meta.height))]
    if per_domain:
        for dom in sorted(meta["domain"].drop_nulls().unique().to_list()):
            scopes.append((dom, np.flatnonzero(doms == dom)))
    out: list[dict[str, Any]] = []
    for layer in layers:
        X = np.asarray(embeddings[layer])
        if X.shape[0] != meta.height:
            raise ValueError(f"layer {layer}: {X.shape[0]} rows, metadata has {meta.height}")
        for domain, rows in scopes:
            out += _scope_rows(X[rows], langs[rows], layer, domain, n_pairs, seed)
    return results_frame(out)


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `geometry` analysis."""
    return geometry_results(inputs.layers, inputs.meta, seed=inputs.options["seed"])
