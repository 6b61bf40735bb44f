"""Cross-lingual retrieval diagnostics: recall@k, MRR and language bias per language pair, domain.

Each query (a row of the source language) must retrieve its gold document, the row of the
target language with the same `id`, from a candidate pool of target-language rows: the rows of
one domain (per-domain results) or all of them (domain "all"). Queries without a gold row are
skipped; `n` counts the queries used. Ranks are pessimistic (`analyses/topk.py`): a gold
document tied with others is ranked after them.

Metric names encode scoring and correction, always as `f"{base}|{scoring}|{correction}"`:
base in `recall@<k>`, `mrr`, `lang_bias_rank_spread`; scoring in `cos`, `margin`; correction in
`none`, `center`, `lir` (e.g. `recall@1|margin|center`); `analyses.schema` owns the vocabulary.

Scorings: cosine, and the ratio margin of Artetxe & Schwenk (2019) with k = `margin_k`:
margin(x, y) = cos(x, y) / (mean_{z in NN_k(x)} cos(x, z) / 2 + mean_{z in NN_k(y)} cos(y, z) / 2),
where NN_k(x) are x's k nearest target-pool rows and NN_k(y) are y's k nearest source-pool
rows (all source rows of the domain, gold or not).

Corrections, applied to the raw embeddings before L2 normalisation, computed once over all rows
(every domain) of the languages in use, so per-domain and "all" results share one space:
- `center`: subtract each language's mean vector (Libovický et al., 2020).
- `lir`: language information removal (Yang et al., 2021) in the language-mean form of Xie et
  al. (2022, LSAR): stack the per-language mean vectors, centre them across languages, and
  project every embedding off their top-r right singular vectors. We centre the means because
  the top direction of the raw means is the mean shared by all languages, which is not
  language information; the centred means span only the directions along which languages differ.

CIs are seeded percentile bootstraps over queries (`analyses/bootstrap.py`); every pair and
domain reuses the same seed, so comparisons between corrections see the same resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, summarise_columns
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.schema import (
    ALL_DOMAINS,
    CORRECTIONS,
    SCORINGS,
    metric_name,
    results_frame,
)
from xrdiag.analyses.topk import knn_means, pair_gold_ranks, rank_spreads, translation_table
from xrdiag.errors import UserError

LANG_BIAS = "lang_bias_rank_spread"


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32 (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _language_means(x: np.ndarray, langs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row language index, per-language mean vectors) in float64."""
    names, inverse = np.unique(langs, return_inverse=True)
    return inverse, np.stack([x[inverse == i].mean(axis=0) for i in range(names.size)])


def center_languages(x: np.ndarray, langs: np.ndarray) -> np.ndarray:
    """Subtract each language's mean vector from its rows (Libovický et al., 2020)."""
    x = np.asarray(x, dtype=np.float64)
    inverse, means = _language_means(x, langs)
    return x - means[inverse]


def remove_language_subspace(x: np.ndarray, langs: np.ndarray, components: int) -> np.ndarray:
    """Project rows off the top singular directions of the centred language means (LIR/LSAR)."""
    x = np.asarray(x, dtype=np.float64)
    _, means = _language_means(x, langs)
    centred = means - means.mean(axis=0)
    basis = np.linalg.svd(centred, full_matrices=False)[2][:components]
    return x - (x @ basis.T) @ basis


def corrected_embeddings(
    x: np.ndarray, langs: np.ndarray, correction: str, lir_components: int = 1
) -> np.ndarray:
    """Apply one correction ("none", "center", "lir") and L2-normalise."""
    if correction == "center":
        x = center_languages(x, langs)
    elif correction == "lir":
        x = remove_language_subspace(x, langs, lir_components)
    elif correction != "none":
        raise UserError(f"--correction: unknown correction {correction!r}; expected {CORRECTIONS}")
    return l2_normalise(x)


