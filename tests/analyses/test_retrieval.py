"""Retrieval diagnostics against brute force on full similarity matrices (float64, np.sort).

The reference ranks each query of a domain against the pair's common pool (every target row
whose id has a source row), pessimistically, with the margin's neighbourhoods in that pool.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.bootstrap import BootstrapMeans, bootstrap_ci
from xrdiag.analyses.corrections import (
    center_languages,
    remove_language_directions,
    remove_mean_subspace,
)
from xrdiag.analyses.language_bias import language_bias
from xrdiag.analyses.retrieval import query_frame, query_ranks, retrieval_results
from xrdiag.analyses.schema import RESULT_SCHEMA, parse_metric
from xrdiag.errors import UserError

LANGS = ("de", "en", "fr")


def synthetic(
    n_ids: int = 36, d: int = 24, offset: float = 2.5, noise: float = 0.6, seed: int = 0
) -> tuple[np.ndarray, pl.DataFrame]:
    """Shared meaning vectors + a large per-language offset + noise, in two domains.

    Shaped like real multilingual embeddings (language identity dominates the raw space), so
    removing the language offset should help retrieval. A few rows are dropped so that some
    queries have no gold translation.
    """
    rng = np.random.default_rng(seed)
    meaning = rng.standard_normal((n_ids, d))
    offsets = offset * rng.standard_normal((len(LANGS), d))
    rows, meta = [], []
    for li, lang in enumerate(LANGS):
        for i in range(n_ids):
            if (i + li) % 11 == 0:
                continue  # missing translation
            rows.append(meaning[i] + offsets[li] + noise * rng.standard_normal(d))
            meta.append({"id": f"u{i}", "lang": lang, "domain": "med" if i % 3 else "news"})
    return np.asarray(rows, dtype=np.float32), pl.DataFrame(meta)


def ref_space(emb: np.ndarray, meta: pl.DataFrame, correction: str, r: int = 1) -> np.ndarray:
    """Independent corrections in float64, then L2 normalisation."""
    x = emb.astype(np.float64)
    langs = meta["lang"].to_numpy()
    names = sorted(set(langs))
    means = np.stack([x[langs == lang].mean(axis=0) for lang in names])
    if correction == "center":
        for lang, mu in zip(names, means, strict=True):
            x[langs == lang] -= mu
    elif correction == "mean_subspace":
        centred = means - means.mean(axis=0)
        _, vecs = np.linalg.eigh(centred.T @ centred)  # top eigenvectors = right singular vecs
        top = vecs[:, ::-1][:, :r]
        x = x @ (np.eye(x.shape[1]) - top @ top.T)
    elif correction == "lir":  # Yang et al. 2021: each language's own top directions
        for lang in names:
            rows = x[langs == lang]
            _, vecs = np.linalg.eigh(rows.T @ rows)  # uncentred: the raw embedding matrix
            top = vecs[:, ::-1][:, :r]
            x[langs == lang] = rows @ (np.eye(x.shape[1]) - top @ top.T)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pessimistic_rank(scores: np.ndarray, gold: int) -> int:
    return int(scores.size - np.searchsorted(np.sort(scores), scores[gold], side="left"))


def ref_metrics(x, meta, src, tgt, domain, scoring, ks=(1, 5, 10), margin_k=4):
    """recall@k and MRR by brute force on the full matrix; returns (dict, n, pool)."""
    langs, ids = meta["lang"].to_numpy(), meta["id"].to_numpy()
    shared = set(ids[langs == src]) & set(ids[langs == tgt])
    pooled = np.isin(ids, list(shared))
    qi = np.nonzero(pooled & (langs == src))[0]  # every source row with a translation
    di = np.nonzero(pooled & (langs == tgt))[0]  # the common pool of the pair
    sims = x[qi] @ x[di].T
    if scoring == "margin":
        a = np.sort(sims, axis=1)[:, -margin_k:].mean(axis=1)
        b = np.sort(sims, axis=0)[-margin_k:, :].mean(axis=0)
        sims = sims / (0.5 * a[:, None] + 0.5 * b[None, :])
    doms = meta["domain"].to_numpy()
    ranks = []
    for row, q in enumerate(qi):
        if domain != "all" and doms[q] != domain:
            continue
        hit = np.nonzero(ids[di] == ids[q])[0]
        ranks.append(pessimistic_rank(sims[row], hit[0]))
    r = np.asarray(ranks, dtype=np.float64)
    out = {f"recall@{k}": float(np.mean(r <= k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / r))
    return out, r.size, di.size


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, pl.DataFrame]:
    return synthetic()


@pytest.fixture(scope="module")
def results(data) -> pl.DataFrame:
    emb, meta = data
    return retrieval_results(emb, meta, layer=3, bootstrap=50, block_size=7)


def test_schema_and_metric_names(results: pl.DataFrame) -> None:
    assert results.schema == pl.Schema(RESULT_SCHEMA)
    assert set(results["analysis"]) == {"retrieval"} and set(results["layer"]) == {3}
    assert set(results["domain"]) == {"med", "news", "all"}
    parsed = {parse_metric(m) for m in results["metric"]}
    bases = {"recall@1", "recall@5", "recall@10", "mrr"}
    assert parsed == {(b, s, c) for b in bases for s in ("cos", "margin") for c in CORR}
    assert results.height == 6 * 3 * 4 * 2 * 4  # pairs x domains x bases x scorings x corrections


CORR = ("none", "center", "lir", "mean_subspace")


@pytest.mark.parametrize("correction", CORR)
@pytest.mark.parametrize("scoring", ["cos", "margin"])
def test_recall_mrr_equal_brute_force(data, results, correction: str, scoring: str) -> None:
    emb, meta = data
    x = ref_space(emb, meta, correction)
    for row in results.filter(pl.col("metric").str.ends_with(f"|{scoring}|{correction}")).iter_rows(
        named=True
    ):
        ref, n, pool = ref_metrics(
            x, meta, row["src_lang"], row["tgt_lang"], row["domain"], scoring
        )
        assert row["n"] == n and row["pool"] == pool
        assert row["value"] == pytest.approx(ref[parse_metric(row["metric"])[0]], abs=1e-12)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]


def test_exact_ties_count_against_the_gold() -> None:
    """Duplicate vectors with exactly representable dot products: ties are exact ties."""
    rng = np.random.default_rng(5)
    n, d = 30, 16
    base = rng.choice([-0.25, 0.25], size=(n, d))
    en = base.copy()
    fr = base.copy()
    fr[10:20] = fr[0]  # ten French rows identical: their English golds tie with each other
    en[20:25] = en[3]
    emb = np.vstack([en, fr]).astype(np.float32)
    meta = pl.DataFrame({"id": [f"i{i}" for i in range(n)] * 2, "lang": ["en"] * n + ["fr"] * n})
    meta = meta.with_columns(domain=pl.lit("x"))
    res = retrieval_results(
        emb, meta, layer=0, scorings=["cos"], corrections=["none"], per_domain=False, bootstrap=0
    )
    x = emb.astype(np.float64)
    for row in res.iter_rows(named=True):
        ref, n_used, _ = ref_metrics(x, meta, row["src_lang"], row["tgt_lang"], "all", "cos")
        assert row["value"] == pytest.approx(ref[parse_metric(row["metric"])[0]], abs=1e-12)
        assert row["n"] == n_used and row["ci_low"] is None
    r1 = res.filter(pl.col("metric") == "recall@1|cos|none", pl.col("src_lang") == "en")
    assert r1["value"][0] < 1.0  # pessimistic: tied golds are not all counted as hits


def test_corrections_equal_direct_computation(data) -> None:
    emb, meta = data
    langs = meta["lang"].to_numpy()
    centred = center_languages(emb, langs)
    for lang in LANGS:
        expect = emb[langs == lang].astype(np.float64)
        np.testing.assert_allclose(centred[langs == lang], expect - expect.mean(0), atol=1e-6)
    for correction, fn in (("mean_subspace", remove_mean_subspace),
                           ("lir", remove_language_directions)):  # fmt: skip
        for r in (1, 2):
            got = fn(emb, langs, r)
            got = got / np.linalg.norm(got, axis=1, keepdims=True)
            np.testing.assert_allclose(got, ref_space(emb, meta, correction, r), atol=1e-6)
    # r = L - 1 removes every direction along which the language means differ.
    full = remove_mean_subspace(emb, langs, len(LANGS) - 1)
    means = np.stack([full[langs == lang].mean(0) for lang in LANGS])
    np.testing.assert_allclose(means - means[0], 0.0, atol=1e-9)
    # LIR leaves no component of a language's rows along its own top singular direction.
    lir = remove_language_directions(emb, langs, 1)
    for lang in LANGS:
        top = np.linalg.svd(emb[langs == lang].astype(np.float64), full_matrices=False)[2][0]
        np.testing.assert_allclose(lir[langs == lang] @ top, 0.0, atol=1e-9)


def test_corrections_help_on_language_offset_data(results: pl.DataFrame) -> None:
    r1 = results.filter(pl.col("domain") == "all", pl.col("metric").str.starts_with("recall@1|"))
    mean = {m: r1.filter(pl.col("metric") == m)["value"].mean() for m in r1["metric"].unique()}
    assert mean["recall@1|cos|center"] > mean["recall@1|cos|none"] + 0.2
    assert mean["recall@1|cos|mean_subspace"] > mean["recall@1|cos|none"]
    assert mean["recall@1|cos|lir"] > mean["recall@1|cos|none"]


def test_every_domain_is_ranked_against_the_common_pool() -> None:
    """A distractor from another domain (an exact copy of the gold) hurts the news queries too:
    the pool is the same for every domain, so domains differ only by their queries."""
    emb, meta = synthetic(offset=0.0, noise=0.05, seed=2)
    ids, langs, doms = (meta[c].to_numpy() for c in ("id", "lang", "domain"))
    news_en = np.nonzero((langs == "en") & (doms == "news"))[0]
    med_en = np.nonzero((langs == "en") & (doms == "med"))[0]
    emb[med_en[: news_en.size]] = emb[news_en]
    res = retrieval_results(
        emb, meta, layer=0, pairs=[("fr", "en")], scorings=["cos"], corrections=["none"],
        ks=[1], bootstrap=0,
    )  # fmt: skip
    value = {
        row["domain"]: (row["value"], row["n"], row["pool"]) for row in res.iter_rows(named=True)
    }
    shared = set(ids[langs == "fr"]) & set(ids[langs == "en"])
    assert value["news"][2] == value["med"][2] == value["all"][2] == len(shared)
    assert value["news"][0] < 1.0  # the copies in the medical rows tie with the news golds
    assert value["all"][1] == value["news"][1] + value["med"][1]


def test_the_tie_example_of_the_issue_on_every_path() -> None:
    """3 en / 3 de rows, de rows 2 and 3 identical: pessimistic en->de ranks are [1, 2, 2]
    (recall@1 1/3, MRR 2/3) whichever path computes them: forward or reverse, blocked or not,
    cosine or margin."""
    rng = np.random.default_rng(0)
    en = rng.standard_normal((3, 8)).astype(np.float32)
    de = en + 0.01 * rng.standard_normal((3, 8)).astype(np.float32)
    de[2] = de[1]
    emb = np.vstack([en, de])
    meta = pl.DataFrame({"id": ["a", "b", "c"] * 2, "lang": ["en"] * 3 + ["de"] * 3,
                         "domain": ["x"] * 6})  # fmt: skip
    for pivot, pairs in ((None, [("en", "de")]), ("en", "all"), ("de", "all")):
        for block in (1, 2, 4096):
            for scoring in ("cos", "margin"):
                ranks = query_ranks(
                    emb, meta, pairs=pairs, pivot=pivot, scorings=[scoring],
                    corrections=["none"], margin_k=1, block_size=block,
                )  # fmt: skip
                en_de = next(r for r in ranks if (r.src, r.tgt) == ("en", "de"))
                assert en_de.ranks.tolist() == [1, 2, 2], (pivot, block, scoring)
    res = retrieval_results(emb, meta, layer=0, pivot="en", ks=[1], scorings=["cos"],
                            corrections=["none"], bootstrap=0, margin_k=1)  # fmt: skip
    row = res.filter(pl.col("src_lang") == "en", pl.col("domain") == "all")
    got = dict(zip(row["metric"], row["value"], strict=True))
    assert got["recall@1|cos|none"] == pytest.approx(1 / 3)
    assert got["mrr|cos|none"] == pytest.approx(2 / 3)


def test_identical_texts_count_as_the_gold_with_duplicates_text() -> None:
    """Two ids with the same English text: retrieving either is right under `text`, not `id`."""
    rng = np.random.default_rng(4)
    fr = rng.standard_normal((4, 8)).astype(np.float32)
    en = fr.copy()
    en[1] = en[0]  # ids a and b have the same English sentence (and the same vector)
    emb = np.vstack([fr, en])
    meta = pl.DataFrame({"id": list("abcd") * 2, "lang": ["fr"] * 4 + ["en"] * 4,
                         "domain": ["x"] * 8})  # fmt: skip
    texts = ["un", "deux", "trois", "quatre", "same", "same", "three", "four"]
    common = {"pairs": [("fr", "en")], "scorings": ["cos"], "corrections": ["none"],
              "margin_k": 1}  # fmt: skip
    strict = query_ranks(emb, meta, **common)[0]
    aware = query_ranks(emb, meta, texts=texts, duplicates="text", **common)[0]
    assert strict.ranks.tolist() == [2, 2, 1, 1]  # a and b tie with each other's gold
    assert aware.ranks.tolist() == [1, 1, 1, 1]
    with pytest.raises(UserError, match="texts"):
        query_ranks(emb, meta, duplicates="text", **common)


def test_domain_pools_have_equal_size_and_record_it() -> None:
    emb, meta = synthetic(n_ids=60, seed=3)
    res = retrieval_results(
        emb, meta, layer=0, pairs=[("fr", "en")], scorings=["cos"], corrections=["none"],
        ks=[1], bootstrap=30, pool="domain", pool_size=12, pool_repeats=3,
    )  # fmt: skip
    per_domain = res.filter(pl.col("domain") != "all")
    assert set(per_domain["pool"]) == {12}
    assert res.filter(pl.col("domain") == "all")["pool"][0] > 12  # "all" keeps the common pool
    assert (per_domain["ci_low"] <= per_domain["value"]).all()
    # The figure is the mean over the draws, each an independent within-domain ranking.
    again = retrieval_results(
        emb, meta, layer=0, pairs=[("fr", "en")], scorings=["cos"], corrections=["none"],
        ks=[1], bootstrap=30, pool="domain", pool_size=12, pool_repeats=3,
    )  # fmt: skip
    assert res.equals(again)
    with pytest.raises(UserError, match="--pool-size 500"):
        retrieval_results(emb, meta, layer=0, pool="domain", pool_size=500, bootstrap=0)


def test_query_frame_holds_the_primary_ranks(data) -> None:
    emb, meta = data
    ranks = query_ranks(emb, meta, pivot="en", corrections=["none", "center"])
    frame = query_frame(ranks, layer=5)
    assert set(frame["layer"]) == {5}
    pairs = set(zip(frame["src_lang"], frame["tgt_lang"], strict=True))
    assert pairs == {("de", "en"), ("en", "de"), ("fr", "en"), ("en", "fr")}
    primary = next(r for r in ranks if (r.src, r.tgt, r.scoring, r.correction)
                   == ("de", "en", "cos", "none"))  # fmt: skip
    de = frame.filter(pl.col("src_lang") == "de")
    assert de["rank"].to_list() == primary.ranks.tolist() and de["id"].to_list() == list(
        primary.ids
    )


def test_pivot_gives_both_directions_only() -> None:
    emb, meta = synthetic(n_ids=20)
    res = retrieval_results(
        emb, meta, layer=1, pivot="en", ks=[1], per_domain=False, bootstrap=0, corrections=["none"]
    )
    assert set(zip(res["src_lang"], res["tgt_lang"], strict=True)) == {
        ("de", "en"), ("en", "de"), ("fr", "en"), ("en", "fr"),
    }  # fmt: skip
    one_way = retrieval_results(
        emb, meta, layer=1, pairs=[("de", "en")], ks=[1], per_domain=False, bootstrap=0,
        corrections=["none"],
    )  # fmt: skip
    both = res.filter(pl.col("src_lang") == "de").sort("metric")
    assert both["value"].to_list() == one_way.sort("metric")["value"].to_list()


def test_domains_argument_and_all_pool(data) -> None:
    emb, meta = data
    res = retrieval_results(
        emb, meta, layer=0, domains=["news"], ks=[1], bootstrap=0, corrections=["none"]
    )
    assert set(res["domain"]) == {"news", "all"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pairs": [("en", "xx")]}, "'xx' not in the data"),
        ({"pivot": "xx"}, "--pivot: language 'xx'"),
        ({"pivot": "en", "pairs": [("en", "fr")]}, "not both"),
        ({"domains": ["legal"]}, "'legal' not in the data"),
        ({"ks": [1, 50]}, "--ks: 50 is larger than the pool"),
        ({"margin_k": 40}, "--margin-k: 40 is larger than the pool"),
        ({"scorings": ["dot"]}, "scorings"),
        ({"corrections": ["whiten"]}, "corrections"),
        ({"lir_components": 3, "corrections": ["mean_subspace"]}, "--lir-components"),
        ({"lir_components": 24, "corrections": ["lir"]}, "--lir-components"),
        ({"pool": "random"}, "--pool"),
        ({"duplicates": "fuzzy"}, "--duplicates"),
        ({"ks": [0]}, "--ks"),
    ],
)
def test_user_errors(data, kwargs: dict, match: str) -> None:
    emb, meta = data
    with pytest.raises(UserError, match=match) as err:
        retrieval_results(emb, meta, layer=0, bootstrap=0, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_metadata_is_a_user_error(data) -> None:
    emb, meta = data
    ids = meta["id"].to_list()
    ids[2] = ids[0]
    with pytest.raises(UserError, match="row 3, column 'id': id 'u1' already appears in row 1"):
        retrieval_results(emb, meta.with_columns(id=pl.Series(ids)), layer=0)
    with pytest.raises(UserError, match="column 'lang' has empty values"):
        retrieval_results(emb, meta.with_columns(lang=pl.lit(None, pl.String)), layer=0)
    with pytest.raises(UserError, match="column 'domain' is missing"):
        retrieval_results(emb, meta.drop("domain"), layer=0)
    with pytest.raises(UserError, match="shape"):
        retrieval_results(emb[:-1], meta, layer=0)


def test_bootstrap_reproducible_and_equal_to_naive_loop() -> None:
    rng = np.random.default_rng(1)
    values = (rng.random(57) < 0.7).astype(float) + 0.1 * rng.random(57)
    rgen = np.random.default_rng(11)
    means = [values[rgen.integers(0, 57, size=57)].mean() for _ in range(300)]
    ref = np.quantile(means, [0.025, 0.975])
    low, high = bootstrap_ci(values, n_resamples=300, seed=11)
    assert (low, high) == bootstrap_ci(values, n_resamples=300, seed=11)
    np.testing.assert_allclose([low, high], ref, atol=1e-12)
    assert low <= values.mean() <= high
    assert (low, high) != bootstrap_ci(values, n_resamples=300, seed=12)
    custom = bootstrap_ci(values, statistic=np.mean, n_resamples=300, seed=11)
    np.testing.assert_allclose(custom, ref, atol=1e-12)
    cols = np.column_stack([values, values**2])
    lows, highs = BootstrapMeans(57, 300, 11).intervals(cols)
    assert lows[0] == pytest.approx(low, abs=1e-12) and highs[0] == pytest.approx(high, abs=1e-12)


def test_language_bias_equals_brute_force(data) -> None:
    emb, meta = data
    res = language_bias(emb, meta, layer=2, corrections=["none", "center"], bootstrap=40)
    ids, langs = meta["id"].to_numpy(), meta["lang"].to_numpy()
    for correction in ("none", "center"):
        x = ref_space(emb, meta, correction)
        sims = x @ x.T
        for lang in LANGS:
            spreads = []
            for q in np.nonzero(langs == lang)[0]:
                trans = np.nonzero((ids == ids[q]) & (np.arange(ids.size) != q))[0]
                if trans.size < 2:
                    continue
                others = np.delete(np.arange(ids.size), q)
                row = sims[q, others]
                ranks = [pessimistic_rank(row, int(np.searchsorted(others, t))) for t in trans]
                spreads.append(max(ranks) - min(ranks))
            got = res.filter(
                pl.col("src_lang") == lang,
                pl.col("metric") == f"lang_bias_rank_spread|cos|{correction}",
            ).row(0, named=True)
            assert got["n"] == len(spreads) and got["tgt_lang"] is None
            assert got["value"] == pytest.approx(np.mean(spreads), abs=1e-12)
            assert got["ci_low"] <= got["value"] <= got["ci_high"]


def test_language_bias_sampling_is_seeded(data) -> None:
    emb, meta = data
    kw = {"layer": 0, "corrections": ["none"], "queries_per_lang": 10, "bootstrap": 0}
    a, b = language_bias(emb, meta, seed=1, **kw), language_bias(emb, meta, seed=1, **kw)
    assert a.equals(b) and set(a["n"]) == {10}
    with pytest.raises(UserError, match="'xx' not in the data"):
        language_bias(emb, meta, layer=0, languages=["en", "xx"])


def test_language_bias_of_separate_pairs_is_empty_not_a_crash() -> None:
    """Tatoeba-shaped rows (English per pair under pair-scoped ids): no id has two
    translations, so there is no spread to report."""
    rng = np.random.default_rng(2)
    ids = [f"fra-eng:{i}" for i in range(5)] * 2 + [f"deu-eng:{i}" for i in range(4)] * 2
    langs = ["fr"] * 5 + ["en"] * 5 + ["de"] * 4 + ["en"] * 4
    meta = pl.DataFrame({"id": ids, "lang": langs, "domain": ["p"] * len(ids)})
    emb = rng.standard_normal((len(ids), 6)).astype(np.float32)
    assert language_bias(emb, meta, layer=0, bootstrap=0).height == 0
    res = retrieval_results(emb, meta, layer=0, pivot="en", ks=[1], bootstrap=0)
    assert set(res.filter(pl.col("domain") == "all")["pool"]) == {5, 4}
