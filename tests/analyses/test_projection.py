"""Projections: PCA against an SVD written here, seeded sampling, UMAP reproducibility, params."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.projection import Projection, projection_frame
from xrdiag.errors import UserError


def data(n: int = 120, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)) * np.linspace(3.0, 0.2, dim) + 1.5
    meta = pl.DataFrame(
        {
            "id": [f"s{i // 3}" for i in range(n)],
            "lang": [["en", "fr", "sw"][i % 3] for i in range(n)],
            "domain": ["news" if i < n // 2 else "travel" for i in range(n)],
        }
    )
    return X.astype(np.float32), meta


@pytest.mark.parametrize("n_components", [2, 3])
def test_pca_equals_svd_of_centred_data(n_components: int) -> None:
    X, _ = data()
    proj = Projection("pca", n_components=n_components).fit(X)
    centred = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    ref = u[:, :n_components] * s[:n_components]
    assert proj.embedding_.dtype == np.float32
    assert proj.embedding_.shape == (len(X), n_components)
    for k in range(n_components):  # each component is defined up to its sign
        sign = np.sign(ref[:, k] @ proj.embedding_[:, k])
        np.testing.assert_allclose(proj.embedding_[:, k], sign * ref[:, k], atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(proj.explained_variance_ratio_, (s**2 / (s**2).sum())[:n_components])
    assert proj.n_points_ == len(X) and np.array_equal(proj.indices_, np.arange(len(X)))


def test_max_points_samples_are_seeded_and_reported() -> None:
    X, meta = data(n=120)
    a = Projection("pca", max_points=50, seed=7).fit(X)
    b = Projection("pca", max_points=50, seed=7).fit(X)
    c = Projection("pca", max_points=50, seed=8).fit(X)
    assert a.n_points_ == 50 and len(a.indices_) == 50 and len(set(a.indices_)) == 50
    assert np.array_equal(a.indices_, b.indices_) and np.array_equal(a.embedding_, b.embedding_)
    assert not np.array_equal(a.indices_, c.indices_)
    ref = Projection("pca").fit(X[a.indices_])  # the sample is what got projected
    np.testing.assert_array_equal(a.embedding_, ref.embedding_)
    assert Projection("pca", max_points=500).fit(X).n_points_ == 120  # fits: nothing sampled
    frame = projection_frame(a, meta)
    assert frame.columns == ["row", "id", "lang", "domain", "x", "y"]
    assert frame["row"].to_list() == a.indices_.tolist()
    assert frame["lang"].to_list() == meta["lang"].to_numpy()[a.indices_].tolist()
    np.testing.assert_array_equal(frame["x"].to_numpy(), a.embedding_[:, 0])
    np.testing.assert_array_equal(frame["y"].to_numpy(), a.embedding_[:, 1])


def test_params_are_the_cache_key() -> None:
    base = Projection("umap").params()
    assert base["method"] == "umap" and base["library"].startswith("umap-learn==")
    for change in [
        {"seed": 1},
        {"n_neighbors": 30},
        {"min_dist": 0.5},
        {"metric": "euclidean"},
        {"max_points": 1000},
        {"n_components": 3},
        {"method": "pca"},
    ]:
        assert Projection(**{"method": "umap", **change}).params() != base, change
    # parameters PCA ignores do not split its cache
    assert Projection("pca", n_neighbors=5, seed=3).params() == Projection("pca").params()
    assert (
        Projection("pca", max_points=9, seed=3).params() != Projection("pca", max_points=9).params()
    )
    with pytest.raises(UserError, match="--projection"):
        Projection("tsne").params()
    with pytest.raises(UserError, match="n_components"):
        Projection(n_components=5).fit(np.zeros((4, 3)))


def test_umap_is_reproducible_with_a_seed() -> None:
    X, meta = data(n=90, dim=8)
    first = Projection("umap", n_neighbors=8, seed=3, max_points=60).fit(X)
    again = Projection("umap", n_neighbors=8, seed=3, max_points=60).fit(X)
    other = Projection("umap", n_neighbors=8, seed=4, max_points=60).fit(X)
    assert first.embedding_.shape == (60, 2) and first.embedding_.dtype == np.float32
    assert np.isfinite(first.embedding_).all()
    np.testing.assert_array_equal(first.embedding_, again.embedding_)
    assert not np.array_equal(first.embedding_, other.embedding_)
    assert projection_frame(first, meta).height == 60
