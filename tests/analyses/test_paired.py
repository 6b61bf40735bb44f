"""Paired statistics against hand computations and scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xrdiag.analyses.paired import holm_adjust, sign_flip_pvalue


def naive_exact(d: np.ndarray) -> float:
    """Every sign pattern, zeros included, |sum| at least as large as observed."""
    obs = abs(d.sum())
    hits = [abs(np.dot(s, d)) >= obs - 1e-12 for s in itertools.product([-1.0, 1.0], repeat=d.size)]
    return float(np.mean(hits))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_sign_flip_matches_enumeration_and_scipy(seed: int) -> None:
    from scipy.stats import permutation_test

    rng = np.random.default_rng(seed)
    d = rng.normal(0.3, 1.0, size=9)
    ours = sign_flip_pvalue(d)
    assert ours == pytest.approx(naive_exact(d), abs=1e-12)
    ref = permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="two-sided",
    ).pvalue
    assert ours == pytest.approx(ref, abs=1e-9)


def test_zeros_do_not_change_exact_p() -> None:
    d = np.array([0.4, -0.1, 0.3, 0.0, 0.0, 0.2])
    assert sign_flip_pvalue(d) == pytest.approx(naive_exact(d), abs=1e-12)


def test_monte_carlo_close_to_exact_and_seeded() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(0.25, 1.0, size=18)
    exact = sign_flip_pvalue(d, exact_max=18)
    mc = sign_flip_pvalue(d, exact_max=0, draws=20_000, seed=3)
    assert mc == pytest.approx(exact, abs=0.015)
    assert mc == sign_flip_pvalue(d, exact_max=0, draws=20_000, seed=3)
    assert mc > 0


def test_identical_is_one() -> None:
    x = np.random.default_rng(3).random(40)
    assert sign_flip_pvalue(x - x) == 1.0


def test_holm_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1); running max
    want = [0.03, 0.06, 0.06, 0.02, np.nan]
    got = holm_adjust(p)
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(holm_adjust([0.5, 0.9]), [1.0, 1.0])


def test_holm_against_statsmodels_formula() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, size=12)
    order = np.argsort(p)
    m = p.size
    ref = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        ref[j] = running
    np.testing.assert_allclose(holm_adjust(p), ref, atol=1e-12)
