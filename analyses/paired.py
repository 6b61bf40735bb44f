"""Paired statistics for comparing variants: sign-flip tests, Holm correction, bootstrap CIs.

A study compares each training variant with the baseline on the same cells (seed, query
language, document language, domain): the differences are paired, so the test is the
sign-flip (paired permutation) test of Fisher (1935) / Pitman (1937): under the null that the
two variants are exchangeable within a cell, each difference is equally likely to have either
sign. The statistic is |mean(d)|; the p-value counts sign patterns at least as extreme,
exactly (all 2^n patterns) when n is small, else from a seeded Monte Carlo sample with the
(1 + hits) / (1 + draws) estimator of Phipson & Smyth (2010), which is never zero.

Holm's step-down procedure (Holm, 1979) controls the family-wise error across every comparison
of a table. Figure CIs are seeded percentile bootstraps (Efron & Tibshirani, 1993): for
cell means of recall (a mean of 0/1 outcomes over `n` queries) the resampling is hierarchical,
seeds with replacement and then queries within each cell (a Binomial(n, value) redraw is
exactly a resample of that cell's 0/1 outcomes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xrdiag.analyses.bootstrap import bootstrap_ci, percentile_interval

# Above this many non-zero differences the exact test (2^n patterns) gives way to Monte Carlo.
EXACT_MAX = 16
DRAWS = 10_000
# Differences this close to the observed statistic count as ties (floating-point sums).
_TIE = 1e-12


def _extreme(stats: np.ndarray, observed: float) -> np.ndarray:
    return stats >= observed - _TIE * max(1.0, observed)


def sign_flip_pvalue(
    diffs: Sequence[float] | np.ndarray,
    *,
    draws: int = DRAWS,
    seed: int = 0,
    exact_max: int = EXACT_MAX,
) -> float:
    """Two-sided paired sign-flip p-value of mean(diffs) = 0 (module docstring).

    Zero differences carry no sign and do not change |sum|, so they are dropped before the
    exact enumeration; an all-zero vector gives p = 1.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("diffs must be a non-empty 1-d array")
    if not np.isfinite(d).all():
        raise ValueError("diffs must be finite")
    d = d[d != 0.0]
    if d.size == 0:
        return 1.0
    observed = abs(float(d.sum()))
    if d.size <= exact_max:
        n = d.size
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        stats = np.abs(signs @ d)
        return float(np.mean(_extreme(stats, observed)))
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, min(draws, (1 << 22) // d.size))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, d.size))
        hits += int(_extreme(np.abs(signs @ d), observed).sum())
    return (1.0 + hits) / (1.0 + draws)


def holm_adjust(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order, capped at 1.

    Sorted ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    NaN p-values (no comparison possible) stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


@dataclass(frozen=True)
class PairedResult:
    """The mean paired difference, its bootstrap CI, its sign-flip p-value and the cell count."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def paired_difference(
    variant: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 2000,
    draws: int = DRAWS,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedResult:
    """Compare paired values (same cells, same order): delta = mean(variant - baseline)."""
    a = np.asarray(variant, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired values need equal non-empty 1-d shapes, got {a.shape}, {b.shape}")
    d = a - b
    if np.all(d == 0.0):
        low = high = 0.0
    else:
        low, high = bootstrap_ci(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
    p = sign_flip_pvalue(d, draws=draws, seed=seed)
    return PairedResult(float(d.mean()), float(low), float(high), p, int(d.size))


class CellBootstrap:
    """Hierarchical bootstrap over cells grouped by seed: resampled cell values and weights.

    Resample r draws the seeds with replacement (a cell's weight is how often its seed was
    drawn) and, when `binary`, redraws each cell's value as Binomial(n, value) / n (queries
    with replacement). Any statistic built from weighted subset means then gets a percentile CI.
    """

    def __init__(
        self,
        values: np.ndarray,
        n: np.ndarray,
        seeds: np.ndarray,
        *,
        binary: bool = True,
        n_resamples: int = 1000,
        seed: int = 0,
    ) -> None:
        values = np.asarray(values, dtype=np.float64)
        counts = np.asarray(n, dtype=np.int64)
        labels, seed_idx = np.unique(np.asarray(seeds), return_inverse=True)
        rng = np.random.default_rng(seed)
        drawn = rng.integers(0, labels.size, size=(n_resamples, labels.size))
        per_seed = np.stack([np.bincount(row, minlength=labels.size) for row in drawn])
        self.weights = per_seed[:, seed_idx].astype(np.float64)  # [r, cells]
        if binary:
            hits = rng.binomial(
                np.maximum(counts, 1), np.clip(values, 0.0, 1.0), (n_resamples,) + values.shape
            )
            self.values = hits / np.maximum(counts, 1)
        else:
            self.values = np.broadcast_to(values, (n_resamples, values.size)).copy()

    def subset_means(self, mask: np.ndarray) -> np.ndarray:
        """Resampled weighted means over the cells in `mask`; NaN where no weight fell in it."""
        m = np.asarray(mask, dtype=np.float64)
        den = self.weights @ m
        num = (self.weights * self.values) @ m
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    def interval(
        self, statistic: Callable[[CellBootstrap], np.ndarray], confidence: float = 0.95
    ) -> tuple[float, float]:
        """Percentile interval of `statistic(self)` (one value per resample), NaNs dropped."""
        stats = np.asarray(statistic(self), dtype=np.float64)
        stats = stats[np.isfinite(stats)]
        if stats.size == 0:
            return float("nan"), float("nan")
        low, high = percentile_interval(stats, confidence)
        return float(low), float(high)
