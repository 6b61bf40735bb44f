"""Paired statistics for comparing variants: sign-flip tests, Holm correction, bootstrap CIs.

A study compares each training variant with the baseline on the same cells (seed, query
language, document language, domain): the differences are paired, so the test is the
sign-flip (paired permutation) test of Fisher (1935) / Pitman (1937): under the null that the
two variants are exchangeable within a cell, each difference is equally likely to have either
sign. The statistic is |mean(d)|; the p-value counts sign patterns at least as extreme,
exactly (all 2^n patterns) when n is small, else from a seeded Monte Carlo sample with the
(1 + hits) / (1 + draws) estimator of Phipson & Smyth (2010), which is never zero.

Holm's step-down procedure (Holm, 1979) controls the family-wise error across every comparison
of a table. A study's tests and intervals are in `analyses/multibootstrap.py`, which uses both
(the sign-flip test on per-seed differences, Holm over a family of contrasts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
