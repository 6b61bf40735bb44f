"""Blocked top-k, k-NN means and gold ranks against brute force on the full similarity matrix."""

from __future__ import annotations

import numpy as np
import pytest

from xrdiag.analyses.topk import blocked_topk, gold_ranks, knn_means, pair_gold_ranks


def exact_vectors(n: int, d: int = 16, seed: int = 0, duplicates: int = 5) -> np.ndarray:
    """Unit vectors with entries +-1/4 (16 nonzeros): every dot product is exact in float32.

    The last `duplicates` rows copy earlier rows, so tied scores are exact ties.
    """
    rng = np.random.default_rng(seed)
    x = rng.choice([-0.25, 0.25], size=(n, d)).astype(np.float32)
    x[n - duplicates :] = x[:duplicates]
    return x


def pessimistic_rank(scores: np.ndarray, gold: int) -> int:
    """Rank of entry `gold` = how many entries are >= it, via a sort (independent of topk.py)."""
    ordered = np.sort(scores)
    return int(scores.size - np.searchsorted(ordered, scores[gold], side="left"))


BLOCKS = [1, 3, 7, 40, 1000]


@pytest.mark.parametrize("block_size", BLOCKS)
@pytest.mark.parametrize("k", [1, 4, 13, 30])
def test_blocked_topk_equals_stable_argsort_with_ties(block_size: int, k: int) -> None:
    docs = exact_vectors(30, seed=1)
    queries = exact_vectors(23, seed=2)
    full = queries.astype(np.float64) @ docs.T.astype(np.float64)
    ref_idx = np.argsort(-full, axis=1, kind="stable")[:, :k]
    scores, idx = blocked_topk(queries, docs, k, block_size=block_size)
    assert (full == full[:, [0]]).sum() > 0
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, np.take_along_axis(full, ref_idx, axis=1), atol=1e-12)


def test_blocked_topk_many_boundary_ties() -> None:
    """Rows where more than k entries tie at the k-th score keep the lowest indices."""
    docs = np.zeros((12, 4), dtype=np.float32)
    docs[:, 0] = [1, 0.5, 0.5, 0.5, 0.5, 0.2, 0.5, 0, 0, 0.5, 1, 0]
    queries = np.array([[1, 0, 0, 0]], dtype=np.float32)
    _, idx = blocked_topk(queries, docs, 4, block_size=5)
    np.testing.assert_array_equal(idx[0], [0, 10, 1, 2])


def test_blocked_topk_rejects_k_beyond_pool() -> None:
    with pytest.raises(ValueError, match="k=5"):
        blocked_topk(exact_vectors(3, duplicates=0), exact_vectors(4, duplicates=0), 5)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_knn_means_equal_sorted_rows_and_columns(block_size: int) -> None:
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((27, 8)).astype(np.float32)
    docs = rng.standard_normal((31, 8)).astype(np.float32)
    full = queries.astype(np.float64) @ docs.T.astype(np.float64)
    k = 4
    ref_q = np.sort(full, axis=1)[:, -k:].mean(axis=1)
    ref_d = np.sort(full, axis=0)[-k:, :].mean(axis=0)
    got_q, got_d = knn_means(queries, docs, k, block_size=block_size)
    np.testing.assert_allclose(got_q, ref_q, atol=1e-6)
    np.testing.assert_allclose(got_d, ref_d, atol=1e-6)


def random_gold(nq: int, nd: int, seed: int) -> np.ndarray:
    """A partial one-to-one map: some queries have no gold doc (-1)."""
    rng = np.random.default_rng(seed)
    gold = rng.permutation(nd)[:nq].astype(np.int64)
    gold[rng.random(nq) < 0.2] = -1
    return gold