def _check_inputs(embeddings: np.ndarray, meta: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame]:
    """Validate shapes and metadata; return float32 embeddings and meta with integer id codes."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != meta.height:
        raise UserError(f"embeddings: expected shape [{meta.height}, dim], got {emb.shape}")
    if not np.isfinite(emb).all():
        raise UserError("embeddings: contain NaN or infinite values (expected finite floats)")
    for col in ("id", "lang", "domain"):
        if col not in meta.columns:
            raise UserError(f"metadata: column {col!r} is missing (expected id, lang, domain)")
        if meta[col].null_count():
            raise UserError(f"metadata: column {col!r} has empty values (expected no nulls)")
    ids, codes = np.unique(meta["id"].cast(pl.String).to_numpy(), return_inverse=True)
    meta = meta.select(
        pl.col("lang").cast(pl.String), pl.col("domain").cast(pl.String)
    ).with_columns(
        code=pl.Series(codes.astype(np.int64)), row=pl.int_range(pl.len(), dtype=pl.Int64)
    )
    dup = meta.filter(pl.int_range(pl.len()).over("lang", "code") == 1)
    if dup.height:
        lang, code, row = dup.sort("row").select("lang", "code", "row").row(0)
        first = meta.filter((pl.col("lang") == lang) & (pl.col("code") == code))["row"][0]
        raise UserError(
            f"metadata: row {row + 1}, column 'id': id {str(ids[code])!r} already appears in "
            f"row {first + 1} for language {lang!r} (expected one row per id and language)"
        )
    return emb.astype(np.float32, copy=False), meta


def _check_choice(values: Sequence[str], allowed: Sequence[str], flag: str) -> list[str]:
    """Validate a subset of named options; keep order, drop duplicates."""
    values = list(dict.fromkeys([values] if isinstance(values, str) else values))
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise UserError(
            f"{flag}: unknown or empty choice {bad or values}; expected some of {allowed}"
        )
    return values


def _resolve_pairs(
    present: list[str], pairs: str | Sequence[tuple[str, str]], pivot: str | None
) -> list[tuple[str, str]]:
    """The ordered (query, document) language pairs to evaluate."""
    known = set(present)
    if pivot is not None:
        if not isinstance(pairs, str):
            raise UserError("--pivot: give either a pivot language or explicit pairs, not both")
        if pivot not in known:
            raise UserError(f"--pivot: language {pivot!r} not in the data (have {present})")
        return [p for lang in present if lang != pivot for p in ((lang, pivot), (pivot, lang))]
    if isinstance(pairs, str):
        if pairs != "all":
            raise UserError(f"--pairs: expected 'all' or a list of (src, tgt) pairs, got {pairs!r}")
        return [(s, t) for s in present for t in present if s != t]
    out = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise UserError(f"--pairs: {pair!r} is not a pair of two different languages")
        for lang in pair:
            if lang not in known:
                raise UserError(f"--pairs: language {lang!r} not in the data (have {present})")
        out.append((pair[0], pair[1]))
    return list(dict.fromkeys(out))


def _resolve_domains(
    present: list[str], per_domain: bool, domains: Sequence[str] | None
) -> list[str]:
    """Domains to report: the requested (or all) domains, then "all"."""
    if domains is not None:
        missing = [d for d in domains if d not in present]
        if missing:
            raise UserError(f"--domain: {missing[0]!r} not in the data (have {present})")
        return [*dict.fromkeys(domains), ALL_DOMAINS]
    return [*present, ALL_DOMAINS] if per_domain else [ALL_DOMAINS]


def _domain_rows(meta: pl.DataFrame, domain: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per language: (row indices, id codes) of its rows in `domain` ("all": every row)."""
    sub = meta if domain == ALL_DOMAINS else meta.filter(pl.col("domain") == domain)
    out = {}
    for lang in sorted(sub["lang"].unique().to_list()):
        part = sub.filter(pl.col("lang") == lang).sort("row")
        out[lang] = (part["row"].to_numpy(), part["code"].to_numpy())
    return out


