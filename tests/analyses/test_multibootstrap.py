"""Study data, Multi-Bootstrap, two-way test and seed sign-flip against naive loops."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses import multibootstrap as mb
from xrdiag.analyses import twoway as tw
from xrdiag.analyses.paired import holm_adjust, sign_flip_pvalue
from xrdiag.analyses.study_data import (
    Layout,
    Study,
    gap,
    mean_of,
    spread,
    study_from_frame,
    worst,
)
from xrdiag.analyses.study_sim import StudySpec, simulate_study
from xrdiag.errors import UserError

PAIRS = (("en", "fr"), ("sw", "en"))
IDS = {"med": ("m1", "m2", "m3"), "news": ("n1", "n2", "n3", "n4")}


def tiny_frame(seed: int = 0, drop: int = 5) -> pl.DataFrame:
    """2 arms x 3 seeds x 2 pairs x 2 domains (3 and 4 ids), reciprocal ranks, rows dropped."""
    rng = np.random.default_rng(seed)
    rows = [
        (arm, s, src, tgt, dom, i, float(1 / rng.integers(1, 4)))
        for arm in ("base", "dann")
        for s in (7, 3, 5)
        for src, tgt in PAIRS
        for dom, ids in IDS.items()
        for i in ids
    ]
    keep = np.ones(len(rows), bool)
    keep[rng.choice(len(rows), drop, replace=False)] = False
    cols = ["variant", "seed", "src_lang", "tgt_lang", "domain", "id", "value"]
    return pl.DataFrame(
        [r for r, k in zip(rows, keep, strict=True) if k], schema=cols, orient="row"
    )


def lookup(study: Study, arm: str, seed: int, src: str, tgt: str, dom: str, i: str) -> float:
    lay = study.layout
    k = lay.strata.index((src, tgt, dom))
    q = np.flatnonzero((lay.query_stratum == k) & (lay.query_id == lay.ids.index(i)))
    if q.size == 0:
        return float("nan")
    return float(study.values[study.arm(arm), study.seeds.index(seed), q[0]])


def test_frame_builder_places_every_row_and_nans_the_rest() -> None:
    frame = tiny_frame()
    st = study_from_frame(frame)
    assert st.arms == ("base", "dann") and st.seeds == (3, 5, 7)
    assert set(st.layout.domains) == {"med", "news"} and len(st.layout.ids) == 7
    for r in frame.iter_rows(named=True):
        got = lookup(
            st, r["variant"], r["seed"], r["src_lang"], r["tgt_lang"], r["domain"], r["id"]
        )
        assert got == r["value"]
    assert np.isnan(st.values).sum() == 5
    for k, (_, _, dom) in enumerate(st.layout.strata):
        ids = st.layout.query_id[st.layout.query_stratum == k]
        assert {st.layout.ids[j] for j in ids} == set(IDS[dom])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.drop("id"), "missing column"),
        (lambda f: pl.concat([f, f.head(1)]), "twice"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("id") == "m1").then(pl.lit("n1")).otherwise(pl.col("id")).alias("id")
            ),
            "two domains",
        ),  # fmt: skip
        (lambda f: f.with_columns(pl.lit(None, pl.String).alias("domain")), "null"),
        (lambda f: f.head(0), "no rows"),
    ],
)
def test_frame_builder_errors(change: Callable[[pl.DataFrame], pl.DataFrame], message: str) -> None:
    with pytest.raises(UserError, match=message):
        study_from_frame(change(tiny_frame()))


def test_layout_rejects_bad_queries() -> None:
    strata = (("en", "fr", "a"), ("en", "fr", "b"))
    with pytest.raises(UserError, match="two domains"):
        Layout(strata, ("x",), np.array([0, 1]), np.array([0, 0]))
    with pytest.raises(UserError, match="twice"):
        Layout(strata, ("x",), np.array([0, 0]), np.array([0, 0]))
    with pytest.raises(UserError, match="no query"):
        Layout(strata, ("x", "y"), np.array([0]), np.array([0]))
    with pytest.raises(UserError, match="shape"):
        Study(Layout(strata, ("x",), np.array([0]), np.array([0])), np.zeros((1, 2, 2)), ("a",),
              (0, 1))  # fmt: skip


def test_masks_and_figures_against_loops() -> None:
    lay = study_from_frame(tiny_frame()).layout
    assert [s for s, m in zip(lay.strata, lay.mask(langs=["sw"], pivot="en"), strict=True) if m] \
        == [s for s in lay.strata if "sw" in s[:2]]  # fmt: skip
    assert lay.mask(langs=["en"], pivot="en").sum() == 0
    assert lay.mask(langs=["en"]).sum() == lay.n_strata
    m = np.random.default_rng(3).uniform(size=(5, lay.n_strata))
    dom = [lay.mask(domains=[d]) for d in lay.domains]
    means = np.array([[row[d].mean() for d in dom] for row in m])
    np.testing.assert_allclose(mean_of(dom[0])(m), m[:, dom[0]].mean(axis=1), atol=1e-15)
    np.testing.assert_allclose(gap(dom[0], dom[1])(m), means[:, 0] - means[:, 1], atol=1e-15)
    np.testing.assert_allclose(worst(dom)(m), means.min(axis=1), atol=1e-15)
    np.testing.assert_allclose(spread(dom)(m), means.std(axis=1), atol=1e-15)
    with pytest.raises(UserError, match="no stratum"):
        mean_of(np.zeros(lay.n_strata, bool))


def naive_bootstrap(study: Study, n: int, seed: int) -> np.ndarray:
    """The documented stream, one resample and one stratum at a time with Python loops."""
    lay = study.layout
    a_n, s_n, _ = study.values.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, s_n, (n, s_n))
    ids = {}
    for g in range(len(lay.domains)):
        sl = lay.domain_ids(g)
        ids[g] = sl.start + rng.integers(0, sl.stop - sl.start, (n, sl.stop - sl.start))
    out = np.full((n, a_n, lay.n_strata), np.nan)
    for b in range(n):
        for a in range(a_n):
            for k in range(lay.n_strata):
                g = lay.stratum_domain[k]
                vals = []
                for s in seeds[b]:
                    for j in ids[g][b]:
                        q = np.flatnonzero((lay.query_stratum == k) & (lay.query_id == j))
                        if q.size and np.isfinite(study.values[a, s, q[0]]):
                            vals.append(study.values[a, s, q[0]])
                if vals:
                    out[b, a, k] = sum(vals) / len(vals)
    return out


def test_multibootstrap_matches_naive_stream_and_is_seeded() -> None:
    st = study_from_frame(tiny_frame(drop=9))
    boot = mb.MultiBootstrap(st, n_resamples=40, seed=11)
    np.testing.assert_allclose(boot.means, naive_bootstrap(st, 40, 11), atol=1e-12, rtol=0)
    again = mb.MultiBootstrap(st, n_resamples=40, seed=11)
    assert np.array_equal(boot.means, again.means, equal_nan=True)
    assert not np.allclose(mb.MultiBootstrap(st, n_resamples=40, seed=12).means, boot.means)
    fig = mean_of(np.ones(st.layout.n_strata, bool))
    diff = boot.contrast(fig, "dann", "base")
    np.testing.assert_allclose(diff, fig(boot.means[:, 1]) - fig(boot.means[:, 0]), atol=1e-15)


def stratum_means(row: np.ndarray, lay: Layout) -> np.ndarray:
    """Per-stratum means of one (arm, seed) row of complete data, by loops."""
    return np.array([row[lay.query_stratum == k].mean() for k in range(lay.n_strata)])


def anova_naive(u: np.ndarray, lay: Layout) -> tuple[float, list[tuple[int, float, float]]]:
    """V_seed and, per domain, (J, ms_b, ms_e) from explicit sums."""
    s_n = u.shape[0]
    rows = [sum(u[s]) for s in range(s_n)]
    mean = sum(rows) / s_n
    v_seed = s_n * sum((r - mean) ** 2 for r in rows) / (s_n - 1)
    parts = []
    for g in range(len(lay.domains)):
        cols = range(lay.domain_ids(g).start, lay.domain_ids(g).stop)
        j_n = len(cols)
        row_m = [sum(u[s, j] for j in cols) / j_n for s in range(s_n)]
        col_m = {j: sum(u[s, j] for s in range(s_n)) / s_n for j in cols}
        grand = sum(row_m) / s_n
        b = [s_n * col_m[j] for j in cols]
        b_mean = sum(b) / j_n
        ms_b = j_n * sum((x - b_mean) ** 2 for x in b) / (j_n - 1)
        sse = sum((u[s, j] - row_m[s] - col_m[j] + grand) ** 2 for s in range(s_n) for j in cols)
        parts.append((j_n, ms_b, j_n * s_n * sse / ((s_n - 1) * (j_n - 1))))
    return v_seed, parts


def test_twoway_variance_against_naive_anova_and_per_seed_figures() -> None:
    st = simulate_study(StudySpec(seeds=4, ids_per_domain=(5, 7), domains=2, pairs=3,
                                  seed_sd=0.3, item_arm_sd=0.5), seed=2)  # fmt: skip
    lay, fig = st.layout, mean_of(np.ones(st.layout.n_strata, bool))
    est, _, u = tw.cluster_influence(st.values, lay, fig, np.array([1.0, -1.0]))
    # U by hand: each query's (y - stratum mean) / count, times +-1/K, summed per (seed, id)
    k_n = lay.n_strata
    naive_u = np.zeros_like(u)
    for a, sign in ((0, 1.0), (1, -1.0)):
        for k in range(k_n):
            qs = np.flatnonzero(lay.query_stratum == k)
            m = st.values[a][:, qs].mean()
            for s in range(4):
                for q in qs:
                    naive_u[s, lay.query_id[q]] += (
                        sign * (st.values[a, s, q] - m) / (4 * qs.size) / k_n
                    )
    np.testing.assert_allclose(u, naive_u, atol=1e-14)
    v_seed, v_item = tw.two_way_variance(u, lay)
    ref_seed, parts = anova_naive(u, lay)
    assert v_seed == pytest.approx(ref_seed, rel=1e-12)
    assert v_item == pytest.approx(max(0.0, sum(b - e for _, b, e in parts)), rel=1e-12)
    # complete data: V_seed is the classical var(per-seed figure) / S
    per_seed = [fig(stratum_means(st.values[0, s], lay)) - fig(stratum_means(st.values[1, s], lay))
                for s in range(4)]  # fmt: skip
    assert v_seed == pytest.approx(np.var(per_seed, ddof=1) / 4, rel=1e-10)
    assert est == pytest.approx(np.mean(per_seed), abs=1e-14)


def test_bootstrap_variance_is_the_biased_combination_of_the_same_parts() -> None:
    """Linear figure, complete data: Var* = (S-1)/S V_seed + sum_g [(J-1)/J ms_b
    + (S-1)(J-1)/(J S) ms_e] exactly (Owen 2007); the two-way test removes those biases."""
    st = simulate_study(StudySpec(seeds=3, ids_per_domain=(8, 12), domains=2, pairs=2,
                                  seed_sd=0.2), seed=5)  # fmt: skip
    fig = mean_of(np.ones(st.layout.n_strata, bool))
    _, _, u = tw.cluster_influence(st.values, st.layout, fig, np.array([1.0, -1.0]))
    v_seed, parts = anova_naive(u, st.layout)
    s = 3
    want = (s - 1) / s * v_seed
    want += sum((j - 1) / j * b + (s - 1) * (j - 1) / (j * s) * e for j, b, e in parts)
    boot = mb.MultiBootstrap(st, n_resamples=40_000, seed=1)
    got = boot.contrast(fig, "variant", "baseline").var()
    assert got == pytest.approx(want, rel=0.04)  # Monte Carlo: sd of a variance ~ 0.7 %


def test_mixture_pvalue_limits_and_quadrature() -> None:
    from scipy.integrate import quad
    from scipy.special import ndtr, stdtr
    from scipy.stats import chi2

    d = np.array([0.1, 1.0, 3.0, 8.0, 40.0])
    for k in (1, 2, 4, 9):
        t_p = 2 * stdtr(k, -d)
        np.testing.assert_allclose(tw.mixture_pvalue(d, 1.0, 0.0, k), t_p, rtol=1e-6)
    np.testing.assert_allclose(tw.mixture_pvalue(d, 0.0, 4.0, 2), 2 * ndtr(-d / 2), rtol=1e-12)
    for k, v_seed, v_item, x in ((2, 0.3, 0.7, 2.5), (4, 1.0, 0.2, 4.0), (1, 0.5, 0.5, 6.0)):
        f = lambda z, k=k, v=v_seed, w=v_item, x=x: 2 * ndtr(-x / np.sqrt(w + v * k / z)) \
            * chi2.pdf(z, k)  # noqa: E731  # fmt: skip
        ref = quad(f, 0, np.inf, epsabs=1e-13, limit=200)[0]
        assert tw.mixture_pvalue(x, v_seed, v_item, k) == pytest.approx(ref, rel=1e-7)
    assert tw.mixture_pvalue(0.0, 0.0, 0.0, 2) == 1.0
    assert tw.mixture_pvalue(0.5, 0.0, 0.0, 2) == 0.0


def test_quantile_inverts_pvalue_so_ci_and_p_agree() -> None:
    rng = np.random.default_rng(4)
    v_seed, v_item = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)
    est = rng.normal(0, 2.5, 500)
    for k in (2, 4):
        q = tw.mixture_quantile(v_seed, v_item, k, 0.05)
        np.testing.assert_allclose(tw.mixture_pvalue(q, v_seed, v_item, k), 0.05, atol=1e-12)
        p = tw.mixture_pvalue(est, v_seed, v_item, k)
        assert np.array_equal(p < 0.05, (est - q > 0) | (est + q < 0))


def test_mde_limits_are_noncentral_t_and_normal() -> None:
    from scipy.special import chdtri, nctdtr, stdtrit

    ncp = {}
    for k in (2, 4):
        crit = stdtrit(k, 0.975)
        lo, hi = 0.0, 30.0  # noncentral t: P(|T_k(ncp)| > crit) = 0.8
        for _ in range(80):
            mid = (lo + hi) / 2
            power = 1 - nctdtr(k, mid, crit) + nctdtr(k, mid, -crit)
            lo, hi = (mid, hi) if power < 0.8 else (lo, mid)
        ncp[k] = lo
        se = np.sqrt(4.0 * k / chdtri(k, 0.5))  # the seed part, median-unbiased
        assert tw.mde(np.array(4.0), np.array(0.0), k, 0.05, 0.8) == pytest.approx(
            se * lo, rel=1e-3
        )
    z = 1.959963984540054 + 0.8416212335729143
    assert tw.mde(np.array(0.0), np.array(9.0), 2, 0.05, 0.8) == pytest.approx(3 * z, rel=1e-3)
    both = tw.mde(np.array([0.5]), np.array([0.5]), 2, 0.05, 0.8)[0]
    se = np.sqrt(0.5 * 2 / chdtri(2, 0.5) + 0.5)
    assert 2.8 * se < both < ncp[2] * se  # between the two limits


def test_paired_contrast_on_a_frame_edge_cases_and_missing_values() -> None:
    st = study_from_frame(tiny_frame(drop=9))
    fig = mean_of(np.ones(st.layout.n_strata, bool), "all")
    c = mb.paired_contrast(st, fig, "dann", "base")
    assert c.n_seeds == 3 and c.n_ids == 7 and c.method == mb.TWOWAY and c.note == ""
    assert c.ci_low < c.delta < c.ci_high and 0 < c.p_value <= 1 and c.mde > 0
    assert c == mb.paired_contrast(st, fig, "dann", "base")  # deterministic
    # the delta is over the queries both arms have: by hand from the paired table
    pair = mb.restrict(st, ("dann", "base"))
    both = np.isfinite(st.values).all(axis=0)
    assert np.isnan(pair.values).sum() == 2 * (~both).sum()
    same = mb.paired_contrast(st, fig, "base", "base")
    assert (same.delta, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    assert "no variation" in same.note
    with pytest.raises(UserError, match="no arm"):
        mb.paired_contrast(st, fig, "dann", "nope")
    with pytest.raises(UserError, match="weights"):
        mb.paired_contrast(st, mean_of(np.ones(3, bool)), "dann", "base")


def test_one_seed_one_id_and_empty_stratum_give_nan_with_reason() -> None:
    frame = tiny_frame(drop=0)
    one_seed = study_from_frame(frame.filter(pl.col("seed") == 3))
    fig = mean_of(np.ones(one_seed.layout.n_strata, bool))
    c = mb.paired_contrast(one_seed, fig, "dann", "base")
    assert math.isnan(c.p_value) and math.isnan(c.ci_low) and "one seed" in c.note
    assert np.isfinite(c.delta) and c.n_seeds == 1
    assert "one seed" in mb.figure_interval(one_seed, fig, "dann").note
    one_id = study_from_frame(frame.filter(pl.col("id").is_in(["m1", "n1"])))
    c = mb.paired_contrast(one_id, fig, "dann", "base")
    assert math.isnan(c.p_value) and "single id" in c.note
    # a stratum that one arm never observed: the figure over it is undefined, others are fine
    holes = study_from_frame(frame.filter(~((pl.col("variant") == "dann")
                                            & (pl.col("src_lang") == "sw")
                                            & (pl.col("domain") == "med"))))  # fmt: skip
    lay = holes.layout
    c = mb.paired_contrast(holes, mean_of(np.ones(lay.n_strata, bool)), "dann", "base")
    assert math.isnan(c.delta) and "no observation in stratum sw/en/med" in c.note
    ok = mb.paired_contrast(holes, mean_of(lay.mask(domains=["news"])), "dann", "base")
    assert np.isfinite(ok.p_value) and ok.n_ids == 4


def test_figure_interval_methods() -> None:
    st = simulate_study(StudySpec(seeds=5, ids_per_domain=40, seed_sd=0.2), seed=1)
    fig = worst(st.layout.domain_masks(), "worst")
    a = mb.figure_interval(st, fig, "baseline")
    b = mb.figure_interval(st, fig, "baseline", method="bootstrap", n_resamples=500, seed=3)
    assert a.value == b.value and a.ci_low < a.value < a.ci_high and b.ci_low < b.value
    assert (a.method, b.method) == (mb.TWOWAY, mb.BOOTSTRAP)
    assert b == mb.figure_interval(st, fig, "baseline", method="bootstrap", n_resamples=500, seed=3)
    with pytest.raises(UserError, match="method"):
        mb.figure_interval(st, fig, "baseline", method="cells")


def subset_means(d: np.ndarray) -> np.ndarray:
    s = d.size
    return np.sort([np.mean(c) for r in range(1, s + 1) for c in itertools.combinations(d, r)])


@pytest.mark.parametrize("n_seeds", [3, 5, 6, 7, 8])
def test_seed_sign_flip_hartigan_interval_agrees_with_p(n_seeds: int) -> None:
    rng = np.random.default_rng(n_seeds)
    for trial in range(40):
        shift = rng.uniform(0, 0.03)
        st = simulate_study(StudySpec(seeds=n_seeds, ids_per_domain=10, seed_sd=0.3,
                                      effect=8 * shift), seed=trial)  # fmt: skip
        fig = mean_of(np.ones(st.layout.n_strata, bool))
        res = mb.seed_sign_flip(st, fig, "variant", "baseline")
        lay = st.layout
        per = np.array([[fig(stratum_means(st.values[a, s], lay)) for s in range(n_seeds)]
                        for a in range(2)])  # fmt: skip
        d = per[0] - per[1]
        assert res.p_value == sign_flip_pvalue(d) and res.delta == pytest.approx(d.mean())
        assert res.min_p_value == 2 / 2**n_seeds
        k = math.floor(0.05 * 2 ** (n_seeds - 1))
        if k == 0:
            assert (res.ci_low, res.ci_high) == (-np.inf, np.inf) and res.p_value > 0.05
        else:
            sm = subset_means(d)
            assert (res.ci_low, res.ci_high) == pytest.approx((sm[k - 1], sm[-k]), abs=1e-15)
        assert (res.ci_low > 0 or res.ci_high < 0) == (res.p_value < 0.05)


def test_holm_over_contrasts() -> None:
    cs = [mb.Contrast(0.0, 0, 0, p, 0, 3, 10, "x") for p in (0.01, 0.04, float("nan"), 0.002)]
    np.testing.assert_array_equal(mb.holm(cs), holm_adjust([0.01, 0.04, np.nan, 0.002]))


def test_new_modules_stay_headless() -> None:
    """Importing them loads no heavy library (scipy only inside the functions that need it)."""
    import subprocess
    import sys

    mods = ["study_data", "twoway", "multibootstrap", "study_sim"]
    code = (
        f"import sys, importlib; [importlib.import_module('xrdiag.analyses.' + m) for m in {mods}];"
        "print([m for m in sys.modules if m.split('.')[0] in ('scipy', 'torch', 'sklearn')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
