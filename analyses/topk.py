"""Blocked similarity search: top-k, k-nearest-neighbour means and gold ranks in bounded memory.

Similarities are inner products (cosine once rows are L2-normalised) computed one block of
query rows at a time with a float32 BLAS matmul into preallocated buffers, so memory stays at
`block_size x n_docs` float32 (x2 with the margin) plus a boolean mask of that shape, whatever
the number of queries: a 100,000 x 100,000 search with block_size 4096 needs about 3.7 GB and
never holds the full matrix (40 GB). Column-wise quantities (each doc's k nearest queries, the
reverse-direction ranks) are accumulated block by block (a running top-k and running counts).

Tie convention (used everywhere here and in the tests' brute-force references): ranks are
*pessimistic*. The rank of a gold document is the number of candidates scoring greater than
or equal to it, itself included, so a gold document tied with k others gets rank k + 1. A
collapsed encoder (every vector equal) therefore scores recall@1 = 1/n, not 1.0. Two scores
within `TIE_TOLERANCE` (relative, at least absolute for scores below 1) count as a tie: the
same product computed by two BLAS calls (a block's matmul, a row's dot product) differs in the
last bits, so an exact comparison would let one path break a real tie in the gold's favour.
`blocked_topk` breaks ties like a stable descending `argsort`: lower document index first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

Direction = str  # "forward" (queries -> docs) or "reverse" (docs -> queries)
# float32 products of unit vectors carry rounding of about 1e-7 per summand order: scores
# closer than this are indistinguishable and are treated as ties (against the gold).
TIE_TOLERANCE = 1e-6
RankKey = tuple[Direction, str]


def _f32(a: np.ndarray) -> np.ndarray:
    """C-contiguous float32 view or copy."""
    return np.ascontiguousarray(a, dtype=np.float32)


def _blocks(n: int, block_size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges of at most `block_size` rows covering range(n)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    for start in range(0, n, block_size):
        yield start, min(start + block_size, n)


def _topk_rows(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every row of `sims`, ordered like a stable descending argsort."""
    n = sims.shape[1]
    if k == n:
        idx = np.argsort(-sims, axis=1, kind="stable")
        return np.take_along_axis(sims, idx, axis=1), idx
    thr = np.partition(sims, n - k, axis=1)[:, n - k]
    keep = sims >= thr[:, None]
    for r in np.nonzero(keep.sum(axis=1) > k)[0]:
        # Ties at the threshold: keep every strictly greater entry, then the lowest indices.
        above = np.nonzero(sims[r] > thr[r])[0]
        tied = np.nonzero(sims[r] == thr[r])[0][: k - above.size]
        keep[r] = False
        keep[r, above] = True
        keep[r, tied] = True
    cols = np.nonzero(keep)[1].reshape(-1, k)
    vals = np.take_along_axis(sims, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(cols, order, axis=1)


def blocked_topk(
    queries: np.ndarray, docs: np.ndarray, k: int, block_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """The k highest-scoring docs of every query: (scores [nq, k], indices [nq, k]).

    Equals `np.argsort(-(queries @ docs.T), kind="stable")[:, :k]` without building the matrix.
    """
    q, dt = _f32(queries), _f32(np.asarray(docs).T)
    nq, nd = q.shape[0], dt.shape[1]
    if not 1 <= k <= nd:
        raise ValueError(f"k={k} must be between 1 and the number of docs ({nd})")
    scores = np.empty((nq, k), dtype=np.float32)
    indices = np.empty((nq, k), dtype=np.int64)
    buf = np.empty((min(block_size, max(nq, 1)), nd), dtype=np.float32)
    for start, stop in _blocks(nq, block_size):
        sims = buf[: stop - start]
        np.matmul(q[start:stop], dt, out=sims)
        scores[start:stop], indices[start:stop] = _topk_rows(sims, k)
    return scores, indices


def knn_means(
    queries: np.ndarray, docs: np.ndarray, k: int, block_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Mean similarity of each query to its k nearest docs and of each doc to its k nearest queries.

    These are the neighbourhood terms of the ratio margin (Artetxe & Schwenk, 2019); both come
    from one blocked pass: row top-k per block, and a running column top-k merged block by block.
    Returns (query_means [nq], doc_means [nd]) as float64.
    """
    q, dt = _f32(queries), _f32(np.asarray(docs).T)
    nq, nd = q.shape[0], dt.shape[1]
    if not 1 <= k <= min(nq, nd):
        raise ValueError(f"k={k} must be between 1 and min(n_queries={nq}, n_docs={nd})")
    query_means = np.empty(nq, dtype=np.float64)
    running = np.full((nd, k), -np.inf, dtype=np.float32)  # best k query scores per doc
    bs = min(block_size, nq)
    sims_buf = np.empty((bs, nd), dtype=np.float32)
    trans_buf = np.empty((nd, bs + k), dtype=np.float32)
    for start, stop in _blocks(nq, block_size):
        m = stop - start
        sims = sims_buf[:m]
        np.matmul(q[start:stop], dt, out=sims)
        cols = trans_buf[:, : m + k]
        cols[:, :m] = sims.T
        cols[:, m:] = running
        sims.partition(nd - k, axis=1)
        query_means[start:stop] = sims[:, nd - k :].mean(axis=1, dtype=np.float64)
        cols.partition(m, axis=1)
        running[...] = cols[:, m:]
    return query_means, running.mean(axis=1, dtype=np.float64)


def margin_denominators(
    query_means: np.ndarray, doc_means: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Halved neighbourhood means as float32, so margin(x, y) = cos(x, y) / (hq[x] + hd[y])."""
    hq = (0.5 * np.asarray(query_means, dtype=np.float64)).astype(np.float32)
    hd = (0.5 * np.asarray(doc_means, dtype=np.float64)).astype(np.float32)
    return hq, hd


def tie_floor(scores: np.ndarray) -> np.ndarray:
    """The lowest score that still ties with `scores` (pessimistic comparisons use >= this).

    A score that could not be computed (NaN: the 0/0 margin of embeddings a correction reduced
    to zero) ties with every candidate, so its query ranks last, never first; +inf stays.
    """
    s = np.asarray(scores, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        floor = s - TIE_TOLERANCE * np.maximum(1.0, np.abs(s))
    floor = np.where(np.isnan(s), -np.inf, np.where(np.isposinf(s), np.inf, floor))
    return floor.astype(np.float32)


def comparable(scores: np.ndarray) -> np.ndarray:
    """`scores` with NaN as -inf, in place: an uncomputable score is never above another.

    NaN compares false with everything, so a gold scored NaN would rank 0 (better than first)
    and a query of a degenerate model would count as found.
    """
    return np.nan_to_num(scores, copy=False, nan=-np.inf, posinf=np.inf, neginf=-np.inf)


def _reverse_gold(gold: np.ndarray, nd: int) -> np.ndarray:
    """Invert a partial one-to-one query->doc map into doc->query (-1 where none)."""
    has = np.nonzero(gold >= 0)[0]
    if np.unique(gold[has]).size != has.size:
        raise ValueError("reverse ranks need a one-to-one gold map (two queries share a doc)")
    rgold = np.full(nd, -1, dtype=np.int64)
    rgold[gold[has]] = has
    return rgold


def pair_gold_ranks(
    queries: np.ndarray,
    docs: np.ndarray,
    gold: np.ndarray,
    *,
    scorings: Sequence[str] = ("cos",),
    margin_means: tuple[np.ndarray, np.ndarray] | None = None,
    reverse: bool = False,
    block_size: int = 4096,
) -> dict[RankKey, np.ndarray]:
    """Pessimistic rank of every query's gold doc, per scoring, from one blocked pass.

    `gold[i]` is the doc index of query i's translation, or -1 (rank 0 is returned there).
    Scorings: "cos" (inner product) and "margin" (ratio margin, needs `margin_means` from
    `knn_means`). With `reverse=True` the same similarity blocks also rank, for every doc, its
    gold query among all queries (docs -> queries direction): cosine and the ratio margin are
    both symmetric, so one matrix serves both directions. Keys: (direction, scoring).
    """
    q, dt = _f32(queries), _f32(np.asarray(docs).T)
    nq, nd = q.shape[0], dt.shape[1]
    gold = np.asarray(gold, dtype=np.int64)
    if gold.shape != (nq,) or (gold >= nd).any():
        raise ValueError("gold must hold one doc index (or -1) per query")
    if "margin" in scorings:
        if margin_means is None:
            raise ValueError("the margin scoring needs margin_means=(query_means, doc_means)")
        hq, hd = margin_denominators(*margin_means)
    forward = {s: np.zeros(nq, dtype=np.int64) for s in scorings}
    backward = {s: np.zeros(nd, dtype=np.int64) for s in scorings} if reverse else {}
    thresholds: dict[str, np.ndarray] = {}
    if reverse:
        rgold = _reverse_gold(gold, nd)
        cols = np.nonzero(rgold >= 0)[0]
        h_cos = np.full(nd, np.inf, dtype=np.float32)
        h_cos[cols] = np.einsum("ij,ij->i", q[rgold[cols]], dt[:, cols].T)
        if "margin" in scorings:
            h_margin = np.full(nd, np.inf, dtype=np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):  # NaN: see tie_floor
                h_margin[cols] = tie_floor(h_cos[cols] / (hq[rgold[cols]] + hd[cols]))
            thresholds["margin"] = h_margin
        h_cos[cols] = tie_floor(h_cos[cols])
        thresholds["cos"] = h_cos
    bs = min(block_size, max(nq, 1))
    sims_buf = np.empty((bs, nd), dtype=np.float32)
    marg_buf = np.empty((bs, nd), dtype=np.float32) if "margin" in scorings else None
    mask_buf = np.empty((bs, nd), dtype=bool)
    for start, stop in _blocks(nq, block_size):
        m = stop - start
        sims, mask = sims_buf[:m], mask_buf[:m]
        np.matmul(q[start:stop], dt, out=sims)
        local = np.nonzero(gold[start:stop] >= 0)[0]
        gcols = gold[start:stop][local]
        for scoring in scorings:
            if scoring == "cos":
                scores = sims
            elif scoring == "margin" and marg_buf is not None:
                scores = marg_buf[:m]
                np.add(hq[start:stop, None], hd[None, :], out=scores)
                with np.errstate(divide="ignore", invalid="ignore"):  # see comparable()
                    np.divide(sims, scores, out=scores)
            else:
                raise ValueError(f"unknown scoring {scoring!r}")
            comparable(scores)
            g = np.full(m, np.inf, dtype=np.float32)
            g[local] = tie_floor(scores[local, gcols])
            np.greater_equal(scores, g[:, None], out=mask)
            forward[scoring][start:stop] = np.count_nonzero(mask, axis=1)
            if reverse:
                h = thresholds[scoring]
                np.greater_equal(scores, h[None, :], out=mask)
                backward[scoring] += np.count_nonzero(mask, axis=0)
                backward[scoring][gcols] -= scores[local, gcols] >= h[gcols]
    out: dict[RankKey, np.ndarray] = {("forward", s): r for s, r in forward.items()}
    for s, counts in backward.items():
        out[("reverse", s)] = np.where(rgold >= 0, counts + 1, 0)
    return out


def gold_ranks(
    queries: np.ndarray, docs: np.ndarray, gold: np.ndarray, block_size: int = 4096
) -> np.ndarray:
    """Pessimistic cosine rank (1 = best) of each query's gold doc; 0 where gold is -1."""
    return pair_gold_ranks(queries, docs, gold, block_size=block_size)[("forward", "cos")]


def translation_table(codes: np.ndarray) -> np.ndarray:
    """For every row, the rows sharing its id (itself excluded), padded with -1: [n, width]."""
    order = np.argsort(codes, kind="stable")
    _, starts, sizes = np.unique(codes[order], return_index=True, return_counts=True)
    width = int(sizes.max())
    slots = np.full((starts.size, width), -1, dtype=np.int64)
    group = np.repeat(np.arange(starts.size), sizes)
    slots[group, np.arange(order.size) - starts[group]] = order
    table = np.full((codes.size, width), -1, dtype=np.int64)
    table[order] = slots[group]
    table[table == np.arange(codes.size)[:, None]] = -1
    return table


def rank_spreads(
    pool: np.ndarray, rows: np.ndarray, table: np.ndarray, block_size: int = 4096
) -> np.ndarray:
    """max - min pessimistic rank of each query's translations in the whole pool.

    `rows` are the query rows of `pool`; `table` comes from `translation_table`. A translation's
    rank counts the pool rows scoring >= it, the query itself excluded.
    """
    pool = _f32(pool)
    pool_t = _f32(pool.T)
    spread = np.empty(rows.size, dtype=np.float64)
    bs = min(block_size, max(rows.size, 1))
    sims_buf = np.empty((bs, pool.shape[0]), dtype=np.float32)
    mask_buf = np.empty(sims_buf.shape, dtype=bool)
    for start, stop in _blocks(rows.size, block_size):
        block, sims, mask = rows[start:stop], sims_buf[: stop - start], mask_buf[: stop - start]
        np.matmul(pool[block], pool_t, out=sims)
        comparable(sims)
        trans = table[block]
        vals = np.take_along_axis(sims, np.maximum(trans, 0), axis=1)
        best = np.where(trans >= 0, vals, -np.inf).max(axis=1)
        worst = np.where(trans >= 0, vals, np.inf).min(axis=1)
        self_sim = sims[np.arange(block.size), block]
        ranks = []
        for g in (best, worst):
            np.greater_equal(sims, g[:, None], out=mask)
            ranks.append(np.count_nonzero(mask, axis=1) - (self_sim >= g))
        spread[start:stop] = ranks[1] - ranks[0]
    return spread
