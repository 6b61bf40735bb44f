"""Seeded percentile bootstrap confidence intervals (Efron & Tibshirani, 1993, ch. 13).

The resampling stream is defined once so that every analysis and every test can reproduce it:
resample b (b = 0, 1, ...) is the b-th call `rng.integers(0, n, size=n)` of
`rng = numpy.random.default_rng(seed)`. The interval is the (alpha/2, 1 - alpha/2) quantile
(numpy's default linear interpolation) of the statistic over the resamples.

For means (recall@k, MRR, rank spreads) `BootstrapMeans` evaluates many columns at once as a
matrix product of resample counts with the per-item values, and reuses the counts across calls
with the same n: thousands of language-pair intervals then cost milliseconds each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

# Resample-count matrices up to this many entries (float64: 64 MiB) are kept between calls.
_CACHE_ENTRIES = 1 << 23


def resample_indices(n: int, n_resamples: int, seed: int, chunk: int = 0) -> Iterator[np.ndarray]:
    """Bootstrap index sets, `chunk` resamples (rows) at a time, in stream order."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 and n_resamples >= 1, got n={n}, n_resamples={n_resamples}")
    rng = np.random.default_rng(seed)
    chunk = chunk or max(1, min(n_resamples, _CACHE_ENTRIES // n))
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_resamples - start), n))


def percentile_interval(
    stats: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile interval along axis 0 of the bootstrap statistics."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2], axis=0)
    return low, high


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each item appears in each resample: [rows, n] float64."""
    rows = idx.shape[0]
    flat = (idx + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


class BootstrapMeans:
    """Percentile intervals of column means for values over the same n items (e.g. queries)."""

    def __init__(self, n: int, n_resamples: int = 1000, seed: int = 0) -> None:
        self.n, self.n_resamples, self.seed = n, n_resamples, seed
        self._cached: list[np.ndarray] | None = None
        if n * n_resamples <= _CACHE_ENTRIES:
            self._cached = list(self._weights())

    def _weights(self) -> Iterator[np.ndarray]:
        for idx in resample_indices(self.n, self.n_resamples, self.seed):
            yield _counts(idx, self.n)

    def means(self, values: np.ndarray) -> np.ndarray:
        """Bootstrap means [n_resamples, m] of values [n] or [n, m]."""
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape[0] != self.n:
            raise ValueError(f"values have {vals.shape[0]} rows, expected {self.n}")
        weights = self._cached if self._cached is not None else self._weights()
        return np.concatenate([w @ vals for w in weights]) / self.n

    def intervals(
        self, values: np.ndarray, confidence: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the mean of each column of values [n, m] (or scalars for [n])."""
        return percentile_interval(self.means(values), confidence)


def bootstrap_ci(
    values: np.ndarray,
    *,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of a statistic of items (rows of `values`); the mean by default.

    A custom `statistic` gets the resampled rows (`values[idx]`) and returns a float; it sees
    the same resamples as the mean path, so analyses can share one seed.
    """
    vals = np.asarray(values)
    n = vals.shape[0]
    if statistic is None:
        if vals.ndim != 1:
            raise ValueError("the default (mean) statistic takes a 1-d array")
        low, high = BootstrapMeans(n, n_resamples, seed).intervals(vals, confidence)
        return float(low), float(high)
    stats = [statistic(vals[row]) for idx in resample_indices(n, n_resamples, seed) for row in idx]
    low, high = percentile_interval(np.asarray(stats, dtype=np.float64), confidence)
    return float(low), float(high)


def summarise_columns(
    columns: Mapping[str, np.ndarray],
    base: Mapping[str, Any],
    bootstrap: int,
    seed: int,
    boots: dict[int, BootstrapMeans],
) -> list[dict[str, Any]]:
    """One result row per metric column (per-query values over the same queries): the mean,
    its paired bootstrap CI (one resample set for all columns) and n; `base` fills the rest.

    `boots` caches the resample counts per n across calls (see `BootstrapMeans`).
    """
    names = list(columns)
    values = np.column_stack([columns[k] for k in names])
    n = values.shape[0]
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * len(names)
    if bootstrap:
        if n not in boots:
            boots[n] = BootstrapMeans(n, bootstrap, seed)
        low, high = boots[n].intervals(values)
        bounds = [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
    point = values.mean(axis=0)
    return [
        {
            **base,
            "metric": name,
            "value": float(point[i]),
            "ci_low": bounds[i][0],
            "ci_high": bounds[i][1],
            "n": n,
        }
        for i, name in enumerate(names)
    ]
