"""Wide pivots of the long results that people actually read; they pick and average, never compute.

Every table here is a reshaping of rows the engine wrote: recall@1 by query language x domain,
CKA language x language per layer, probe accuracy and mean cross-language CKA by layer, the
eval summary. A run's training curves are in run_tables.py, a study's variant table in
study_tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from xrdiag.analyses.schema import DEBIASED_CKA, LINEAR_CKA, PRIMARY_RECALL, metric_name

RECALL_BASE = "recall@1"
PROBE_METRICS = ("lang_probe_acc", "domain_probe_acc")
ALL = "all"
MEAN = "mean"  # retrieval into every other language, averaged


def primary_metric(results: pl.DataFrame, base: str = RECALL_BASE) -> str | None:
    """The plain form of a retrieval metric (`recall@1|cos|none`), else its first variant."""
    names = sorted(
        m
        for m in results.filter(pl.col("analysis") == "retrieval")["metric"].unique().to_list()
        if m == base or m.startswith(base + "|")
    )
    for preferred in (f"{base}|cos|none", base):
        if preferred in names:
            return preferred
    return names[0] if names else None


def top_layer(results: pl.DataFrame) -> int | None:
    """The deepest layer with results (the one the headline figures are read at)."""
    layers = results["layer"].drop_nulls()
    return int(layers.max()) if layers.len() else None  # type: ignore[arg-type]


def domains_order(domains: Sequence[str]) -> list[str]:
    """Domains sorted, with `all` last."""
    return sorted(d for d in set(domains) if d != ALL) + ([ALL] if ALL in domains else [])


def recall_lang_domain(results: pl.DataFrame, layer: int | None = None) -> pl.DataFrame:
    """Recall@1 of each query language (mean over target languages) per domain; `all` last.

    Columns: `lang`, one per domain. Empty frame when there are no retrieval rows.
    """
    metric = primary_metric(results)
    layer = top_layer(results) if layer is None else layer
    if metric is None or layer is None:
        return pl.DataFrame()
    cells = retrieval_cells(results, metric, layer, MEAN)
    if cells.height == 0:
        return pl.DataFrame()
    wide = cells.pivot(on="domain", index="src_lang", values="value", aggregate_function="first")
    wide = wide.rename({"src_lang": "lang"})
    order = domains_order(cells["domain"].unique().to_list())
    return wide.select("lang", *order).sort("lang")


def retrieval_sizes(results: pl.DataFrame, layer: int | None = None) -> pl.DataFrame:
    """Queries (`n`, per query language and target) and candidates (`pool`) behind the recall
    table, per domain: `domain`, `n_min`, `n_max`, `pool_min`, `pool_max` (`all` last).

    With the common pool, `pool` is the same in every domain of a pair; results written before
    pools were recorded show it empty (their per-domain pools differed).
    """
    metric = primary_metric(results)
    layer = top_layer(results) if layer is None else layer
    if metric is None or layer is None:
        return pl.DataFrame()
    cells = results.filter(
        (pl.col("metric") == metric) & (pl.col("layer") == layer) & pl.col("tgt_lang").is_not_null()
    )
    if cells.height == 0:
        return pl.DataFrame()
    pool = pl.col("pool") if "pool" in cells.columns else pl.lit(None, pl.Int64)
    sizes = cells.group_by("domain").agg(
        pl.col("n").min().alias("n_min"), pl.col("n").max().alias("n_max"),
        pool.min().alias("pool_min"), pool.max().alias("pool_max"),
    )  # fmt: skip
    order = domains_order(sizes["domain"].to_list())
    return sizes.sort(pl.col("domain").replace_strict(order, list(range(len(order)))))


# Analyses the report and the dashboard draw with views of their own; every other registered
# analysis is shown as a table of its rows (`analysis_table`), so a new one needs no view code.
DEDICATED_VIEWS = ("retrieval", "cka", "probe", "projection")


def other_analyses(results: pl.DataFrame) -> list[str]:
    """Analyses present in `results` without a dedicated view, in registry order."""
    from xrdiag.analyses import registry

    present = set(results["analysis"].unique().to_list()) if results.height else set()
    order = [n for n in registry.names() if n in present] + sorted(present - set(registry.names()))
    return [n for n in order if n not in DEDICATED_VIEWS]


def analysis_title(name: str) -> str:
    """An analysis' title from the registry (its name when it is not registered)."""
    from xrdiag.analyses import registry

    return registry.get(name).title if name in registry.names() else name


