"""CKA estimators against naive n x n Gram implementations written here, and the frame builders."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import ortho_group

from xrdiag.analyses.cka import (
    checkpoint_cka,
    cka_matrix,
    cross_language_cka,
    debiased_linear_cka,
    layer_cka,
    linear_cka,
    minibatch_cka,
    rbf_cka,
)
from xrdiag.analyses.schema import validate_results
from xrdiag.errors import UserError

# ---- naive references (Kornblith et al. 2019; Song et al. 2012) -------------------------------


def naive_hsic(k: np.ndarray, m: np.ndarray) -> float:
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ m @ h)) / (n - 1) ** 2


def naive_cka(k: np.ndarray, m: np.ndarray) -> float:
    return naive_hsic(k, m) / np.sqrt(naive_hsic(k, k) * naive_hsic(m, m))


def linear_gram(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def rbf_gram(x: np.ndarray, factor: float = 1.0) -> np.ndarray:
    dist = pdist(x)  # the n(n-1)/2 pairs i < j
    sigma = factor * np.median(dist)
    return np.exp(-(squareform(dist) ** 2) / (2 * sigma**2))


def naive_unbiased_hsic(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. 2012, eq. 5, on explicit Grams with zeroed diagonals."""
    n = len(k)
    kt, mt = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    one = np.ones(n)
    return float(
        (
            np.trace(kt @ mt)
            + (one @ kt @ one) * (one @ mt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ kt @ mt @ one)
        )
        / (n * (n - 3))
    )


def ustat_hsic(k: np.ndarray, m: np.ndarray) -> float:
    """HSIC as a U-statistic over ordered 4-tuples of distinct rows (Song et al. 2012, eq. 4)."""
    total, count = 0.0, 0
    for t, u, v, w in permutations(range(len(k)), 4):
        total += k[t, u] * m[t, u] + k[t, u] * m[v, w] - 2 * k[t, u] * m[t, v]
        count += 1
    return total / count


