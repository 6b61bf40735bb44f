"""Noise robustness of cross-lingual retrieval: recall@1 of perturbed queries and its drop.

Huang et al. (EMNLP 2021) call an encoder robust when small input perturbations (typos,
synonyms) leave its predictions unchanged. Here the prediction is the translation retrieved:
each query (a source-language row) is perturbed (`analyses/perturb.py`), embedded by the same
encoder, and must still retrieve its gold document among the *clean* target-language rows of
the pool (one domain, or every domain for "all"), with cosine similarity and the pessimistic
ranks of `analyses/topk.py`, exactly as `analyses/retrieval.py` ranks clean queries.

Metrics (analysis `robustness`), where `<noise>` names a perturbation kind at a rate, e.g.
`char@0.1` (`perturb.noise_label`):
- `recall@1|clean`: recall@1 of the clean queries (equals retrieval's `recall@1|cos|none`);
- `recall@1|<noise>`: recall@1 of the perturbed queries;
- `recall@1_drop|<noise>`: clean minus perturbed recall@1 (positive: noise hurts), with a
  paired bootstrap interval (the same resampled queries for both terms).

Every figure is per (src_lang, tgt_lang, domain) and for domain "all"; `n` is the number of
queries with a gold document. CIs are seeded percentile bootstraps over queries
(`analyses/bootstrap.py`), one seed for every pair, domain and noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, summarise_columns
from xrdiag.analyses.retrieval import (
    _check_inputs,
    _domain_rows,
    _gold,
    _resolve_domains,
    _resolve_pairs,
    l2_normalise,
)
from xrdiag.analyses.schema import results_frame
from xrdiag.analyses.topk import gold_ranks
from xrdiag.errors import UserError

ANALYSIS = "robustness"
CLEAN = "clean"
RECALL = "recall@1"
DROP = "recall@1_drop"


def metric_name(base: str, noise: str) -> str:
    """`recall@1|char@0.1`-style metric name (see the module docstring)."""
    return f"{base}|{noise}"


def parse_metric(metric: str) -> tuple[str, str]:
    """Split a robustness metric into (base, noise); noise is `clean` for the reference."""
    base, noise = metric.split("|")  # ValueError unless exactly two parts
    return base, noise


def query_langs(langs: Sequence[str], pivot: str | None) -> list[str]:
    """Languages whose rows are queried: all of them, or all but the pivot.

    With a pivot only the non-pivot side is perturbed (queries to the pivot), so the pivot's
    own rows stay clean documents; without one every ordered pair is evaluated, so every
    language is a query side.
    """
    return sorted(lang for lang in set(langs) if lang != pivot)


def _check_perturbed(perturbed: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> None:
    if not perturbed:
        raise UserError("robustness: no perturbed embeddings given (expected at least one noise)")
    for label, array in perturbed.items():
        arr = np.asarray(array)
        if arr.shape != shape:
            raise UserError(
                f"perturbed embeddings {label!r}: expected shape {shape}, got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise UserError(f"perturbed embeddings {label!r}: contain NaN or infinite values")
        if "|" in label or label == CLEAN:
            raise UserError(f"perturbed embeddings: {label!r} cannot name a noise")


def robustness_results(
    clean: np.ndarray,
    perturbed: Mapping[str, np.ndarray],
    meta: pl.DataFrame,
    *,
    layer: int,
    pivot: str | None = None,
    pairs: str | Sequence[tuple[str, str]] = "all",
    per_domain: bool = True,
    domains: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    block_size: int = 4096,
) -> pl.DataFrame:
    """recall@1 of clean and perturbed queries against clean documents, and the drop.

    `perturbed` maps a noise label (e.g. `char@0.1`) to embeddings aligned with `meta`, like
    `clean`; only the rows used as queries are read. With `pivot`, the pairs are every other
    language -> pivot (the non-pivot side is queried); otherwise `pairs` as in retrieval
    (default every ordered pair). `bootstrap=0` leaves the CI empty.
    """
    emb, meta = _check_inputs(clean, meta)
    _check_perturbed(perturbed, emb.shape)
    if bootstrap < 0 or block_size < 1:
        raise UserError("--bootstrap must be >= 0 and --block-size >= 1")
    present = sorted(meta["lang"].unique().to_list())
    ordered = _resolve_pairs(present, pairs, pivot)
    if pivot is not None:
        ordered = [(s, t) for s, t in ordered if t == pivot]
    domain_list = _resolve_domains(sorted(meta["domain"].unique().to_list()), per_domain, domains)
    n_codes = int(meta["code"].max()) + 1
    docs_all = l2_normalise(emb)
    noisy = {label: l2_normalise(np.asarray(a)) for label, a in perturbed.items()}
    out: list[dict[str, Any]] = []
    boots: dict[int, BootstrapMeans] = {}
    for domain in domain_list:
        rows = _domain_rows(meta, domain)
        for s, t in ordered:
            if s not in rows or t not in rows:
                continue
            (rows_s, codes_s), (rows_t, codes_t) = rows[s], rows[t]
            gold = _gold(codes_s, codes_t, n_codes)
            used = gold >= 0
            if not used.any():
                continue
            docs = docs_all[rows_t]
            q_rows, q_gold = rows_s[used], gold[used]
            hits = {CLEAN: gold_ranks(docs_all[q_rows], docs, q_gold, block_size) == 1}
            for label, array in noisy.items():
                hits[label] = gold_ranks(array[q_rows], docs, q_gold, block_size) == 1
            columns = {metric_name(RECALL, CLEAN): hits[CLEAN].astype(np.float64)}
            for label in noisy:
                columns[metric_name(RECALL, label)] = hits[label].astype(np.float64)
                columns[metric_name(DROP, label)] = hits[CLEAN].astype(np.float64) - hits[label]
            base = {"layer": layer, "src_lang": s, "tgt_lang": t, "domain": domain}
            out.extend(_summaries(columns, base, bootstrap, seed, boots))
    return results_frame(out)


def _summaries(
    columns: dict[str, np.ndarray],
    base: dict[str, Any],
    bootstrap: int,
    seed: int,
    boots: dict[int, BootstrapMeans],
) -> list[dict[str, Any]]:
    """Result rows (value, paired bootstrap CI, n) of the robustness metric columns."""
    return summarise_columns(columns, {**base, "analysis": ANALYSIS}, bootstrap, seed, boots)
