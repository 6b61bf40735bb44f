"""xSIM: LASER's error rate of margin-based bitext retrieval, as published FLORES/Tatoeba tables
report it (Artetxe & Schwenk 2019, "Margin-based parallel corpus mining with multilingual
sentence embeddings"; LASER's `xsim` with the ratio margin).

For a source language S and a target language T, over the sentence ids both have: every source
sentence x retrieves the target sentence y of highest ratio margin
    margin(x, y) = cos(x, y) / (m(x) / 2 + m(y) / 2),  m(x) = mean_{z in NN_k(x)} cos(x, z),
with k = 4, NN_k(x) among the target sentences and NN_k(y) among the source sentences (both
directions, as LASER computes it); an error is a retrieved sentence that is not x's translation,
and xsim = 100 * errors / N. Differences from `recall@1|margin|none` are conventions only, and
both are kept so that each reads as its literature does: xSIM is an error rate in percent, ids
are strict (identical texts under two ids count as an error, as in LASER), and a tie counts as
an error (pessimistic, as every rank in xrdiag; LASER's argmax takes the lower index).

The candidate pool of a pair is every T sentence whose id has an S sentence (on a fully
parallel corpus: all of them; on Tatoeba: that pair's sentences); per-domain figures count the
errors of the domain's queries against that same pool. `n` is N, `pool` the candidates. CIs are
seeded percentile bootstraps over queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, summarise_columns
from xrdiag.analyses.corrections import l2_normalise
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.pairs import check_inputs, pair_groups, resolve_pairs, shared_rows
from xrdiag.analyses.schema import ALL_DOMAINS, results_frame
from xrdiag.analyses.topk import knn_means, pair_gold_ranks
from xrdiag.errors import UserError

ANALYSIS = "xsim"
MARGIN_K = 4


def xsim_results(
    embeddings: np.ndarray,
    meta: pl.DataFrame,
    *,
    layer: int,
    pivot: str | None = None,
    margin_k: int = MARGIN_K,
    bootstrap: int = 1000,
    seed: int = 0,
    block_size: int = 4096,
) -> pl.DataFrame:
    """xSIM (percent) for every ordered language pair (or each language to and from `pivot`),
    per domain and for `all`."""
    emb, meta = check_inputs(embeddings, meta)
    if margin_k < 1 or bootstrap < 0:
        raise UserError(f"xsim: margin k {margin_k} must be >= 1 and --bootstrap >= 0")
    present = sorted(meta["lang"].unique().to_list())
    ordered = resolve_pairs(present, "all", pivot)
    unit = l2_normalise(emb)
    out: list[dict[str, Any]] = []
    boots: dict[int, BootstrapMeans] = {}
    for s, t, both in pair_groups(ordered):
        src, tgt = shared_rows(meta, s, t)
        if src.height <= margin_k:
            continue  # too few shared sentences for a k-neighbourhood: no figure
        q, d = unit[src["row"].to_numpy()], unit[tgt["row"].to_numpy()]
        gold = np.arange(src.height)  # both sides sorted by id: the i-th query's gold is i
        means = knn_means(q, d, margin_k, block_size)
        ranks = pair_gold_ranks(
            q, d, gold, scorings=("margin",), margin_means=means, reverse=both,
            block_size=block_size,
        )  # fmt: skip
        directions = [("forward", s, t, src)] + ([("reverse", t, s, tgt)] if both else [])
        for direction, a, b, queries in directions:
            errors = 100.0 * (ranks[(direction, "margin")] > 1)
            domains = queries["domain"].to_numpy()
            for domain in [*sorted(set(domains)), ALL_DOMAINS]:
                mask = np.ones(domains.size, bool) if domain == ALL_DOMAINS else domains == domain
                base = {"analysis": ANALYSIS, "layer": layer, "src_lang": a, "tgt_lang": b,
                        "domain": domain}  # fmt: skip
                rows = summarise_columns({"xsim": errors[mask]}, base, bootstrap, seed, boots)
                out += [{**row, "pool": src.height} for row in rows]
    return results_frame(out)


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `xsim` analysis, at every layer."""
    opts = inputs.options
    frames = [
        xsim_results(
            array,
            inputs.meta,
            layer=layer,
            pivot=inputs.pivot,
            bootstrap=opts["bootstrap"],
            seed=opts["seed"],
        )  # fmt: skip
        for layer, array in inputs.layers.items()
    ]
    return pl.concat(frames)
