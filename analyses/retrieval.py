"""Cross-lingual retrieval: recall@k and MRR per ordered language pair, domain, scoring, correction.

Each query (a row of the source language) must retrieve its gold document, the row of the
target language with the same `id`. Candidate pools are the same for everything compared:
- `pool="common"` (default): a query of any domain is ranked against one pool per language
  pair, every target row whose id also has a source row (on a fully parallel corpus all of
  them; on a test set whose pairs are separate, like Tatoeba, exactly that pair's sentences).
  Per-domain figures then differ only by how hard the domain's queries are, never by how many
  candidates a domain happens to have.
- `pool="domain"`: equal-size, seeded within-domain pools of `pool_size` ids, drawn
  `pool_repeats` times; a figure averages the draws and its interval resamples query ids as
  clusters (an id drawn in several pools moves with all its outcomes), so the draw-to-draw
  variation is in it. Domain `all` keeps the common pool.
Every row records its `pool` (candidates per query: chance recall@k is k / pool) and `n`.

Ranks are pessimistic (`analyses/topk.py`): a gold tied with other candidates ranks after them,
on every path (both directions, blocked or not). With `duplicates="text"` (what `xrdiag eval`
does by default) a candidate whose text is identical to the gold's counts as the gold: TICO-19
carries hundreds of sentences under two ids, and retrieving the word-for-word same sentence is
not an error; `duplicates="id"` keeps strict ids.

Metric names `f"{base}|{scoring}|{correction}"` (`analyses/schema.py`): base `recall@<k>`, `mrr`;
scoring `cos`, or the ratio margin of Artetxe & Schwenk (2019) with k = `margin_k`,
margin(x, y) = cos(x, y) / (mean_{z in NN_k(x)} cos(x, z) / 2 + mean_{z in NN_k(y)} cos(y, z) / 2)
with NN_k(x) among the pool and NN_k(y) among the source rows of the pair; corrections in
`analyses/corrections.py`. CIs are seeded percentile bootstraps over queries; every pair and
domain reuses the seed, so comparisons between corrections see the same resamples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, percentile_interval, summarise_columns
from xrdiag.analyses.corrections import check_components, corrected_embeddings
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.pairs import check_choice, check_inputs, pair_groups, resolve_pairs
from xrdiag.analyses.schema import (
    ALL_DOMAINS,
    CORRECTIONS,
    SCORINGS,
    metric_name,
    results_frame,
)
from xrdiag.analyses.topk import (
    comparable,
    knn_means,
    margin_denominators,
    pair_gold_ranks,
    tie_floor,
)
from xrdiag.errors import UserError

POOLS = ("common", "domain")
DUPLICATES = ("text", "id")
QUERY_SCHEMA = {
    "layer": pl.Int32, "src_lang": pl.String, "tgt_lang": pl.String, "domain": pl.String,
    "id": pl.String, "rank": pl.Int64, "pool": pl.Int64,
}  # fmt: skip


@dataclass(frozen=True)
class QueryRanks:
    """Pessimistic gold ranks of one direction for one scoring and correction."""

    src: str
    tgt: str
    scoring: str
    correction: str
    ids: np.ndarray
    domains: np.ndarray
    ranks: np.ndarray
    pool: int
    draw: int = 0  # which within-domain pool (pool="domain"); 0 for the common pool


@dataclass(frozen=True)
class _Setup:
    meta: pl.DataFrame
    spaces: dict[str, np.ndarray]
    texts: np.ndarray | None
    scorings: list[str]
    margin_k: int
    block_size: int


def _equivalents(texts: np.ndarray) -> dict[int, np.ndarray]:
    """For each candidate whose text occurs more than once in the pool: all its equals."""
    keys = np.asarray([t.strip() for t in texts], dtype=object)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    out: dict[int, np.ndarray] = {}
    for group in np.nonzero(counts > 1)[0]:
        members = np.nonzero(inverse == group)[0]
        for m in members:
            out[int(m)] = members
    return out


def _text_aware(
    ranks: np.ndarray, q: np.ndarray, d: np.ndarray, equal: dict[int, np.ndarray],
    scoring: str, hq: np.ndarray | None, hd: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    """Ranks where every candidate with the gold's text counts as the gold (pessimistic)."""
    out = ranks.copy()
    for i, group in equal.items():  # query i's gold is candidate i (pools are aligned by id)
        scores = d @ q[i]
        if scoring == "margin" and hq is not None and hd is not None:
            with np.errstate(divide="ignore", invalid="ignore"):  # NaN: see comparable()
                scores = scores / (hq[i] + hd)
        scores = comparable(scores)
        best = tie_floor(np.max(scores[group]))
        others = np.ones(scores.size, bool)
        others[group] = False
        out[i] = int(np.count_nonzero(scores[others] >= best)) + 1
    return out


