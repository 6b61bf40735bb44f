"""Geometry metrics against naive loops written out here, and their behaviour on known spaces."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.geometry import geometry_results, partition_isotropy, random_pairs
from xrdiag.analyses.schema import RESULT_SCHEMA
from xrdiag.errors import UserError

LANGS = ["am", "en", "zh"]


def space(n_ids: int = 20, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, pl.DataFrame]:
    """A toy multi-way corpus with a per-language offset and unequal scales per dimension."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(size=(len(LANGS), dim))
    rows, meta = [], []
    for i in range(n_ids):
        for k, lang in enumerate(LANGS):
            rows.append(offsets[k] + rng.normal(size=dim) * np.arange(1, dim + 1) / dim)
            meta.append((f"s{i}", lang, "news" if i % 3 else "travel"))
    frame = pl.DataFrame(meta, schema=["id", "lang", "domain"], orient="row")
    return np.asarray(rows, dtype=np.float32), frame


def naive_cosine(u, v) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def naive_partition_ratio(W: np.ndarray) -> float:
    """Mu & Viswanath's I(W) with eigenvectors from an SVD and Z(c) summed term by term."""
    W = W.astype(np.float64)
    _, _, vt = np.linalg.svd(W, full_matrices=False)  # rows: eigenvectors of W^T W
    zs = []
    for c in list(vt) + [-v for v in vt]:
        zs.append(sum(math.exp(sum(ci * wi for ci, wi in zip(c, w, strict=True))) for w in W))
    return min(zs) / max(zs)


def pick(res: pl.DataFrame, **eq) -> pl.DataFrame:
    cond = pl.lit(True)
    for col, val in eq.items():
        cond = cond & (pl.col(col) == val)
    return res.filter(cond)


def test_random_pairs_are_distinct_and_seeded() -> None:
    i, j = random_pairs(5, 4000, seed=2)
    assert (i != j).all() and i.min() == 0 and j.max() == 4
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == 20  # every ordered pair drawn
    i2, j2 = random_pairs(5, 4000, seed=2)
    assert np.array_equal(i, i2) and np.array_equal(j, j2)
    assert not np.array_equal(i, random_pairs(5, 4000, seed=3)[0])


def test_every_metric_equals_a_naive_loop() -> None:
    X, meta = space()
    res = geometry_results({1: X}, meta, n_pairs=300, seed=4)
    assert res.schema == pl.Schema(RESULT_SCHEMA)
    for domain in ["all", "news", "travel"]:
        rows = (
            np.arange(meta.height) if domain == "all" else np.flatnonzero(meta["domain"] == domain)
        )
        W, langs = X[rows].astype(np.float64), meta["lang"].to_numpy()[rows]
        i, j = random_pairs(len(W), 300, seed=4)
        cosines = [naive_cosine(W[a], W[b]) for a, b in zip(i, j, strict=True)]
        got = pick(res, metric="mean_random_cosine", domain=domain).row(0, named=True)
        assert got["value"] == pytest.approx(sum(cosines) / 300, abs=1e-6)
        assert got["n"] == 300 and got["ci_low"] < got["value"] < got["ci_high"]
        got = pick(res, metric="isotropy_partition_ratio", domain=domain)["value"].item()
        assert got == pytest.approx(naive_partition_ratio(W), rel=1e-6)
        centroids = {}
        for lang in LANGS:
            vecs = [W[r] for r in range(len(W)) if langs[r] == lang]
            norm = sum(math.sqrt(sum(x * x for x in v)) for v in vecs) / len(vecs)
            got = pick(res, metric="mean_norm", domain=domain, src_lang=lang)
            assert got["value"].item() == pytest.approx(norm, abs=1e-6)
            assert got["n"].item() == len(vecs)
            centroids[lang] = [sum(v[k] for v in vecs) / len(vecs) for k in range(W.shape[1])]
        for a, b in [("am", "en"), ("am", "zh"), ("en", "zh")]:
            ca, cb = centroids[a], centroids[b]
            euclid = math.sqrt(sum((x - y) ** 2 for x, y in zip(ca, cb, strict=True)))
            got = pick(res, metric="centroid_distance", domain=domain, src_lang=a, tgt_lang=b)
            assert got["value"].item() == pytest.approx(euclid, abs=1e-6)
            got = pick(
                res, metric="centroid_cosine_distance", domain=domain, src_lang=a, tgt_lang=b
            )
            assert got["value"].item() == pytest.approx(1 - naive_cosine(ca, cb), abs=1e-6)


def test_isotropic_gaussian_is_isotropic() -> None:
    X = np.random.default_rng(0).normal(size=(4000, 16)).astype(np.float32)
    assert partition_isotropy(X) > 0.8
    meta = pl.DataFrame({"lang": ["en"] * 4000, "domain": ["news"] * 4000})
    res = geometry_results({0: X}, meta, per_domain=False)
    assert abs(pick(res, metric="mean_random_cosine")["value"].item()) < 0.03
    assert pick(res, metric="isotropy_partition_ratio")["value"].item() > 0.8


def test_a_common_offset_is_anisotropic() -> None:
    X = np.random.default_rng(0).normal(size=(4000, 16)) + 3.0
    assert partition_isotropy(X) < 1e-6
    meta = pl.DataFrame({"lang": ["en"] * 4000, "domain": ["news"] * 4000})
    res = geometry_results({0: X.astype(np.float32)}, meta, per_domain=False)
    assert pick(res, metric="mean_random_cosine")["value"].item() > 0.85
    # large vectors would overflow exp() term by term; the ratio must still be finite
    assert 0.0 <= partition_isotropy(X * 100.0) < 1e-6


def test_scopes_layers_and_pairs() -> None:
    X, meta = space()
    res = geometry_results({0: X, 3: X + 1.0}, meta, layers=[3], n_pairs=50)
    assert set(res["layer"]) == {3}
    assert set(res["domain"]) == {"all", "news", "travel"}
    per_scope = pick(res, metric="centroid_distance", domain="all")
    assert per_scope.select("src_lang", "tgt_lang").rows() == [
        ("am", "en"),
        ("am", "zh"),
        ("en", "zh"),
    ]
    assert (
        pick(res, metric="centroid_distance", domain="news")["n"].to_list() == [26] * 3
    )  # 13 news ids, two languages
    only_all = geometry_results({0: X}, meta, per_domain=False, n_pairs=50)
    assert set(only_all["domain"]) == {"all"}
    with pytest.raises(UserError, match="--layers"):
        geometry_results({0: X}, meta, layers=[5])