@pytest.mark.parametrize("block_size", BLOCKS)
def test_gold_ranks_equal_brute_force_with_ties(block_size: int) -> None:
    queries, docs = exact_vectors(25, seed=4), exact_vectors(33, seed=5)
    docs[:4] = queries[:4]
    docs[29] = queries[0]  # gold-level tie: docs 0 and 29 both equal query 0
    gold = random_gold(25, 33, seed=6)
    gold[0] = 0
    full = queries.astype(np.float64) @ docs.T.astype(np.float64)
    ref = np.array([pessimistic_rank(full[i], g) if g >= 0 else 0 for i, g in enumerate(gold)])
    assert ref[0] >= 2  # the tie really costs a rank
    np.testing.assert_array_equal(gold_ranks(queries, docs, gold, block_size=block_size), ref)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_pair_ranks_both_directions_and_margin(block_size: int) -> None:
    rng = np.random.default_rng(7)
    queries = rng.standard_normal((26, 12)).astype(np.float32)
    docs = rng.standard_normal((29, 12)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    docs[:20] += 0.8 * queries[:20]  # make gold pairs similar, as real translations are
    gold = random_gold(26, 29, seed=8)
    k = 4
    cos = queries.astype(np.float64) @ docs.T.astype(np.float64)
    a = np.sort(cos, axis=1)[:, -k:].mean(axis=1)  # query's k nearest docs
    b = np.sort(cos, axis=0)[-k:, :].mean(axis=0)  # doc's k nearest queries
    margin = cos / (0.5 * a[:, None] + 0.5 * b[None, :])  # Artetxe & Schwenk (2019)
    got = pair_gold_ranks(
        queries,
        docs,
        gold,
        scorings=("cos", "margin"),
        margin_means=knn_means(queries, docs, k, block_size=block_size),
        reverse=True,
        block_size=block_size,
    )
    rgold = np.full(29, -1)
    rgold[gold[gold >= 0]] = np.nonzero(gold >= 0)[0]
    for name, mat in (("cos", cos), ("margin", margin)):
        fwd = [pessimistic_rank(mat[i], g) if g >= 0 else 0 for i, g in enumerate(gold)]
        rev = [pessimistic_rank(mat[:, j], g) if g >= 0 else 0 for j, g in enumerate(rgold)]
        np.testing.assert_array_equal(got[("forward", name)], fwd)
        np.testing.assert_array_equal(got[("reverse", name)], rev)
    assert not np.array_equal(got[("forward", "cos")], got[("forward", "margin")])


def test_reverse_ranks_exact_ties() -> None:
    queries, docs = exact_vectors(20, seed=9), exact_vectors(20, seed=10)
    queries[5:9] = docs[5]  # four queries equal to doc 5: its gold query ties with three others
    gold = np.arange(20)
    full = queries.astype(np.float64) @ docs.T.astype(np.float64)
    got = pair_gold_ranks(queries, docs, gold, reverse=True, block_size=3)[("reverse", "cos")]
    ref = [pessimistic_rank(full[:, j], j) for j in range(20)]
    assert ref[5] >= 4
    np.testing.assert_array_equal(got, ref)


def test_reverse_needs_one_to_one_gold() -> None:
    x = exact_vectors(4, duplicates=0)
    with pytest.raises(ValueError, match="one-to-one"):
        pair_gold_ranks(x, x, np.array([0, 0, 1, 2]), reverse=True)


@pytest.mark.parametrize("block_size", [150, 1000])
def test_gold_ranks_of_blocks_large_enough_to_split_across_threads(block_size: int) -> None:
    """Blocks of >= 128 rows count ranks on two threads; the halves must join in order."""
    queries, docs = exact_vectors(300, seed=7), exact_vectors(320, seed=8)
    docs[:50] = queries[:50]  # ties at the gold level
    gold = random_gold(300, 320, seed=9)
    full = queries.astype(np.float64) @ docs.T.astype(np.float64)
    ref = np.array([pessimistic_rank(full[i], g) if g >= 0 else 0 for i, g in enumerate(gold)])
    np.testing.assert_array_equal(gold_ranks(queries, docs, gold, block_size=block_size), ref)