def _ranks_of_pool(
    setup: _Setup, src: pl.DataFrame, tgt: pl.DataFrame, both: bool, draw: int = 0
) -> Iterator[QueryRanks]:
    """Ranks of the aligned rows `src` and `tgt` (i-th is the i-th's translation), both ways."""
    s, t = str(src["lang"][0]), str(tgt["lang"][0])
    n = src.height
    gold = np.arange(n)
    for corr, space in setup.spaces.items():
        q, d = space[src["row"].to_numpy()], space[tgt["row"].to_numpy()]
        means = None
        if "margin" in setup.scorings:
            means = knn_means(q, d, setup.margin_k, setup.block_size)
        ranks = pair_gold_ranks(
            q, d, gold, scorings=setup.scorings, margin_means=means, reverse=both,
            block_size=setup.block_size,
        )  # fmt: skip
        hq, hd = margin_denominators(*means) if means is not None else (None, None)
        sides = [("forward", s, t, src, q, d, hq, hd, tgt)]
        if both:
            sides.append(("reverse", t, s, tgt, d, q, hd, hq, src))
        for direction, a, b, queries, qv, dv, qh, dh, pool_rows in sides:
            equal = {}
            if setup.texts is not None:
                equal = _equivalents(setup.texts[pool_rows["row"].to_numpy()])
            for scoring in setup.scorings:
                r = ranks[(direction, scoring)]
                if equal:
                    r = _text_aware(r, qv, dv, equal, scoring, qh, dh)
                yield QueryRanks(a, b, scoring, corr, queries["id"].to_numpy(),
                                 queries["domain"].to_numpy(), r, n, draw)  # fmt: skip