def _gold(src_codes: np.ndarray, tgt_codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Index of each source row's translation among the target rows, -1 where none."""
    where = np.full(n_codes, -1, dtype=np.int64)
    where[tgt_codes] = np.arange(tgt_codes.size)
    return where[src_codes]


def _check_pool(lang: str, domain: str, pool: int, need: int, flag: str) -> None:
    if need > pool:
        raise UserError(
            f"{flag}: {need} is larger than the pool of {pool} {lang!r} rows in domain "
            f"{domain!r}; lower it or leave that domain out"
        )


def _pair_groups(ordered: list[tuple[str, str]]) -> list[tuple[str, str, bool]]:
    """Unordered groups (s, t, also_reverse): one similarity pass serves both directions."""
    wanted, seen, groups = set(ordered), set(), []
    for s, t in ordered:
        if frozenset((s, t)) not in seen:
            seen.add(frozenset((s, t)))
            groups.append((s, t, (t, s) in wanted))
    return groups


def _base(layer: int, src: str, tgt: str | None, domain: str) -> dict[str, Any]:
    """The identifying columns of a retrieval result row."""
    return {
        "analysis": "retrieval",
        "layer": layer,
        "src_lang": src,
        "tgt_lang": tgt,
        "domain": domain,
    }


def _summaries(
    per_query: dict[tuple[str, str], np.ndarray],
    base: dict[str, Any],
    bootstrap: int,
    seed: int,
    boots: dict[int, BootstrapMeans],
) -> list[dict[str, Any]]:
    """Result rows (value, CI, n) for per-query value columns that share their queries."""
    named = {metric_name(b, *rest.split("|")): v for (b, rest), v in per_query.items()}
    return summarise_columns(named, base, bootstrap, seed, boots)


def retrieval_results(
    embeddings: np.ndarray,
    meta: pl.DataFrame,
    *,
    layer: int,
    pairs: str | Sequence[tuple[str, str]] = "all",
    pivot: str | None = None,
    ks: Sequence[int] = (1, 5, 10),
    scorings: Sequence[str] = SCORINGS,
    corrections: Sequence[str] = CORRECTIONS,
    lir_components: int = 1,
    margin_k: int = 4,
    per_domain: bool = True,
    domains: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    block_size: int = 4096,
) -> pl.DataFrame:
    """recall@k and MRR for every ordered language pair, domain, scoring and correction.

    `pairs="all"`: every ordered pair of languages present; `pivot`: every language against
    the pivot in both directions. `domains` restricts the per-domain results (the "all" pool is
    always reported). `bootstrap=0` leaves the CI empty.
    """
    emb, meta = _check_inputs(embeddings, meta)
    scorings = _check_choice(scorings, SCORINGS, "--scoring")
    corrections = _check_choice(corrections, CORRECTIONS, "--correction")
    ks = sorted(set(ks))
    if not ks or any(not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise UserError(f"--ks: expected positive integers, got {ks}")
    if margin_k < 1 or bootstrap < 0 or block_size < 1:
        raise UserError("--margin-k and --block-size must be >= 1 and --bootstrap >= 0")
    present = sorted(meta["lang"].unique().to_list())
    ordered = _resolve_pairs(present, pairs, pivot)
    used = sorted({lang for pair in ordered for lang in pair})
    if "lir" in corrections and not 1 <= lir_components < len(used):
        raise UserError(
            f"--lir-components: {lir_components} must be between 1 and the number of "
            f"languages minus one ({len(used) - 1})"
        )
    domain_list = _resolve_domains(sorted(meta["domain"].unique().to_list()), per_domain, domains)
    meta = meta.filter(pl.col("lang").is_in(used))
    picked, langs = emb[meta["row"].to_numpy()], meta["lang"].to_numpy()
    meta = meta.with_columns(row=pl.int_range(pl.len(), dtype=pl.Int64))
    n_codes = int(meta["code"].max()) + 1
    groups = _pair_groups(ordered)
    tasks = []  # (domain, s, t, both, rows_s, rows_t, gold), validated before any heavy work
    for domain in domain_list:
        rows = _domain_rows(meta, domain)
        for s, t, both in groups:
            if s not in rows or t not in rows:
                continue
            gold = _gold(rows[s][1], rows[t][1], n_codes)
            if (gold >= 0).any():
                for lang in (s, t):
                    if lang == t or both:  # the pool of each direction evaluated
                        _check_pool(lang, domain, rows[lang][0].size, ks[-1], "--ks")
                    if "margin" in scorings:
                        _check_pool(lang, domain, rows[lang][0].size, margin_k, "--margin-k")
                tasks.append((domain, s, t, both, rows[s][0], rows[t][0], gold))
    spaces = {c: corrected_embeddings(picked, langs, c, lir_components) for c in corrections}
    out: list[dict[str, Any]] = []
    boots: dict[int, BootstrapMeans] = {}
    for domain, s, t, both, rows_s, rows_t, gold in tasks:
        per_dir: dict[tuple[str, str], dict[tuple[str, str], np.ndarray]] = {}
        for corr in corrections:
            q, d = spaces[corr][rows_s], spaces[corr][rows_t]
            means = knn_means(q, d, margin_k, block_size) if "margin" in scorings else None
            ranks = pair_gold_ranks(
                q, d, gold, scorings=scorings, margin_means=means, reverse=both,
                block_size=block_size,
            )  # fmt: skip
            for (direction, scoring), r in ranks.items():
                r = r[r > 0].astype(np.float64)
                cols = per_dir.setdefault((s, t) if direction == "forward" else (t, s), {})
                for k in ks:
                    cols[(f"recall@{k}", f"{scoring}|{corr}")] = (r <= k).astype(np.float64)
                cols[("mrr", f"{scoring}|{corr}")] = 1.0 / r
        for (src, tgt), cols in per_dir.items():
            out.extend(_summaries(cols, _base(layer, src, tgt, domain), bootstrap, seed, boots))
    return results_frame(out)


def language_bias(
    embeddings: np.ndarray,
    meta: pl.DataFrame,
    *,
    layer: int,
    languages: Sequence[str] | None = None,
    corrections: Sequence[str] = CORRECTIONS,
    lir_components: int = 1,
    queries_per_lang: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    block_size: int = 4096,
) -> pl.DataFrame:
    """Language bias in a multilingual pool: spread of the ranks of a query's translations.

    Pool = every row of every language in use. For each query (a row whose id has at least two
    rows in other languages) rank each translation among all pool rows but the query itself
    (pessimistic ties); the spread is max rank - min rank. Its floor is the number of
    translations minus one (they take the top ranks); same-language sentences pushed between
    the translations, or some languages' translations pushed down, widen it. Reported per
    query language as the mean spread, metric `lang_bias_rank_spread|cos|<correction>`,
    tgt_lang null, domain "all". `queries_per_lang` samples that many queries per language
    (seeded); the pool stays complete.
    """
    emb, meta = _check_inputs(embeddings, meta)
    corrections = _check_choice(corrections, CORRECTIONS, "--correction")
    present = sorted(meta["lang"].unique().to_list())
    used = present if languages is None else list(dict.fromkeys(languages))
    for lang in used:
        if lang not in present:
            raise UserError(f"--languages: language {lang!r} not in the data (have {present})")
    if "lir" in corrections and not 1 <= lir_components < len(used):
        raise UserError(f"--lir-components: {lir_components} must be in [1, {len(used) - 1}]")
    if bootstrap < 0 or block_size < 1:
        raise UserError("--bootstrap must be >= 0 and --block-size >= 1")
    meta = meta.filter(pl.col("lang").is_in(used))
    langs, codes = meta["lang"].to_numpy(), meta["code"].to_numpy()
    table = translation_table(codes)
    eligible = (table >= 0).sum(axis=1) >= 2
    rng = np.random.default_rng(seed)
    queries: dict[str, np.ndarray] = {}
    for lang in sorted(used):
        rows = np.nonzero(eligible & (langs == lang))[0]
        if queries_per_lang is not None and rows.size > queries_per_lang:
            rows = np.sort(rng.choice(rows, size=queries_per_lang, replace=False))
        if rows.size:
            queries[lang] = rows
    picked = emb[meta["row"].to_numpy()]
    all_rows = np.concatenate(list(queries.values())) if queries else np.zeros(0, np.int64)
    spreads: dict[str, dict[tuple[str, str], np.ndarray]] = {lang: {} for lang in queries}
    for corr in corrections:
        pool = corrected_embeddings(picked, langs, corr, lir_components)
        values = rank_spreads(pool, all_rows, table, block_size)
        parts = np.split(values, np.cumsum([r.size for r in queries.values()])[:-1])
        for lang, part in zip(queries, parts, strict=True):
            spreads[lang][(LANG_BIAS, f"cos|{corr}")] = part
    out: list[dict[str, Any]] = []
    boots: dict[int, BootstrapMeans] = {}
    for lang, cols in spreads.items():
        out.extend(_summaries(cols, _base(layer, lang, None, ALL_DOMAINS), bootstrap, seed, boots))
    return results_frame(out)


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `retrieval` analysis: recall@k and MRR per layer, plus language bias."""
    opts, meta = inputs.options, inputs.meta
    frames = []
    for layer, array in inputs.layers.items():
        common = {"layer": layer, "bootstrap": opts["bootstrap"], "seed": opts["seed"]}
        frames.append(retrieval_results(array, meta, pivot=inputs.pivot, ks=opts["ks"], **common))
        if meta["lang"].n_unique() > 2:
            frames.append(
                language_bias(array, meta, queries_per_lang=opts["bias_queries_per_lang"], **common)
            )
    return pl.concat(frames)