def analysis_table(results: pl.DataFrame, analysis: str, layer: int | None = None) -> pl.DataFrame:
    """One analysis' rows at one layer (the top one by default), domain `all` first."""
    rows = results.filter(pl.col("analysis") == analysis)
    layer = top_layer(rows) if layer is None else layer
    if layer is None:
        return pl.DataFrame()
    rows = rows.filter(pl.col("layer") == layer)
    cols = ["metric", "src_lang", "tgt_lang", "domain", "value", "ci_low", "ci_high", "n"]
    cols += [c for c in ("pool",) if c in rows.columns]
    return rows.sort(
        pl.col("domain") != ALL, "metric", "src_lang", "tgt_lang", "domain", nulls_last=True
    ).select(cols)


def cka_metric(results: pl.DataFrame) -> str:
    """The CKA the views show: debiased where the results have it, else plain linear CKA."""
    present = results.filter(pl.col("metric") == DEBIASED_CKA).height if results.height else 0
    return DEBIASED_CKA if present else LINEAR_CKA


def cka_label(metric: str) -> str:
    """How a view names a CKA metric: the plain estimator is said to be biased."""
    return "debiased linear CKA" if metric == DEBIASED_CKA else "linear CKA (biased)"


def cka_layers(results: pl.DataFrame) -> list[int]:
    """Layers that have cross-language CKA rows."""
    cka = results.filter(pl.col("metric") == cka_metric(results))
    return sorted(int(x) for x in cka["layer"].unique().drop_nulls().to_list())


def cka_lang_lang(results: pl.DataFrame, layer: int, domain: str = ALL) -> pl.DataFrame:
    """Symmetric language x language CKA (`cka_metric`) at one layer (diagonal 1)."""
    metric = cka_metric(results)
    cka = results.filter(
        (pl.col("metric") == metric) & (pl.col("layer") == layer) & (pl.col("domain") == domain)
    )
    if cka.height == 0:
        return pl.DataFrame()
    langs = sorted(set(cka["src_lang"].to_list()) | set(cka["tgt_lang"].to_list()))
    value: dict[tuple[str, str], float] = {(lang, lang): 1.0 for lang in langs}
    for src, tgt, v in cka.select("src_lang", "tgt_lang", "value").iter_rows():
        value[(src, tgt)] = value[(tgt, src)] = v
    data: dict[str, list[Any]] = {"lang": langs}
    for col in langs:
        data[col] = [value.get((row, col)) for row in langs]
    return pl.DataFrame(data, schema={"lang": pl.String, **{c: pl.Float64 for c in langs}})


def probe_by_layer(results: pl.DataFrame) -> pl.DataFrame:
    """Probe accuracy per layer: `layer`, then value, ci_low, ci_high per probe metric."""
    probes = results.filter(pl.col("metric").is_in(PROBE_METRICS) & (pl.col("domain") == ALL))
    if probes.height == 0:
        return pl.DataFrame()
    wide = probes.pivot(on="metric", index="layer", values=["value", "ci_low", "ci_high"])
    present = [m for m in PROBE_METRICS if f"value_{m}" in wide.columns]
    cols = ["layer"] + [f"{part}_{m}" for m in present for part in ("value", "ci_low", "ci_high")]
    return wide.select(cols).rename({f"value_{m}": m for m in present}).sort("layer")


def cka_by_layer(results: pl.DataFrame) -> pl.DataFrame:
    """Mean cross-language CKA (`cka_metric`, domain `all`) per layer: layer, mean_cka, pairs."""
    cka = results.filter((pl.col("metric") == cka_metric(results)) & (pl.col("domain") == ALL))
    return (
        cka.group_by("layer")
        .agg(pl.col("value").mean().alias("mean_cka"), pl.len().alias("pairs"))
        .sort("layer")
    )


def seed_mean(results: pl.DataFrame) -> pl.DataFrame:
    """Mean value per metric cell over a study variant's seeds (intervals dropped, n summed)."""
    keys = ["analysis", "metric", "layer", "src_lang", "tgt_lang", "domain"]
    return results.group_by(keys, maintain_order=True).agg(
        pl.col("value").mean(),
        pl.lit(None, pl.Float64).alias("ci_low"),
        pl.lit(None, pl.Float64).alias("ci_high"),
        pl.col("n").sum(),
        pl.col("checkpoint").first(),
    )