def _stable(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def query_ranks(
    embeddings: np.ndarray,
    meta: pl.DataFrame,
    *,
    pairs: str | Sequence[tuple[str, str]] = "all",
    pivot: str | None = None,
    scorings: Sequence[str] = SCORINGS,
    corrections: Sequence[str] = CORRECTIONS,
    lir_components: int = 1,
    margin_k: int = 4,
    max_k: int = 1,
    pool: str = "common",
    pool_size: int | None = None,
    pool_repeats: int = 5,
    texts: Sequence[str] | None = None,
    duplicates: str = "id",
    seed: int = 0,
    block_size: int = 4096,
) -> list[QueryRanks]:
    """Every query's pessimistic gold rank, per direction, scoring and correction."""
    emb, meta = check_inputs(embeddings, meta)
    scorings = check_choice(scorings, SCORINGS, "scorings")
    corrections = check_choice(corrections, CORRECTIONS, "corrections")
    check_choice([pool], POOLS, "--pool")
    check_choice([duplicates], DUPLICATES, "--duplicates")
    if margin_k < 1 or block_size < 1:
        raise UserError("--margin-k and --block-size must be >= 1")
    if duplicates == "text" and (texts is None or len(texts) != meta.height):
        raise UserError("--duplicates text: the sentences' texts are needed (one per row)")
    present = sorted(meta["lang"].unique().to_list())
    ordered = resolve_pairs(present, pairs, pivot)
    used = sorted({lang for pair in ordered for lang in pair})
    check_components(corrections, lir_components, len(used), emb.shape[1])
    meta = meta.filter(pl.col("lang").is_in(used))
    picked, langs = emb[meta["row"].to_numpy()], meta["lang"].to_numpy()
    text_arr = None if duplicates == "id" else np.asarray(texts, dtype=object)[meta["row"]]
    meta = meta.with_columns(row=pl.int_range(pl.len(), dtype=pl.Int64))
    spaces = {c: corrected_embeddings(picked, langs, c, lir_components) for c in corrections}
    setup = _Setup(meta, spaces, text_arr, scorings, margin_k, block_size)
    tasks = []  # (src rows, tgt rows, both, draw): validated before any heavy work
    for s, t, both in pair_groups(ordered):
        src = meta.filter(pl.col("lang") == s)
        tgt = meta.filter(pl.col("lang") == t)
        shared = np.intersect1d(src["code"].to_numpy(), tgt["code"].to_numpy())
        if shared.size == 0:
            continue
        aligned = [x.filter(pl.col("code").is_in(shared)).sort("code") for x in (src, tgt)]
        _check_pool(f"{s}-{t}", shared.size, max_k, margin_k, "margin" in scorings)
        tasks.append((*aligned, both, 0))
        if pool == "domain":
            tasks += _domain_draws(aligned, both, pool_size, pool_repeats, seed, max_k, setup)
    out: list[QueryRanks] = []
    for src, tgt, both, draw in tasks:
        out += list(_ranks_of_pool(setup, src, tgt, both, draw))
    return out


def _check_pool(what: str, size: int, max_k: int, margin_k: int, margin: bool) -> None:
    for need, flag in ((max_k, "--ks"), (margin_k if margin else 0, "--margin-k")):
        if need > size:
            raise UserError(
                f"{flag}: {need} is larger than the pool of {size} candidates of {what}; "
                "lower it or evaluate more sentences"
            )


def _domain_draws(
    aligned: list[pl.DataFrame], both: bool, size: int | None, repeats: int, seed: int,
    max_k: int, setup: _Setup,
) -> list[tuple[pl.DataFrame, pl.DataFrame, bool, int]]:  # fmt: skip
    """`repeats` seeded draws of `size` ids in each domain (draw numbers from 1)."""
    src, tgt = aligned
    counts = src.group_by("domain").len()
    smallest = int(counts["len"].min())  # type: ignore[arg-type]
    size = smallest if size is None else size
    if repeats < 1 or size < 2 or size > smallest:
        small = counts.sort("len").row(0)
        raise UserError(
            f"--pool-size {size} / --pool-repeats {repeats}: expected 2 <= size <= the smallest "
            f"domain ({small[0]!r}, {small[1]} sentences) and repeats >= 1"
        )
    _check_pool("a domain pool", size, max_k, setup.margin_k, "margin" in setup.scorings)
    draws = []
    for domain in sorted(counts["domain"].to_list()):
        idx = np.nonzero(src["domain"].to_numpy() == domain)[0]
        for r in range(repeats):
            rng = np.random.default_rng([seed, r, _stable(domain)])
            pick = np.sort(rng.choice(idx, size=size, replace=False))
            draws.append((src[pick], tgt[pick], both, r + 1))
    return draws


def _cluster_interval(
    ids: np.ndarray, values: np.ndarray, bootstrap: int, seed: int
) -> tuple[float | None, float | None]:
    """Percentile interval of a mean whose queries repeat across pool draws: ids as clusters."""
    if not bootstrap:
        return None, None
    _, inverse = np.unique(ids, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, sums.size, size=(bootstrap, sums.size))
    stats = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = percentile_interval(stats)
    return float(low), float(high)


def summarise_ranks(
    ranks: Sequence[QueryRanks],
    *,
    layer: int,
    ks: Sequence[int],
    domains: Sequence[str] | None = None,
    per_domain: bool = True,
    bootstrap: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """recall@k and MRR rows (value, CI, n, pool) of every direction and domain."""
    groups: dict[tuple[str, str, str, bool], dict[str, tuple[np.ndarray, np.ndarray, int]]] = {}
    drawn_mode = any(qr.draw for qr in ranks)  # per-domain figures come from the draws
    for qr in ranks:
        names = sorted(set(qr.domains)) if per_domain else []
        if domains is not None:
            names = [d for d in names if d in domains]
        scopes = [(d, qr.domains == d) for d in names] if (qr.draw or not drawn_mode) else []
        if qr.draw == 0:
            scopes.insert(0, (ALL_DOMAINS, np.ones(qr.ranks.size, bool)))
        for domain, mask in scopes:
            if not mask.any():
                continue
            cols = groups.setdefault((qr.src, qr.tgt, domain, qr.draw > 0), {})
            r = qr.ranks[mask].astype(np.float64)
            for k in ks:
                _add(cols, metric_name(f"recall@{k}", qr.scoring, qr.correction), r <= k, qr, mask)
            _add(cols, metric_name("mrr", qr.scoring, qr.correction), 1.0 / r, qr, mask)
    out: list[dict[str, Any]] = []
    boots: dict[int, BootstrapMeans] = {}
    for (src, tgt, domain, drawn), cols in groups.items():
        base = {"analysis": "retrieval", "layer": layer, "src_lang": src, "tgt_lang": tgt,
                "domain": domain}  # fmt: skip
        if not drawn:
            values = {name: v for name, (v, _, _) in cols.items()}
            pool = next(iter(cols.values()))[2]
            out += [{**row, "pool": pool}
                    for row in summarise_columns(values, base, bootstrap, seed, boots)]  # fmt: skip
            continue
        for name, (v, ids, pool) in cols.items():
            low, high = _cluster_interval(ids, v, bootstrap, seed)
            out.append({**base, "metric": name, "value": float(v.mean()), "ci_low": low,
                        "ci_high": high, "n": int(np.unique(ids).size), "pool": pool})  # fmt: skip
    return results_frame(out)


def _add(
    cols: dict[str, tuple[np.ndarray, np.ndarray, int]],
    name: str,
    values: np.ndarray,
    qr: QueryRanks,
    mask: np.ndarray,
) -> None:
    """Append one draw's per-query values to a metric column (draws stack)."""
    v = np.asarray(values, dtype=np.float64)
    ids = qr.ids[mask]
    if name in cols:
        old_v, old_ids, _ = cols[name]
        v, ids = np.concatenate([old_v, v]), np.concatenate([old_ids, ids])
    pool = qr.pool
    cols[name] = (v, ids, pool)


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
    pool: str = "common",
    pool_size: int | None = None,
    pool_repeats: int = 5,
    texts: Sequence[str] | None = None,
    duplicates: str = "id",
    bootstrap: int = 1000,
    seed: int = 0,
    block_size: int = 4096,
) -> pl.DataFrame:
    """recall@k and MRR for every ordered language pair, domain, scoring and correction.

    `pairs="all"`: every ordered pair of languages present; `pivot`: every language against
    the pivot in both directions. `domains` restricts the per-domain results (the "all" figure
    is always reported). `bootstrap=0` leaves the CI empty.
    """
    ks = sorted(set(ks))
    if not ks or any(not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise UserError(f"--ks: expected positive integers, got {ks}")
    if bootstrap < 0:
        raise UserError("--bootstrap must be >= 0")
    if domains is not None:
        present = set(meta["domain"].unique().to_list())
        missing = [d for d in domains if d not in present]
        if missing:
            raise UserError(f"--domains: {missing[0]!r} not in the data (have {sorted(present)})")
    ranks = query_ranks(
        embeddings, meta, pairs=pairs, pivot=pivot, scorings=scorings, corrections=corrections,
        lir_components=lir_components, margin_k=margin_k, max_k=ks[-1], pool=pool,
        pool_size=pool_size, pool_repeats=pool_repeats, texts=texts, duplicates=duplicates,
        seed=seed, block_size=block_size,
    )  # fmt: skip
    return summarise_ranks(
        ranks, layer=layer, ks=ks, domains=domains, per_domain=per_domain,
        bootstrap=bootstrap, seed=seed,
    )  # fmt: skip


def query_frame(ranks: Sequence[QueryRanks], layer: int) -> pl.DataFrame:
    """Per-query gold ranks under cosine without correction (queries.parquet): the unit a
    study resamples. Common pool only."""
    parts = [
        pl.DataFrame(
            {
                "layer": np.full(qr.ranks.size, layer),
                "src_lang": qr.src,
                "tgt_lang": qr.tgt,
                "domain": qr.domains,
                "id": qr.ids,
                "rank": qr.ranks,
                "pool": qr.pool,
            },
            schema=QUERY_SCHEMA,
        )  # fmt: skip
        for qr in ranks
        if qr.draw == 0 and qr.scoring == "cos" and qr.correction == "none"
    ]
    return pl.concat(parts) if parts else pl.DataFrame(schema=QUERY_SCHEMA)


def analyse(inputs: AnalysisInputs) -> dict[str, pl.DataFrame]:
    """The registered `retrieval` analysis: recall@k and MRR per layer, language bias, and the
    per-query ranks of the primary figure (queries.parquet)."""
    from xrdiag.analyses.language_bias import language_bias

    opts, meta = inputs.options, inputs.meta
    ks = sorted(set(opts["ks"]))
    frames, queries = [], []
    for layer, array in inputs.layers.items():
        ranks = query_ranks(
            array, meta, pivot=inputs.pivot, lir_components=opts["lir_components"],
            margin_k=opts["margin_k"], max_k=ks[-1], pool=opts["pool"],
            pool_size=opts["pool_size"], pool_repeats=opts["pool_repeats"],
            texts=inputs.texts, duplicates=opts["duplicates"], seed=opts["seed"],
            block_size=opts["block_size"],
        )  # fmt: skip
        frames.append(summarise_ranks(ranks, layer=layer, ks=ks, bootstrap=opts["bootstrap"],
                                      seed=opts["seed"]))  # fmt: skip
        queries.append(query_frame(ranks, layer))
        if meta["lang"].n_unique() > 2:
            frames.append(
                language_bias(
                    array,
                    meta,
                    layer=layer,
                    lir_components=opts["lir_components"],
                    queries_per_lang=opts["bias_queries_per_lang"],
                    bootstrap=opts["bootstrap"],
                    seed=opts["seed"],
                    block_size=opts["block_size"],
                )  # fmt: skip
            )
    return {"results": pl.concat(frames), "queries": pl.concat(queries)}
