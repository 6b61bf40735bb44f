"""Study aggregation against manual computations on hand-made results frames."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.paired import holm_adjust, sign_flip_pvalue
from xrdiag.analyses.study_figures import (
    RECALL,
    Protocol,
    compare_variants,
    recall_cells,
    robustness_figures,
)
from xrdiag.report.study_summary import summary_markdown

PROTO = Protocol(pivot="en", train_langs=("en", "fr"), train_domains=("medical",))
LANGS = ("fr", "sw")  # fr seen, sw unseen
DOMAINS = ("medical", "news")  # medical seen, news unseen


def row(variant: str, seed: int | None, **kw: object) -> dict[str, object]:
    base = dict(
        checkpoint=f"{variant}/seed-{seed}",
        analysis="retrieval",
        metric=RECALL,
        layer=2,
        src_lang=None,
        tgt_lang=None,
        domain="all",
        value=0.0,
        ci_low=None,
        ci_high=None,
        n=50,
        variant=variant,
        seed=seed,
    )
    return {**base, **kw}


def summary(values: dict[str, dict[tuple[int, str, str, str], float]]) -> pl.DataFrame:
    """Results rows from {variant: {(seed, src, tgt, domain): value}}, plus noise rows."""
    rows = []
    for variant, cells in values.items():
        for (seed, src, tgt, dom), v in cells.items():
            rows.append(row(variant, seed, src_lang=src, tgt_lang=tgt, domain=dom, value=v))
            # rows every figure must ignore: a lower layer, another metric, the "all" pool
            rows.append(
                row(variant, seed, src_lang=src, tgt_lang=tgt, domain=dom, value=9.0, layer=1)
            )
            rows.append(
                row(
                    variant,
                    seed,
                    src_lang=src,
                    tgt_lang=tgt,
                    domain=dom,
                    value=9.0,
                    metric="mrr|cos|none",
                )
            )
            rows.append(row(variant, seed, src_lang=src, tgt_lang=tgt, domain="all", value=9.0))
        for seed in {k[0] for k in cells}:
            acc = 0.5 + 0.1 * seed
            rows.append(row(variant, seed, analysis="probe", metric="lang_probe_acc", value=acc))
            rows.append(row(variant, seed, analysis="probe", metric="domain_probe_acc", value=0.3))
            rows.append(
                row(
                    variant,
                    seed,
                    analysis="cka",
                    metric="linear_cka",
                    src_lang="en",
                    tgt_lang="fr",
                    value=0.8 + 0.01 * seed,
                )
            )
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.with_columns(pl.col("layer").cast(pl.Int32), pl.col("seed").cast(pl.Int64))


def cell_values(
    offset: float, seeds: tuple[int, ...] = (0, 1, 2), noise: float = 0.0, rng_seed: int = 0
) -> dict[tuple[int, str, str, str], float]:
    rng = np.random.default_rng(rng_seed)
    out = {}
    for seed, lang, dom in itertools.product(seeds, LANGS, DOMAINS):
        for src, tgt in ((lang, "en"), ("en", lang)):
            base = 0.9 - 0.2 * (dom == "news") - 0.1 * (lang == "sw") + 0.01 * seed
            out[(seed, src, tgt, dom)] = float(np.clip(base + offset + rng.normal(0, noise), 0, 1))
    return out


def fig(frame: pl.DataFrame, variant: str, figure: str, lang: str = "all", domain: str = "all"):
    hit = frame.filter(
        (pl.col("variant") == variant)
        & (pl.col("figure") == figure)
        & (pl.col("lang") == lang)
        & (pl.col("domain") == domain)
    )
    assert hit.height == 1, (variant, figure, lang, domain)
    return hit.row(0, named=True)


def test_figures_equal_manual_computation() -> None:
    vals = cell_values(0.0, noise=0.03)
    frame = robustness_figures(summary({"v": vals}), PROTO, n_resamples=200, seed=0)
    keys = list(vals)
    v = np.array([vals[k] for k in keys])
    dom = np.array([k[3] for k in keys])
    lang = np.array([k[1] if k[2] == "en" else k[2] for k in keys])
    by_dom = {d: v[dom == d].mean() for d in DOMAINS}
    manual = {
        ("recall@1", "all", "all"): v.mean(),
        ("recall@1", "all", "news"): by_dom["news"],
        ("recall@1", "sw", "all"): v[lang == "sw"].mean(),
        ("quadrant_recall@1", "seen", "unseen"): v[(lang == "fr") & (dom == "news")].mean(),
        ("quadrant_recall@1", "unseen", "seen"): v[(lang == "sw") & (dom == "medical")].mean(),
        ("worst_domain_recall@1", "all", "news"): min(by_dom.values()),
        ("domain_gap", "all", "all"): v[dom == "medical"].mean() - v[dom == "news"].mean(),
        ("lang_gap", "all", "all"): v[lang == "fr"].mean() - v[lang == "sw"].mean(),
        ("domain_spread", "all", "all"): np.std(list(by_dom.values())),
        ("lang_probe_acc", "all", "all"): np.mean([0.5, 0.6, 0.7]),
        ("domain_probe_acc", "all", "all"): 0.3,
        ("cross_lang_cka", "all", "all"): np.mean([0.80, 0.81, 0.82]),
    }
    for (figure, lg, dm), want in manual.items():
        got = fig(frame, "v", figure, lg, dm)
        assert got["value"] == pytest.approx(want, abs=1e-12), figure
        assert got["ci_low"] <= got["value"] + 1e-9 or figure == "domain_spread"
    overall = fig(frame, "v", "recall@1")
    assert overall["ci_low"] < overall["value"] < overall["ci_high"]
    assert overall["n"] == 50 * len(vals)
    # deterministic for a seed
    again = robustness_figures(summary({"v": vals}), PROTO, n_resamples=200, seed=0)
    assert again.equals(frame)


def test_identical_variants_give_zero_deltas_and_p_one() -> None:
    vals = cell_values(0.0, noise=0.05)
    frame = summary({"baseline": vals, "same": dict(vals)})
    comp = compare_variants(frame, PROTO, baseline="baseline", draws=500, n_resamples=100)
    assert comp.height > 0 and set(comp["variant"]) == {"same"}
    assert (comp["delta"] == 0.0).all()
    assert (comp["p_value"] == 1.0).all() and (comp["p_adjusted"] == 1.0).all()
    assert not comp["significant"].any()


def test_planted_difference_detected_and_holm_by_hand() -> None:
    seeds = (0, 1, 2, 3, 4)
    base = cell_values(0.0, seeds, noise=0.02, rng_seed=1)
    better = {k: min(1.0, v + 0.06) for k, v in cell_values(0.0, seeds, 0.02, 1).items()}
    noisy = cell_values(0.0, seeds, noise=0.02, rng_seed=2)
    frame = summary({"baseline": base, "better": better, "noisy": noisy})
    comp = compare_variants(frame, PROTO, baseline="baseline", draws=2000, n_resamples=200)
    top = comp.filter(
        (pl.col("variant") == "better")
        & (pl.col("figure") == "recall@1")
        & (pl.col("lang") == "all")
        & (pl.col("domain") == "all")
    )
    assert top["significant"][0] and top["delta"][0] > 0.04
    assert top["ci_low"][0] > 0
    # delta and p against a direct computation on the paired cells
    keys = sorted(base)
    diffs = np.array([better[k] - base[k] for k in keys])
    assert top["delta"][0] == pytest.approx(diffs.mean(), abs=1e-12)
    assert top["p_value"][0] == pytest.approx(
        sign_flip_pvalue(diffs, draws=2000, seed=0), abs=1e-12
    )
    np.testing.assert_allclose(comp["p_adjusted"], holm_adjust(comp["p_value"]), atol=1e-12)
    noisy_top = comp.filter(
        (pl.col("variant") == "noisy")
        & (pl.col("lang") == "all")
        & (pl.col("domain") == "all")
        & (pl.col("figure") == "recall@1")
    )
    assert not noisy_top["significant"][0]
    md = summary_markdown(
        robustness_figures(frame, PROTO, n_resamples=50), comp, PROTO, baseline="baseline"
    )
    assert "Significant after Holm correction" in md and "- better: recall@1" in md


def test_cells_pick_pivot_pairs_last_layer_and_flags() -> None:
    vals = cell_values(0.0, seeds=(0,))
    frame = summary({"v": vals})
    extra = row("v", 0, src_lang="fr", tgt_lang="sw", domain="news", value=7.0)
    frame = pl.concat([frame, pl.DataFrame([extra], schema=frame.schema)])
    cells = recall_cells(frame, PROTO)
    assert cells.height == len(vals)  # the fr->sw pair is not against the pivot
    assert set(cells["value"].to_list()) <= set(vals.values())
    seen = cells.filter(pl.col("lang") == "fr")["lang_seen"].unique().to_list()
    assert seen == [True]
    assert cells.filter(pl.col("domain") == "news")["domain_seen"].unique().to_list() == [False]


def test_cross_language_cka_figure_is_the_debiased_one_when_present() -> None:
    """One CKA number summarising a variant is the debiased estimator where it was computed."""
    frame = summary({"baseline": cell_values(0.0)})
    debiased = frame.filter(pl.col("metric") == "linear_cka").with_columns(
        pl.lit("debiased_cka").alias("metric"), (pl.col("value") - 0.5).alias("value")
    )
    figures = robustness_figures(pl.concat([frame, debiased]), PROTO, n_resamples=50)
    cka = figures.filter(pl.col("figure") == "cross_lang_cka")["value"][0]
    assert cka == pytest.approx(np.mean([0.30, 0.31, 0.32]))
    plain = robustness_figures(frame, PROTO, n_resamples=50)
    assert plain.filter(pl.col("figure") == "cross_lang_cka")["value"][0] == pytest.approx(0.81)
