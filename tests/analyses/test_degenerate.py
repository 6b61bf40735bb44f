"""Degenerate embeddings (all alike, or reduced to zero by a correction) rank every gold last.

The ratio margin of zero vectors is 0/0: NaN compares false with everything, so a NaN gold
counted no candidate at or above it, ranked 0 and passed for found (recall@1 1.0, MRR inf).
"""

from __future__ import annotations

import numpy as np
import pytest

from xrdiag.analyses.topk import knn_means, pair_gold_ranks, tie_floor


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_identical_or_zero_embeddings_rank_every_gold_last(fill: float) -> None:
    n, d = 8, 16
    q = np.full((n, d), fill, dtype=np.float32)
    docs = q.copy()
    gold = np.arange(n)
    ranks = pair_gold_ranks(q, docs, gold, scorings=("cos", "margin"),
                            margin_means=knn_means(q, docs, 4), reverse=True)  # fmt: skip
    for key, found in ranks.items():
        assert (found == n).all(), (key, found)


def test_a_nan_gold_ranks_last_among_finite_candidates() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    docs = q.copy()
    docs[2] = np.nan  # one document could not be embedded
    ranks = pair_gold_ranks(q, docs, np.arange(6))[("forward", "cos")]
    assert ranks[2] == 6 and (ranks[[0, 1, 3, 4, 5]] >= 1).all()


def test_tie_floor_of_non_finite_scores() -> None:
    floor = tie_floor(np.array([np.nan, np.inf, -np.inf, 0.5], dtype=np.float32))
    assert floor[0] == -np.inf and floor[1] == np.inf and floor[2] == -np.inf
    assert 0.49 < floor[3] < 0.5