def related(n: int, d: int, seed: int, noise: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Two views of shared content: a random linear map of it plus noise, and offsets."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    x = z + noise * rng.standard_normal((n, d)) + 3.0
    y = z @ rng.standard_normal((d, d)) + noise * rng.standard_normal((n, d)) - 1.0
    return x, y


# ---- estimators -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(60, 12), (15, 40)])
def test_linear_cka_equals_naive_gram(n: int, d: int) -> None:
    x, y = related(n, d, seed=1)
    ref = naive_cka(linear_gram(x), linear_gram(y))
    assert abs(linear_cka(x, y) - ref) < 1e-9
    assert 0.05 < ref < 0.999  # a non-trivial value, so the check can fail


def test_rbf_cka_equals_naive_gram() -> None:
    x, y = related(50, 10, seed=2)
    for factor in (0.5, 1.0, 2.0):
        ref = naive_cka(rbf_gram(x, factor), rbf_gram(y, factor))
        assert abs(rbf_cka(x, y, sigma_factor=factor) - ref) < 1e-9
    assert rbf_cka(x, y, 0.5) != pytest.approx(rbf_cka(x, y, 2.0), abs=1e-3)


@pytest.mark.parametrize("fn", [linear_cka, rbf_cka, debiased_linear_cka])
def test_self_similarity_is_one(fn) -> None:
    x, _ = related(40, 8, seed=3)
    assert abs(fn(x, x) - 1.0) < 1e-9


@pytest.mark.parametrize("fn", [linear_cka, rbf_cka, debiased_linear_cka])
def test_invariant_to_rotation_and_isotropic_scaling(fn) -> None:
    x, y = related(50, 10, seed=4)
    q = ortho_group.rvs(10, random_state=5)
    base = fn(x, y)
    assert abs(fn(x @ q, y) - base) < 1e-9
    assert abs(fn(x, 7.5 * y) - base) < 1e-9
    assert abs(fn(0.01 * x @ q, y @ q.T) - base) < 1e-9


def test_not_invariant_to_general_linear_map() -> None:
    x, y = related(50, 10, seed=6)
    a = np.diag(np.geomspace(0.05, 20.0, 10)) @ ortho_group.rvs(10, random_state=7)
    assert np.linalg.cond(a) < 1e4  # invertible
    assert abs(linear_cka(x @ a, y) - linear_cka(x, y)) > 1e-2


def test_debiased_removes_the_bias_of_independent_data() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((200, 50)), rng.standard_normal((200, 50))
    assert abs(debiased_linear_cka(x, y)) < 0.05
    assert linear_cka(x, y) > 0.1


def test_debiased_equals_naive_unbiased_hsic() -> None:
    x, y = related(30, 6, seed=9)
    kx, ky = linear_gram(x), linear_gram(y)
    ref = naive_unbiased_hsic(kx, ky) / np.sqrt(
        naive_unbiased_hsic(kx, kx) * naive_unbiased_hsic(ky, ky)
    )
    assert abs(debiased_linear_cka(x, y) - ref) < 1e-9


def test_unbiased_hsic_formula_equals_the_u_statistic() -> None:
    """The closed form the test trusts above agrees with the U-statistic definition."""
    x, y = related(7, 3, seed=10)
    kx, ky = linear_gram(x), linear_gram(y)
    assert naive_unbiased_hsic(kx, ky) == pytest.approx(ustat_hsic(kx, ky), rel=1e-9, abs=1e-9)


def test_minibatch_with_one_batch_is_debiased() -> None:
    x, y = related(80, 10, seed=11)
    assert abs(minibatch_cka(x, y, batch_size=80, seed=3) - debiased_linear_cka(x, y)) < 1e-12
    assert abs(minibatch_cka(x, y, batch_size=500) - debiased_linear_cka(x, y)) < 1e-12


def test_minibatch_equals_naive_average_over_unequal_batches() -> None:
    """Nguyen et al. 2021: mean unbiased HSIC over batches (here of 20 and 21 rows), then CKA."""
    x, y = related(103, 5, seed=17)
    order = np.random.default_rng(4).permutation(103)
    h = {"xy": [], "xx": [], "yy": []}
    for b in np.array_split(order, 103 // 20):
        kx, ky = linear_gram(x[b]), linear_gram(y[b])
        h["xy"].append(naive_unbiased_hsic(kx, ky))
        h["xx"].append(naive_unbiased_hsic(kx, kx))
        h["yy"].append(naive_unbiased_hsic(ky, ky))
    ref = np.mean(h["xy"]) / np.sqrt(np.mean(h["xx"]) * np.mean(h["yy"]))
    assert abs(minibatch_cka(x, y, batch_size=20, seed=4) - ref) < 1e-9


def test_no_variance_gives_nan() -> None:
    x, y = np.ones((10, 3)), related(10, 3, seed=18)[1]
    assert np.isnan(linear_cka(x, y)) and np.isnan(debiased_linear_cka(x, y))
    assert np.isnan(cka_matrix([x, y])[0, 1]) and cka_matrix([x, y])[1, 1] == pytest.approx(1.0)


def test_minibatch_converges_to_the_full_value() -> None:
    x, y = related(6000, 16, seed=12, noise=1.5)
    full = debiased_linear_cka(x, y)
    mb = minibatch_cka(x, y, batch_size=300, seed=0)
    assert abs(mb - full) < 0.01
    assert mb != minibatch_cka(x, y, batch_size=300, seed=1)  # the seed matters
    assert mb == minibatch_cka(x, y, batch_size=300, seed=0)  # and fixes the result


def test_cka_matrix_equals_pairwise_linear_cka() -> None:
    rng = np.random.default_rng(13)
    z = rng.standard_normal((300, 24))
    mats = [z @ rng.standard_normal((24, d)) + rng.standard_normal((300, d)) for d in (24, 16, 30)]
    mats.append(rng.standard_normal((300, 20)) * 1e3 + 50.0)  # unrelated, large scale
    ref = np.array([[linear_cka(a, b) for b in mats] for a in mats])
    assert np.abs(ref - ref.T).max() < 1e-12
    for kwargs in ({}, {"block_rows": 64, "max_cols": 40}, {"dtype": np.float64}):
        assert np.abs(cka_matrix(mats, **kwargs) - ref).max() < 1e-6


def test_cka_matrix_with_fewer_rows_than_features() -> None:
    rng = np.random.default_rng(14)
    mats = [rng.standard_normal((12, 40)) for _ in range(3)]
    ref = np.array([[naive_cka(linear_gram(a), linear_gram(b)) for b in mats] for a in mats])
    assert np.abs(cka_matrix(mats) - ref).max() < 1e-9


# ---- frame builders ---------------------------------------------------------------------------

LANGS = ["de", "en", "fr"]


def corpus(
    n_ids: int = 40, seed: int = 15, missing: int = 5
) -> tuple[dict[int, np.ndarray], pl.DataFrame]:
    """Shuffled long-format meta for 3 languages x n_ids, two layers; `fr` lacks `missing` ids."""
    rng = np.random.default_rng(seed)
    content = rng.standard_normal((n_ids, 6))
    rows, vecs = [], {0: [], 1: []}
    for li, lang in enumerate(LANGS):
        mix = rng.standard_normal((6, 6))
        for i in range(n_ids - (missing if lang == "fr" else 0)):
            dom = "news" if i % 2 else "medical"
            rows.append({"id": f"u{i:03d}", "lang": lang, "domain": dom, "split": "test"})
            v = content[i] @ mix + li + 0.5 * rng.standard_normal(6)
            vecs[0].append(v)
            vecs[1].append(np.tanh(v) + 0.3 * rng.standard_normal(6))
    order = rng.permutation(len(rows))
    meta = pl.DataFrame([rows[i] for i in order])
    return {k: np.array(v)[order] for k, v in vecs.items()}, meta


def aligned(emb: np.ndarray, meta: pl.DataFrame, lang: str, ids: list[str]) -> np.ndarray:
    pos = {(r["id"], r["lang"]): i for i, r in enumerate(meta.iter_rows(named=True))}
    return emb[[pos[(i, lang)] for i in ids]]


def ids_of(meta: pl.DataFrame, *langs: str, domain: str | None = None) -> list[str]:
    if domain is not None:
        meta = meta.filter(pl.col("domain") == domain)
    return sorted(set.intersection(*(set(meta.filter(pl.col("lang") == g)["id"]) for g in langs)))


@pytest.mark.parametrize("missing", [0, 5])
def test_cross_language_matches_ids_across_shuffled_rows(missing: int) -> None:
    """missing=0: one aligned group (cka_matrix); missing=5: `fr` pairs join on shared ids."""
    emb, meta = corpus(missing=missing)
    frame = cross_language_cka(emb, meta, kinds=("linear", "rbf", "debiased"), checkpoint="c1")
    validate_results(frame)
    assert frame.height == 2 * 3 * 3  # layers x pairs x kinds
    assert set(frame["analysis"]) == {"cka"} and set(frame["checkpoint"]) == {"c1"}
    assert (frame["src_lang"] < frame["tgt_lang"]).all()
    refs = {"linear_cka": linear_cka, "rbf_cka": rbf_cka, "debiased_cka": debiased_linear_cka}
    for row in frame.iter_rows(named=True):
        ids = ids_of(meta, row["src_lang"], row["tgt_lang"])
        x = aligned(emb[row["layer"]], meta, row["src_lang"], ids)
        y = aligned(emb[row["layer"]], meta, row["tgt_lang"], ids)
        has_fr = "fr" in (row["src_lang"], row["tgt_lang"])
        assert row["n"] == len(ids) == (40 - missing if has_fr else 40)
        assert abs(row["value"] - refs[row["metric"]](x, y)) < 1e-6
        assert row["domain"] == "all"
        # rows paired by anything but id would give unrelated pairs: a clearly lower value
        assert row["value"] - refs[row["metric"]](x, y[::-1]) > 0.1


def test_cross_language_per_domain_and_domain_filter() -> None:
    emb, meta = corpus()
    frame = cross_language_cka(emb, meta, per_domain=True, langs=["de", "fr"])
    assert sorted(set(frame["domain"])) == ["all", "medical", "news"]
    for row in frame.filter(pl.col("domain") != "all").iter_rows(named=True):
        ids = ids_of(meta, "de", "fr", domain=row["domain"])
        x = aligned(emb[row["layer"]], meta, "de", ids)
        y = aligned(emb[row["layer"]], meta, "fr", ids)
        assert row["n"] == len(ids)
        assert abs(row["value"] - linear_cka(x, y)) < 1e-6
    only = cross_language_cka(emb, meta, domain="news", langs=["de", "fr"])
    assert set(only["domain"]) == {"news"}
    news = frame.filter(pl.col("domain") == "news").sort("layer")["value"]
    assert np.allclose(only.sort("layer")["value"].to_numpy(), news.to_numpy(), atol=1e-12)


def test_user_errors() -> None:
    emb, meta = corpus(n_ids=10)
    with pytest.raises(UserError, match="'xx'"):
        cross_language_cka(emb, meta, langs=["de", "xx"])
    with pytest.raises(UserError, match="'sports'"):
        cross_language_cka(emb, meta, domain="sports")
    with pytest.raises(UserError, match="'cosine'"):
        cross_language_cka(emb, meta, kinds=("cosine",))
    with pytest.raises(UserError, match="'xx'"):
        layer_cka(emb, meta, langs=["xx"])
    with pytest.raises(UserError, match="'xx'"):
        checkpoint_cka(emb, emb, meta, langs=["xx"])
    dup = pl.concat([meta, meta.head(1)])
    with pytest.raises(UserError, match="twice"):
        cross_language_cka({k: np.vstack([v, v[:1]]) for k, v in emb.items()}, dup)


def test_layer_cka_full_square() -> None:
    emb, meta = corpus()
    emb[3] = emb[0] @ ortho_group.rvs(6, random_state=1)  # a rotated copy of layer 0
    frame = layer_cka(emb, meta, per_lang=True)
    validate_results(frame)
    assert frame.height == 9 * 4  # 3x3 layer pairs, pooled + 3 languages
    pooled = frame.filter(pl.col("src_lang").is_null())
    for row in pooled.iter_rows(named=True):
        j = int(row["metric"].split("@")[1])
        ref = linear_cka(emb[row["layer"]], emb[j])
        assert abs(row["value"] - ref) < 1e-6 and row["n"] == meta.height
    at = {(r["layer"], r["metric"]): r["value"] for r in pooled.iter_rows(named=True)}
    assert at[(0, "linear_cka_layer@3")] == pytest.approx(1.0, abs=1e-6)
    assert at[(1, "linear_cka_layer@1")] == pytest.approx(1.0, abs=1e-6)
    de = frame.filter(pl.col("src_lang") == "de")
    rows = meta["lang"].to_numpy() == "de"
    ref = linear_cka(emb[0][rows], emb[1][rows])
    assert de.filter((pl.col("layer") == 0) & (pl.col("metric") == "linear_cka_layer@1"))[
        "value"
    ].item() == pytest.approx(ref, abs=1e-6)


def test_checkpoint_cka_per_language_and_pooled() -> None:
    emb, meta = corpus()
    rng = np.random.default_rng(16)
    other = {
        k: v @ rng.standard_normal((6, 6)) + rng.standard_normal(v.shape) for k, v in emb.items()
    }
    other[7] = emb[0]  # a layer only one checkpoint has is skipped
    frame = checkpoint_cka(emb, other, meta, checkpoint="step-1")
    validate_results(frame)
    assert frame.height == 2 * 4 and set(frame["metric"]) == {"linear_cka_checkpoint"}
    for row in frame.iter_rows(named=True):
        rows = (
            np.ones(meta.height, bool)
            if row["src_lang"] is None
            else (meta["lang"].to_numpy() == row["src_lang"])
        )
        assert row["src_lang"] == row["tgt_lang"] and row["n"] == rows.sum()
        ref = linear_cka(emb[row["layer"]][rows], other[row["layer"]][rows])
        assert abs(row["value"] - ref) < 1e-6
    same = checkpoint_cka(emb, emb, meta)
    assert np.allclose(same["value"].to_numpy(), 1.0, atol=1e-6)
    with pytest.raises(UserError, match="share no layer"):
        checkpoint_cka(emb, {9: emb[0]}, meta)
