"""A study's variant table: views of figures.parquet and comparison.parquet, nothing computed."""

from __future__ import annotations

import polars as pl

from xrdiag.report.tables import ALL


def variant_table(figures: pl.DataFrame, comparison: pl.DataFrame | None) -> pl.DataFrame:
    """Each variant's overall figures with CI, and vs the baseline: delta, CI, p, significance.

    Rows where lang and domain are `all` (or the seen/unseen quadrants); columns `variant,
    figure, lang, domain, value, ci_low, ci_high, n` plus `baseline, delta, delta_ci_low,
    delta_ci_high, p_adjusted, significant` from comparison.parquet (null for the baseline).
    """
    if figures.height == 0:
        return pl.DataFrame()
    extra = [c for c in ("n_seeds", "pool") if c in figures.columns]  # absent in 0.1 studies
    out = figures.select(
        "variant", "figure", "lang", "domain", "value", "ci_low", "ci_high", "n", *extra
    )
    if comparison is not None and comparison.height:
        later = [c for c in ("mde", "role") if c in comparison.columns]
        cmp = comparison.select(
            "variant", "figure", "lang", "domain", "baseline", "delta",
            pl.col("ci_low").alias("delta_ci_low"), pl.col("ci_high").alias("delta_ci_high"),
            "p_adjusted", "significant", *later,
        )  # fmt: skip
        out = out.join(cmp, on=["variant", "figure", "lang", "domain"], how="left")
    return out


def headline_variants(figures: pl.DataFrame) -> pl.DataFrame:
    """Variant x figure values for the overall cells (lang and domain `all`)."""
    overall = figures.filter((pl.col("lang") == ALL) & (pl.col("domain") == ALL))
    if overall.height == 0:
        return pl.DataFrame()
    order = overall["variant"].unique(maintain_order=True).to_list()
    wide = overall.pivot(on="figure", index="variant", values="value")
    return (
        wide.join(pl.DataFrame({"variant": order}).with_row_index("_o"), on="variant")
        .sort("_o")
        .drop("_o")
    )
