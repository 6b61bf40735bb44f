"""2-D (or 3-D) projections of embeddings for scatter plots: PCA or UMAP, scikit-learn style.

`__init__` only stores parameters, so `params()` is exactly what a cache key needs; `fit`
does the work. A projection never samples silently: with `max_points` set and more rows than
that, a seeded sample is drawn and `indices_` / `n_points_` say which rows and how many.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.errors import UserError

METHODS = ("pca", "umap")
_LIBRARY = {"pca": "scikit-learn", "umap": "umap-learn"}
_AXES = ("x", "y", "z")


class Projection:
    """Project [n, d] embeddings to `n_components` dimensions with PCA or UMAP.

    PCA is exact (full SVD of the centred data), so `seed` only matters when `max_points`
    samples. UMAP (McInnes et al., 2018) runs single-threaded with `random_state=seed`,
    which makes it reproducible; `n_neighbors`, `min_dist` and `metric` apply to UMAP only.
    """

    def __init__(
        self,
        method: str = "pca",
        n_components: int = 2,
        seed: int = 0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "cosine",
        max_points: int | None = None,
    ) -> None:
        self.method = method
        self.n_components = n_components
        self.seed = seed
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.max_points = max_points

    def _check(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"--projection must be one of {list(METHODS)}, got {self.method!r}")
        if self.n_components not in (2, 3):
            raise UserError(f"projection n_components must be 2 or 3, got {self.n_components}")
        if self.max_points is not None and self.max_points < 2:
            raise UserError(f"--projection-max-points must be at least 2, got {self.max_points}")
        if self.method == "umap" and self.n_neighbors < 2:
            raise UserError(f"UMAP n_neighbors must be at least 2, got {self.n_neighbors}")

    def params(self) -> dict[str, Any]:
        """The parameters that determine the output (and the library version that computes it).

        Parameters a method ignores are left out, so equal projections share a cache key.
        """
        self._check()
        out: dict[str, Any] = {
            "method": self.method,
            "n_components": self.n_components,
            "max_points": self.max_points,
            "library": f"{_LIBRARY[self.method]}=={version(_LIBRARY[self.method])}",
        }
        if self.method == "umap" or self.max_points is not None:
            out["seed"] = self.seed
        if self.method == "umap":
            out |= {"n_neighbors": self.n_neighbors, "min_dist": self.min_dist}
            out["metric"] = self.metric
        return out

    def fit(self, X: np.ndarray) -> Projection:
        """Project the rows of X (a seeded sample of them when there are more than max_points)."""
        self._check()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError(f"projection needs a [n >= 2, d] array, got shape {X.shape}")
        self.n_input_ = X.shape[0]
        self.indices_ = sample_points(X.shape[0], self.max_points, self.seed)
        self.n_points_ = len(self.indices_)
        data = X[self.indices_]
        if self.method == "pca":
            self.embedding_ = self._pca(data)
        else:
            self.embedding_ = self._umap(data)
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """`fit(X)` and return `embedding_`."""
        return self.fit(X).embedding_

    def _pca(self, data: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.n_components, svd_solver="full")
        out = pca.fit_transform(data.astype(np.float64))
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        return out.astype(np.float32)

    def _umap(self, data: np.ndarray) -> np.ndarray:
        from umap import UMAP

        reducer = UMAP(
            n_components=self.n_components,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.seed,
            n_jobs=1,  # with random_state set, one thread is what makes UMAP reproducible
        )
        return np.asarray(reducer.fit_transform(data), dtype=np.float32)


def sample_points(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of `max_points` rows out of n (all rows when n fits)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def projection_frame(projection: Projection, meta: pl.DataFrame) -> pl.DataFrame:
    """Scatter data, one row per projected point: row (into meta), id, lang, domain, x, y (z).

    Not the results schema: views colour these points by language or domain.
    """
    if not hasattr(projection, "embedding_"):
        raise ValueError("projection_frame needs a fitted Projection (call fit first)")
    if meta.height != projection.n_input_:
        raise ValueError(
            f"metadata has {meta.height} rows, the projection saw {projection.n_input_}"
        )
    rows = projection.indices_
    frame = (
        meta[rows]
        .select("id", "lang", "domain")
        .with_columns(pl.Series("row", rows, dtype=pl.Int64))
    )
    axes = {
        _AXES[k]: pl.Series(_AXES[k], projection.embedding_[:, k], dtype=pl.Float32)
        for k in range(projection.embedding_.shape[1])
    }
    return frame.with_columns(**axes).select("row", "id", "lang", "domain", *axes)


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `projection` analysis: a 2-D scatter of every layer (projection.parquet)."""
    opts = inputs.options
    frames = []
    for layer, array in inputs.layers.items():
        proj = Projection(
            method=opts["projection"], seed=opts["seed"], max_points=opts["projection_max_points"]
        )
        proj.fit(array)
        frames.append(
            projection_frame(proj, inputs.meta).with_columns(
                pl.lit(layer, dtype=pl.Int32).alias("layer"),
                pl.lit(opts["projection"]).alias("method"),
            )
        )
    return pl.concat(frames)