def by_checkpoint(results: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The results of each checkpoint, in order of first appearance."""
    names = results["checkpoint"].unique(maintain_order=True).to_list()
    return {name: results.filter(pl.col("checkpoint") == name) for name in names}


# --------------------------------------------------------------------------- eval summary


def summary_frame(results: pl.DataFrame, pivot: str | None) -> pl.DataFrame:
    """Headline per language at the top layer: recall@1 to and from the pivot, probe, CKA.

    The numbers come straight from `results`; this only picks and pivots them.
    """
    if results.height == 0:
        return pl.DataFrame()
    top = results["layer"].max()
    at_top = results.filter((pl.col("layer") == top) & (pl.col("domain") == "all"))
    retrieval = at_top.filter(pl.col("analysis") == "retrieval")
    langs = sorted(set(retrieval["src_lang"].drop_nulls().to_list())) if retrieval.height else []
    if not langs:
        return pl.DataFrame()
    hub = pivot or ("en" if "en" in langs else langs[0])
    rows = []
    for lang in langs:
        if lang == hub:
            continue
        row: dict[str, Any] = {
            "lang": lang,
            f"R@1 ->{hub}": _pick(retrieval, PRIMARY_RECALL, lang, hub),
            f"R@1 {hub}->": _pick(retrieval, PRIMARY_RECALL, hub, lang),
            f"R@1 ->{hub} centered": _pick(
                retrieval, metric_name("recall@1", "cos", "center"), lang, hub
            ),
            f"R@1 ->{hub} margin": _pick(
                retrieval, metric_name("recall@1", "margin", "none"), lang, hub
            ),
        }
        cka = at_top.filter(
            (pl.col("metric") == cka_metric(results))
            & (
                ((pl.col("src_lang") == lang) & (pl.col("tgt_lang") == hub))
                | ((pl.col("src_lang") == hub) & (pl.col("tgt_lang") == lang))
            )
        )
        row[f"CKA with {hub}"] = float(cka["value"][0]) if cka.height else None
        rows.append(row)
    return pl.DataFrame(rows)


def _pick(frame: pl.DataFrame, metric: str, src: str, tgt: str) -> float | None:
    hit = frame.filter(
        (pl.col("metric") == metric) & (pl.col("src_lang") == src) & (pl.col("tgt_lang") == tgt)
    )
    return float(hit["value"][0]) if hit.height else None


def scalar_metrics(results: pl.DataFrame) -> dict[str, float]:
    """Layer-wise scalars worth one line each (probe accuracies, isotropy) at the top layer."""
    if results.height == 0:
        return {}
    top = results["layer"].max()
    wanted = (
        "lang_probe_acc",
        "lang_probe_chance",
        "domain_probe_acc",
        "domain_probe_chance",
        "isotropy_partition_ratio",
        "mean_random_cosine",
    )
    picked = results.filter(
        (pl.col("layer") == top) & pl.col("metric").is_in(wanted) & (pl.col("domain") == "all")
    )
    return {m: float(v) for m, v in zip(picked["metric"], picked["value"], strict=True)}


# --------------------------------------------------------------------------- selections
# What the dashboard's views and the report's tables pick from a results frame.


def ordered(values: Sequence[str | None], last: Sequence[str] = (ALL,)) -> list[str]:
    """Sorted distinct values, with `all` (or the given names) moved to the end."""
    distinct = sorted({v for v in values if v is not None})
    return [v for v in distinct if v not in last] + [v for v in last if v in distinct]


def layers(results: pl.DataFrame, analysis: str | None = None) -> list[int]:
    """Layers present (of one analysis), ascending."""
    frame = results if analysis is None else results.filter(pl.col("analysis") == analysis)
    return sorted(int(v) for v in frame["layer"].unique().drop_nulls().to_list())


def languages(results: pl.DataFrame) -> list[str]:
    """Languages named as a source or target anywhere in the results."""
    return ordered(results["src_lang"].to_list() + results["tgt_lang"].to_list(), last=())


def plain_domains(results: pl.DataFrame, analysis: str) -> list[str]:
    """Single domains of an analysis (no `a|b` pairs), `all` last."""
    frame = results.filter(pl.col("analysis") == analysis)
    return [d for d in ordered(frame["domain"].to_list()) if "|" not in d]


def default_target(langs: Sequence[str]) -> str | None:
    """English when present (the usual pivot), otherwise the first language."""
    return "en" if "en" in langs else (langs[0] if langs else None)


def retrieval_cells(
    results: pl.DataFrame, metric: str, layer: int, target: str, value: str = "value"
) -> pl.DataFrame:
    """Query language x domain rows of a retrieval figure into `target`, as stored.

    `target` MEAN averages over target languages (with `n` summed), as `recall_lang_domain`
    does; an average of cells has no interval or significance of its own, so none is kept.
    """
    frame = results.filter(
        (pl.col("analysis") == "retrieval")
        & (pl.col("metric") == metric)
        & (pl.col("layer") == layer)
        & pl.col("src_lang").is_not_null()
        & pl.col("tgt_lang").is_not_null()
    )
    if target != MEAN:
        return frame.filter(pl.col("tgt_lang") == target)
    aggs = [pl.col(value).mean()] + ([pl.col("n").sum()] if "n" in frame.columns else [])
    if "pool" in frame.columns:  # the pools of the averaged pairs; equal on a parallel corpus
        aggs.append(pl.col("pool").max())
    return frame.group_by("src_lang", "domain").agg(aggs)


def figure_cells(
    results: pl.DataFrame, analysis: str, metric: str, layer: int, domain: str = ALL
) -> pl.DataFrame:
    """The rows of one figure at one layer and domain (every language pair)."""
    return results.filter(
        (pl.col("analysis") == analysis)
        & (pl.col("metric") == metric)
        & (pl.col("layer") == layer)
        & (pl.col("domain") == domain)
    )


def pair_series(
    frame: pl.DataFrame, metric: str, lang: str, other: str, domain: str = ALL, value: str = "value"
) -> list[tuple[int, float]]:
    """(layer, value) of a symmetric pair figure between two languages, in either stored order."""
    picked = frame.filter(
        (pl.col("metric") == metric)
        & (pl.col("domain") == domain)
        & (
            ((pl.col("src_lang") == lang) & (pl.col("tgt_lang") == other))
            | ((pl.col("src_lang") == other) & (pl.col("tgt_lang") == lang))
        )
    )
    picked = picked.sort("layer").unique(subset="layer", keep="first", maintain_order=True)
    return [
        (int(layer), float(v))
        for layer, v in zip(picked["layer"], picked[value], strict=True)
        if v is not None
    ]


def series(
    frame: pl.DataFrame, metric: str, value: str = "value", **where: str | None
) -> list[tuple[int, float]]:
    """(layer, value) of one figure over layers, with equality filters on other key columns."""
    cond = pl.col("metric") == metric
    for column, wanted in where.items():
        cond = cond & (pl.col(column).is_null() if wanted is None else pl.col(column) == wanted)
    picked = (
        frame.filter(cond).sort("layer").unique(subset="layer", keep="first", maintain_order=True)
    )
    return [
        (int(layer), float(v))
        for layer, v in zip(picked["layer"], picked[value], strict=True)
        if v is not None
    ]


def scalar_rows(results: pl.DataFrame, metrics: Sequence[str], domain: str = ALL) -> pl.DataFrame:
    """Layer x metric table of per-layer scalars (no languages), as they are in the results."""
    frame = results.filter(
        pl.col("metric").is_in(list(metrics))
        & (pl.col("domain") == domain)
        & pl.col("src_lang").is_null()
    )
    if frame.height == 0:
        return pl.DataFrame({"layer": []}, schema={"layer": pl.Int32})
    return (
        frame.pivot(on="metric", index="layer", values="value", aggregate_function="first")
        .sort("layer")
        .select(["layer"] + [m for m in metrics if m in frame["metric"].unique().to_list()])
    )


def task_headline(results: pl.DataFrame) -> dict[str, Any] | None:
    """Task accuracy pooled on and off the diagonal and the largest transfer gap (top layer)."""
    rows = results.filter(pl.col("analysis") == "task")
    if not rows.height:
        return None
    layer = top_layer(rows)
    rows = rows.filter((pl.col("layer") == layer) & (pl.col("domain") == ALL))
    out: dict[str, Any] = {"layer": layer}
    for metric in ("accuracy_mono", "accuracy_cross"):
        found = rows.filter(pl.col("metric") == metric)
        if found.height:
            out[metric] = (float(found["value"][0]), int(found["n"][0]))
    gaps = rows.filter(pl.col("metric") == "transfer_gap").sort("value", descending=True)
    if gaps.height:
        top = gaps.row(0, named=True)
        out["gap"] = (f"{top['src_lang']}-{top['tgt_lang']}", float(top["value"]), int(top["n"]))
    return out
