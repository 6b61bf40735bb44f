"""Language bias of a multilingual pool: how far apart a sentence's translations rank.

A language-neutral space ranks all translations of a sentence at the top, whatever their
language; a biased one pushes same-language sentences in between or some languages down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, summarise_columns
from xrdiag.analyses.corrections import check_components, corrected_embeddings
from xrdiag.analyses.pairs import check_choice, check_inputs
from xrdiag.analyses.schema import ALL_DOMAINS, CORRECTIONS, metric_name, results_frame
from xrdiag.analyses.topk import rank_spreads, translation_table
from xrdiag.errors import UserError

LANG_BIAS = "lang_bias_rank_spread"


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
    tgt_lang null, domain "all", `pool` the rows each translation is ranked among.
    `queries_per_lang` samples that many queries per language (seeded); the pool stays
    complete. Ids with fewer than two translations (a test set of separate pairs) give none.
    """
    emb, meta = check_inputs(embeddings, meta)
    corrections = check_choice(corrections, CORRECTIONS, "corrections")
    present = sorted(meta["lang"].unique().to_list())
    used = present if languages is None else list(dict.fromkeys(languages))
    for lang in used:
        if lang not in present:
            raise UserError(f"--langs: language {lang!r} not in the data (have {present})")
    check_components(corrections, lir_components, len(used), emb.shape[1])
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
    if not queries:  # no id has two translations here (e.g. Tatoeba's separate pairs)
        return results_frame([])
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
        named = {metric_name(b, *rest.split("|")): v for (b, rest), v in cols.items()}
        base = {"analysis": "retrieval", "layer": layer, "src_lang": lang, "tgt_lang": None,
                "domain": ALL_DOMAINS}  # fmt: skip
        rows = summarise_columns(named, base, bootstrap, seed, boots)
        out += [{**row, "pool": meta.height - 1} for row in rows]
    return results_frame(out)
