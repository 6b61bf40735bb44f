"""Robustness figures per variant and the comparison with the baseline, from summary.parquet.

Pure polars on frames plus `analyses.paired`: no model, no file. The unit is the *cell*: the
recall@1 (cosine, no correction) of one (variant, seed, query language, document language,
domain) at the last layer, with the pivot on one side. A cell's language is its non-pivot side;
it is *seen* when training saw it (protocol.train_langs), and its domain is seen when it is in
protocol.train_domains. Every figure is a mean over cells (equal weight), so a per-domain
recall averages the languages and both directions, then the seeds.

Figures (`figure` column): `recall@1` (per domain, per language, and overall "all"),
`worst_domain_recall@1` (the lowest domain mean; `domain` names it), `domain_gap` (seen minus
unseen domains), `lang_gap` (seen minus unseen languages), `domain_spread` (population std of
the domain means), `quadrant_recall@1` (lang and domain "seen"/"unseen"), `lang_probe_acc`,
`domain_probe_acc` and `cross_lang_cka` (last layer, domain "all", means over seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from xrdiag.analyses.paired import CellBootstrap, holm_adjust, paired_difference
from xrdiag.analyses.schema import DEBIASED_CKA, LINEAR_CKA

RECALL = "recall@1|cos|none"
ALL = "all"
CELL_KEYS = ("seed", "src_lang", "tgt_lang", "domain")
_S, _F = pl.String, pl.Float64
FIGURE_SCHEMA = {"variant": _S, "figure": _S, "lang": _S, "domain": _S,
                 "value": _F, "ci_low": _F, "ci_high": _F, "n": pl.Int64}  # fmt: skip
COMPARISON_SCHEMA = {"variant": _S, "baseline": _S, "figure": _S, "lang": _S, "domain": _S,
                     "value": _F, "value_baseline": _F, "delta": _F, "ci_low": _F, "ci_high": _F,
                     "p_value": _F, "p_adjusted": _F, "significant": pl.Boolean}  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """What training saw: the pivot, the training languages and domains."""

    pivot: str
    train_langs: tuple[str, ...]
    train_domains: tuple[str, ...]


def _last_layer(frame: pl.DataFrame) -> pl.DataFrame:
    top = pl.col("layer") == pl.col("layer").max().over("variant", "seed")
    return frame.filter(top)


def recall_cells(summary: pl.DataFrame, protocol: Protocol) -> pl.DataFrame:
    """One row per cell: variant, seed, src_lang, tgt_lang, domain, lang, seen flags, value, n."""
    if summary.height == 0:
        return pl.DataFrame(schema={"variant": pl.String, "seed": pl.Int64, "value": pl.Float64})
    piv = protocol.pivot
    rows = _last_layer(summary.filter(pl.col("analysis") == "retrieval")).filter(
        (pl.col("metric") == RECALL)
        & (pl.col("domain") != ALL)
        & (pl.col("src_lang") != pl.col("tgt_lang"))
        & ((pl.col("src_lang") == piv) | (pl.col("tgt_lang") == piv))
    )
    lang = pl.when(pl.col("src_lang") == piv).then(pl.col("tgt_lang")).otherwise("src_lang")
    return (
        rows.select(
            "variant",
            pl.col("seed").fill_null(-1),
            "src_lang",
            "tgt_lang",
            "domain",
            lang.alias("lang"),
            "value",
            "n",
        )
        .with_columns(
            pl.col("lang").is_in(list(protocol.train_langs)).alias("lang_seen"),
            pl.col("domain").is_in(list(protocol.train_domains)).alias("domain_seen"),
        )
        .sort("variant", *CELL_KEYS)
    )


def _subsets(cells: pl.DataFrame) -> list[tuple[str, str, str, np.ndarray]]:
    """(figure, lang, domain, mask) of every cell-mean figure."""
    out = [("recall@1", ALL, ALL, np.ones(cells.height, bool))]
    dom, lang = cells["domain"].to_numpy(), cells["lang"].to_numpy()
    out += [("recall@1", ALL, d, dom == d) for d in sorted(set(dom))]
    out += [("recall@1", g, ALL, lang == g) for g in sorted(set(lang))]
    ls, ds = cells["lang_seen"].to_numpy(), cells["domain_seen"].to_numpy()
    for lname, lmask in (("seen", ls), ("unseen", ~ls)):
        for dname, dmask in (("seen", ds), ("unseen", ~ds)):
            if (lmask & dmask).any():
                out.append(("quadrant_recall@1", lname, dname, lmask & dmask))
    return out


def _mean(cells_values: np.ndarray, mask: np.ndarray) -> float:
    return float(cells_values[mask].mean()) if mask.any() else float("nan")


def _recall_figures(
    variant: str, cells: pl.DataFrame, n_resamples: int, seed: int
) -> list[dict[str, object]]:
    values, counts = cells["value"].to_numpy(), cells["n"].to_numpy()
    boot = CellBootstrap(
        values, counts, cells["seed"].to_numpy(), n_resamples=n_resamples, seed=seed
    )
    rows: list[dict[str, object]] = []

    def add(figure: str, lang: str, domain: str, value: float, stat: Callable, n: int) -> None:
        low, high = boot.interval(stat)
        fields = (variant, figure, lang, domain, value, low, high, n)
        rows.append(dict(zip(FIGURE_SCHEMA, fields, strict=True)))

    for figure, lang, domain, mask in _subsets(cells):
        stat = lambda b, m=mask: b.subset_means(m)  # noqa: E731
        add(figure, lang, domain, _mean(values, mask), stat, int(counts[mask].sum()))
    dom = cells["domain"].to_numpy()
    names = sorted(set(dom))
    masks = [dom == d for d in names]
    means = np.array([_mean(values, m) for m in masks])

    def by_domain(b: CellBootstrap) -> np.ndarray:
        return np.column_stack([b.subset_means(m) for m in masks])

    worst, total = int(np.argmin(means)), int(counts.sum())
    add("worst_domain_recall@1", ALL, names[worst], float(means[worst]),
        lambda b: by_domain(b).min(axis=1), int(counts[masks[worst]].sum()))  # fmt: skip
    add("domain_spread", ALL, ALL, float(means.std()), lambda b: by_domain(b).std(axis=1), total)
    for figure, flag in (("domain_gap", "domain_seen"), ("lang_gap", "lang_seen")):
        seen = cells[flag].to_numpy()
        if seen.any() and (~seen).any():
            gap = _mean(values, seen) - _mean(values, ~seen)
            add(figure, ALL, ALL, gap, lambda b, s=seen: b.subset_means(s) - b.subset_means(~s),
                total)  # fmt: skip
    return rows


def _seed_figures(
    variant: str, frame: pl.DataFrame, n_resamples: int, seed: int
) -> list[dict[str, object]]:
    """Probe accuracies and cross-language CKA at the last layer: mean over seeds, CI over seeds.

    CKA is the debiased estimator where the results have it (plain linear CKA is inflated at
    the sample sizes of a study's evaluation); older results fall back to the plain one.
    """
    top = _last_layer(frame).filter(pl.col("domain") == ALL)
    cka = DEBIASED_CKA if (top["metric"] == DEBIASED_CKA).any() else LINEAR_CKA
    picks = {
        "lang_probe_acc": top.filter(pl.col("metric") == "lang_probe_acc"),
        "domain_probe_acc": top.filter(pl.col("metric") == "domain_probe_acc"),
        "cross_lang_cka": top.filter(
            (pl.col("metric") == cka) & (pl.col("src_lang") != pl.col("tgt_lang"))
        ),
    }
    rows: list[dict[str, object]] = []
    for figure, picked in picks.items():
        if picked.height == 0:
            continue
        per_seed = picked.group_by(pl.col("seed").fill_null(-1)).agg(pl.col("value").mean())
        vals = per_seed["value"].to_numpy()
        ones = np.ones_like(vals, dtype=np.int64)
        boot = CellBootstrap(vals, ones, per_seed["seed"].to_numpy(), binary=False,
                             n_resamples=n_resamples, seed=seed)  # fmt: skip
        every = np.ones(vals.size, bool)
        low, high = boot.interval(lambda b, m=every: b.subset_means(m))
        fields = (variant, figure, ALL, ALL, float(vals.mean()), low, high, vals.size)
        rows.append(dict(zip(FIGURE_SCHEMA, fields, strict=True)))
    return rows


def robustness_figures(
    summary: pl.DataFrame, protocol: Protocol, *, n_resamples: int = 2000, seed: int = 0
) -> pl.DataFrame:
    """figures.parquet: every figure of every variant (base included) with its CI."""
    rows: list[dict[str, object]] = []
    if summary.height == 0:
        return pl.DataFrame(schema=FIGURE_SCHEMA)
    cells = recall_cells(summary, protocol)
    for variant in summary["variant"].unique(maintain_order=True).to_list():
        mine = cells.filter(pl.col("variant") == variant)
        if mine.height:
            rows += _recall_figures(variant, mine, n_resamples, seed)
        rows += _seed_figures(
            variant, summary.filter(pl.col("variant") == variant), n_resamples, seed
        )
    return pl.DataFrame(rows, schema=FIGURE_SCHEMA) if rows else pl.DataFrame(schema=FIGURE_SCHEMA)


def compare_variants(
    summary: pl.DataFrame,
    protocol: Protocol,
    *,
    baseline: str = "baseline",
    draws: int = 10_000,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """comparison.parquet: each trained variant minus the baseline on the same cells.

    Each recall figure (overall, per domain, per language, per quadrant) is a paired difference
    over the cells both have (same seed, languages, domain); p-values are sign-flip tests and
    `p_adjusted` is Holm across every row of the table.
    """
    if summary.height == 0:
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    cells = recall_cells(summary, protocol)
    base = cells.filter(pl.col("variant") == baseline).select(
        *CELL_KEYS, pl.col("value").alias("b")
    )
    rows: list[dict[str, object]] = []
    others = [
        v
        for v in cells["variant"].unique(maintain_order=True).to_list()
        if v not in (baseline, "base")
    ]
    for variant in others:
        mine = cells.filter(pl.col("variant") == variant)
        paired = mine.join(base, on=list(CELL_KEYS), how="inner")
        if paired.height == 0:
            continue
        a, b = paired["value"].to_numpy(), paired["b"].to_numpy()
        for figure, lang, domain, mask in _subsets(paired):
            res = paired_difference(
                a[mask], b[mask], n_resamples=n_resamples, draws=draws, seed=seed
            )
            rows.append(
                dict(
                    variant=variant,
                    baseline=baseline,
                    figure=figure,
                    lang=lang,
                    domain=domain,
                    value=float(a[mask].mean()),
                    value_baseline=float(b[mask].mean()),
                    delta=res.delta,
                    ci_low=res.ci_low,
                    ci_high=res.ci_high,
                    p_value=res.p_value,
                )
            )
    if not rows:
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    adjusted = holm_adjust([r["p_value"] for r in rows])
    for row, p in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(p)
        row["significant"] = bool(p < alpha)
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)
