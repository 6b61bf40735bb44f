"""Noise robustness of cross-lingual retrieval: recall@1 of perturbed queries and its drop.

Huang et al. (EMNLP 2021) call an encoder robust when small input perturbations (typos,
synonyms) leave its predictions unchanged. Here the prediction is the translation retrieved:
each query (a source-language row) is perturbed (`analyses/perturb.py`), embedded by the same
encoder, and must still retrieve its gold document among the *clean* target-language rows of
the pair's common pool (every target row whose id has a source row, for every domain's
queries), with cosine similarity and the pessimistic ranks of `analyses/topk.py`, exactly as
`analyses/retrieval.py` ranks clean queries.

Metrics (analysis `robustness`), where `<noise>` names a perturbation kind at a rate, e.g.
`char@0.1` (`perturb.noise_label`):
- `recall@1|clean`: recall@1 of the clean queries (equals retrieval's `recall@1|cos|none`);
- `recall@1|<noise>`: recall@1 of the perturbed queries;
- `recall@1_drop|<noise>`: clean minus perturbed recall@1 (positive: noise hurts), with a
  paired bootstrap interval (the same resampled queries for both terms).

Every figure is per (src_lang, tgt_lang, domain) and for domain "all"; `n` is the number of
queries with a gold document. CIs are seeded percentile bootstraps over queries
(`analyses/bootstrap.py`), one seed for every pair, domain and noise.

Which rows are perturbed: with a pivot, the non-pivot languages (queries to the pivot; the
pivot's rows stay clean documents); without one, every row, since every ordered pair is
evaluated and every language is a query side. Each sentence's noise is keyed by its id and
language, so it does not change when other rows are added or filtered out. The perturbed
queries are embedded by the evaluator's encoder (`AnalysisInputs.embed`, through its cache),
one noise at a time, so memory holds one perturbed copy. The synonym noise is English only:
when no query language is English (e.g. `--pivot en`) it is skipped and reports no rows,
rather than a drop of zero that would read as robustness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, summarise_columns
from xrdiag.analyses.corrections import l2_normalise
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.pairs import check_inputs, resolve_pairs, shared_rows
from xrdiag.analyses.perturb import is_english, noise_label, perturb_texts
from xrdiag.analyses.schema import ALL_DOMAINS, empty_results, results_frame
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
    emb, meta = check_inputs(clean, meta)
    _check_perturbed(perturbed, emb.shape)
    if bootstrap < 0 or block_size < 1:
        raise UserError("--bootstrap must be >= 0 and --block-size >= 1")
    present = sorted(meta["lang"].unique().to_list())
    ordered = resolve_pairs(present, pairs, pivot)
    if pivot is not None:
        ordered = [(s, t) for s, t in ordered if t == pivot]
    known = sorted(meta["domain"].unique().to_list())
    for domain in domains or []:
        if domain not in known:
            raise UserError(f"--domains: {domain!r} not in the data (have {known})")
    docs_all = l2_normalise(emb)
    noisy = {label: l2_normalise(np.asarray(a)) for label, a in perturbed.items()}
    out: list[dict[str, Any]] = []
    boots: dict[int, BootstrapMeans] = {}
    for s, t in ordered:
        src, tgt = shared_rows(meta, s, t)  # the common pool, as retrieval ranks it
        if src.height == 0:
            continue
        docs, q_rows = docs_all[tgt["row"].to_numpy()], src["row"].to_numpy()
        gold = np.arange(src.height)
        hits = {CLEAN: gold_ranks(docs_all[q_rows], docs, gold, block_size) == 1}
        for label, array in noisy.items():
            hits[label] = gold_ranks(array[q_rows], docs, gold, block_size) == 1
        columns = {metric_name(RECALL, CLEAN): hits[CLEAN].astype(np.float64)}
        for label in noisy:
            columns[metric_name(RECALL, label)] = hits[label].astype(np.float64)
            columns[metric_name(DROP, label)] = hits[CLEAN].astype(np.float64) - hits[label]
        query_domains = src["domain"].to_numpy()
        names = [d for d in known if d in (domains or known)] if per_domain else []
        for domain in [*names, ALL_DOMAINS]:
            mask = np.ones(gold.size, bool) if domain == ALL_DOMAINS else query_domains == domain
            if not mask.any():
                continue
            base = {"layer": layer, "src_lang": s, "tgt_lang": t, "domain": domain}
            sub = {name: col[mask] for name, col in columns.items()}
            rows = _summaries(sub, base, bootstrap, seed, boots)
            out += [{**row, "pool": src.height} for row in rows]
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


def perturbed_queries(
    rows: pl.DataFrame,
    kind: str,
    rate: float,
    *,
    seed: int,
    pivot: str | None,
    lexicon: Mapping[str, Sequence[str]] | None,
) -> tuple[pl.DataFrame, np.ndarray]:
    """The query rows of `rows` (id, lang, text, ...) with perturbed texts, and their indices."""
    frame = rows.with_row_index("_row")
    langs = frame["lang"].unique().to_list()
    queries = frame.filter(pl.col("lang").is_in(query_langs(langs, pivot)))
    index = queries["_row"].to_numpy().astype(np.int64)
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
    return noisy, index


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `robustness` analysis: every noise kind at every layer (module docstring)."""
    opts, meta, pivot = inputs.options, inputs.meta, inputs.pivot
    if inputs.embed is None or inputs.texts is None:
        raise ValueError("the robustness analysis needs the encoder (AnalysisInputs.embed)")
    langs = meta["lang"].unique().to_list()
    if not query_langs(langs, pivot) or len(langs) < 2:
        return empty_results()
    kinds = list(opts["noise_kinds"])
    if not any(is_english(lang) for lang in query_langs(langs, pivot)):
        kinds = [k for k in kinds if k != "synonym"]
    lexicon = inputs.lexicon() if "synonym" in kinds and inputs.lexicon is not None else None
    rows = meta.with_columns(pl.Series("text", list(inputs.texts), dtype=pl.String))
    rate = opts["noise_rate"]
    frames: list[pl.DataFrame] = []
    clean_metric = metric_name(RECALL, CLEAN)
    for i, kind in enumerate(kinds):
        label = noise_label(kind, rate)
        noisy, index = perturbed_queries(
            rows, kind, rate, seed=opts["noise_seed"], pivot=pivot, lexicon=lexicon
        )
        perturbed = inputs.embed(noisy, label)
        for layer, clean in inputs.layers.items():
            full = clean.copy()
            full[index] = perturbed[layer]
            frame = robustness_results(
                clean,
                {label: full},
                meta,
                layer=layer,
                pivot=pivot,
                bootstrap=opts["bootstrap"],
                seed=opts["seed"],
            )
            if i > 0:  # the clean reference once, not once per noise
                frame = frame.filter(pl.col("metric") != clean_metric)
            frames.append(frame)
    return pl.concat(frames) if frames else empty_results()
