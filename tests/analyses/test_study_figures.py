"""Study figures and comparisons on per-query outcomes, against direct computations."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from scipy.stats import t as student

from xrdiag.analyses import multibootstrap as mb
from xrdiag.analyses.study_figures import (
    Protocol,
    compare_variants,
    figure_set,
    outcomes_frame,
    study_figures,
    study_of,
)
from xrdiag.report.study_summary import summary_markdown, verdict

PROTO = Protocol(pivot="en", train_langs=("en", "fr"), train_domains=("medical",))
LANGS = ("fr", "sw")  # fr seen, sw unseen
DOMAINS = ("medical", "news")  # medical seen, news unseen
IDS = {d: [f"{d[0]}{i}" for i in range(40)] for d in DOMAINS}


def outcomes(effect: dict[str, float], seeds=(0, 1, 2), rng_seed: int = 0) -> pl.DataFrame:
    """0/1 hits per variant, seed, pair and id: hard ids, an unseen-language penalty."""
    rng = np.random.default_rng(rng_seed)
    difficulty = {i: rng.normal() for d in DOMAINS for i in IDS[d]}
    rows = []
    for variant, shift in effect.items():
        for seed in seeds if variant != "base" else (None,):
            noise = rng.normal(0, 0.2)
            for lang, domain in itertools.product(LANGS, DOMAINS):
                for src, tgt in ((lang, "en"), ("en", lang)):
                    for i in IDS[domain]:
                        logit = 1.0 + difficulty[i] - 0.8 * (lang == "sw") + shift + noise
                        hit = float(rng.random() < 1 / (1 + np.exp(-logit)))
                        rows.append((variant, seed, src, tgt, domain, i, hit, 24))
    schema = {"variant": pl.String, "seed": pl.Int64, "src_lang": pl.String,
              "tgt_lang": pl.String, "domain": pl.String, "id": pl.String,
              "value": pl.Float64, "pool": pl.Int64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_outcomes_frame_reads_ranks_at_the_last_layer() -> None:
    queries = pl.DataFrame(
        {"layer": [1, 2, 2], "src_lang": ["fr"] * 3, "tgt_lang": ["en"] * 3,
         "domain": ["news"] * 3, "id": ["a", "a", "b"], "rank": [1, 3, 1], "pool": [9] * 3},
        schema_overrides={"layer": pl.Int32},
    )  # fmt: skip
    got = outcomes_frame(queries, "hybrid", 2)
    assert got["value"].to_list() == [0.0, 1.0] and set(got["seed"]) == {2}


def test_figures_are_equal_weight_means_of_the_strata() -> None:
    frame = outcomes({"base": 0.0, "baseline": 0.3})
    figures = study_figures(frame, pl.DataFrame(), PROTO)
    mine = frame.filter(pl.col("variant") == "baseline")
    cells = mine.group_by("seed", "src_lang", "tgt_lang", "domain").agg(pl.col("value").mean())
    strata = cells.group_by("src_lang", "tgt_lang", "domain").agg(pl.col("value").mean())
    row = figures.filter((pl.col("variant") == "baseline") & (pl.col("figure") == "recall@1")
                         & (pl.col("lang") == "all") & (pl.col("domain") == "all"))  # fmt: skip
    assert row["value"][0] == pytest.approx(strata["value"].mean(), abs=1e-12)
    assert row["n"][0] == 80 and row["n_seeds"][0] == 3 and row["pool"][0] == 24
    assert row["ci_low"][0] < row["value"][0] < row["ci_high"][0]
    lang = strata.with_columns(
        pl.when(pl.col("src_lang") == "en").then("tgt_lang").otherwise("src_lang").alias("lang")
    )
    unseen = lang.filter((pl.col("lang") == "sw") & (pl.col("domain") == "news"))
    quad = figures.filter(
        (pl.col("variant") == "baseline") & (pl.col("figure") == "quadrant_recall@1")
        & (pl.col("lang") == "unseen") & (pl.col("domain") == "unseen")
    )  # fmt: skip
    assert quad["value"][0] == pytest.approx(unseen["value"].mean(), abs=1e-12)
    by_dom = lang.group_by("domain").agg(pl.col("value").mean()).sort("value")
    worst = figures.filter((pl.col("variant") == "baseline")
                           & (pl.col("figure") == "worst_domain_recall@1"))  # fmt: skip
    assert worst["domain"][0] == by_dom["domain"][0]
    assert worst["value"][0] == pytest.approx(by_dom["value"][0], abs=1e-12)
    base = figures.filter((pl.col("variant") == "base") & (pl.col("figure") == "recall@1"))
    assert set(base["n_seeds"]) == {1}  # one fixed model: an interval over ids only


def test_comparisons_are_the_calibrated_contrasts_with_roles_and_holm() -> None:
    frame = outcomes({"base": 0.0, "baseline": 0.3, "dann": 0.3, "strong": 2.5})
    comp = compare_variants(frame, PROTO, baseline="baseline")
    study = study_of(frame, PROTO)
    figures = dict(figure_set(study, PROTO))
    primary = comp.filter(pl.col("role") == "primary")
    assert sorted(primary["variant"]) == ["dann", "strong"]
    assert set(zip(primary["figure"], primary["lang"], primary["domain"], strict=True)) == {
        ("quadrant_recall@1", "unseen", "unseen")
    }
    for r in comp.iter_rows(named=True):
        want = mb.paired_contrast(
            study, figures[(r["figure"], r["lang"], r["domain"])], r["variant"], r["baseline"]
        )
        assert r["delta"] == pytest.approx(want.delta, abs=1e-12)
        assert r["mde"] == pytest.approx(want.mde, abs=1e-12) and r["mde"] > 0
    for role in ("primary", "exploratory", "training"):
        part = comp.filter(pl.col("role") == role)
        np.testing.assert_allclose(
            part["p_adjusted"], mb.holm([mb.Contrast(0, 0, 0, p, 0, 0, 0, "") for p in
                                         part["p_value"]]), atol=1e-12)  # fmt: skip
    strong = primary.filter(pl.col("variant") == "strong").row(0, named=True)
    assert strong["significant"] and strong["delta"] > 0
    assert "higher than baseline" in verdict(strong)
    training = comp.filter(pl.col("role") == "training")
    assert set(training["variant"]) == {"baseline"} and set(training["baseline"]) == {"base"}
    null = comp.filter((pl.col("variant") == "dann") & ~pl.col("significant")).row(0, named=True)
    assert f"no difference larger than {null['mde']:.3f}" in verdict(null)
    assert f"Holm p {null['p_adjusted']:.3f}" in verdict(null)  # why a CI near zero is no finding
    md = summary_markdown(study_figures(frame, pl.DataFrame(), PROTO), comp, PROTO,
                          baseline="baseline", primary=("quadrant_recall@1", "unseen", "unseen"),
                          seeds=3)  # fmt: skip
    assert "The primary question" in md and "MDE" in md and "at least 5 are recommended" in md
    assert "Did training change anything?" in md


def test_seed_figures_are_t_intervals_over_seeds_and_prefer_debiased_cka() -> None:
    rows = []
    for seed, (lin, deb, probe) in enumerate([(0.80, 0.30, 0.5), (0.81, 0.33, 0.6),
                                              (0.82, 0.35, 0.7)]):  # fmt: skip
        for metric, value in (("linear_cka", lin), ("debiased_cka", deb),
                              ("lang_probe_acc", probe)):  # fmt: skip
            rows.append({"variant": "baseline", "seed": seed, "layer": 2, "domain": "all",
                         "metric": metric, "value": value,
                         "src_lang": "en" if "cka" in metric else None,
                         "tgt_lang": "fr" if "cka" in metric else None})  # fmt: skip
    summary = pl.DataFrame(rows)
    frame = outcomes({"baseline": 0.0})
    figures = study_figures(frame, summary, PROTO)
    cka = figures.filter(pl.col("figure") == "cross_lang_cka").row(0, named=True)
    v = np.array([0.30, 0.33, 0.35])
    half = student.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    assert cka["value"] == pytest.approx(v.mean()) and cka["n_seeds"] == 3
    assert (cka["ci_low"], cka["ci_high"]) == pytest.approx((v.mean() - half, v.mean() + half))
