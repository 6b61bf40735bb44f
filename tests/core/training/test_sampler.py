"""Hybrid batch sampler: regime shares, real (in)homogeneity, once-per-epoch use, resumption.

Every property is checked against bookkeeping done here, independently of the sampler: the
test tracks which pairs each epoch has used and recounts compositions from the pairs frame.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import polars as pl
import pytest

from xrdiag.core.training.sampler import HybridBatchSampler, lang_pair_key
from xrdiag.errors import UserError

LANGS = ["fr", "es-419", "ru", "zh", "ar", "sw"]
DOMAINS = ["medical", "encyclopedia", "news"]


def make_pairs(sizes: dict[tuple[str, str, str], int], seed: int = 0) -> pl.DataFrame:
    """A pairs frame with `sizes[(src, tgt, domain)]` rows each, in shuffled row order."""
    rows = [key for key, n in sizes.items() for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(rows))
    return pl.DataFrame(
        [rows[i] for i in order], schema=["src_lang", "tgt_lang", "domain"], orient="row"
    )


def big_pairs() -> pl.DataFrame:
    """6 language pairs x 3 domains, uneven sizes (11..91), 900-odd pairs."""
    sizes = {}
    for i, lang in enumerate(LANGS):
        for j, dom in enumerate(DOMAINS):
            sizes[("en", lang, dom)] = 11 + (17 * i + 29 * j) % 81
    return make_pairs(sizes)


def keys(pairs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Language-pair and domain name per row, computed here rather than by the sampler."""
    lp = np.array([f"{s}|{t}" for s, t in zip(pairs["src_lang"], pairs["tgt_lang"], strict=True)])
    return lp, pairs["domain"].to_numpy().astype(str)


def run_and_check(
    pairs: pl.DataFrame, batch_size: int, alpha: float, beta: float, n: int, seed: int = 3
):
    """Draw n batches and check every per-batch rule; returns the batches and infeasible counts."""
    lp, dom = keys(pairs)
    sampler = HybridBatchSampler(pairs, batch_size, alpha, beta, seed=seed)
    used = np.zeros(pairs.height, dtype=bool)
    epoch, in_epoch, epochs_done = 0, 0, 0
    infeasible = {"lang": 0, "domain": 0}
    batches = []
    for _ in range(n):
        b = next(sampler)
        c = b.composition
        if c["epoch"] != epoch:
            assert c["epoch"] == epoch + 1 and used.all(), "epoch ended before using every pair"
            epoch, in_epoch, epochs_done = c["epoch"], 0, epochs_done + 1
            used[:] = False
        assert c["batch_in_epoch"] == in_epoch
        in_epoch += 1
        idx = b.indices
        assert not used[idx].any(), "a pair was used twice in one epoch"
        assert len(set(idx.tolist())) == idx.size
        remaining = ~used
        used[idx] = True
        want_l, want_d = c["requested"]["lang_homogeneous"], c["requested"]["domain_homogeneous"]
        # Homogeneous requests are always homogeneous in truth.
        if want_l:
            assert len(set(lp[idx])) == 1 and b.lang_homogeneous
        if want_d:
            assert len(set(dom[idx])) == 1 and b.domain_homogeneous
        # The pool the batch came from: the remainder restricted to its homogeneous keys.
        pool = remaining.copy()
        if want_l:
            pool &= lp == lp[idx[0]]
        if want_d:
            pool &= dom == dom[idx[0]]
        assert idx.size == min(batch_size, pool.sum())
        if idx.size < batch_size:  # short only when no pool of this kind could fill a batch
            kinds = [k for k, w in ((lp, want_l), (dom, want_d)) if w]
            if kinds:
                tags = np.array(["/".join(t) for t in zip(*kinds, strict=True)])
                assert max(Counter(tags[remaining]).values()) < batch_size
        # Mixed requests are mixed in truth exactly when the eligible pool allows it.
        for name, key, want, flag in (
            ("lang", lp, want_l, b.lang_homogeneous),
            ("domain", dom, want_d, b.domain_homogeneous),
        ):
            if not want:
                feasible = idx.size >= 2 and len(set(key[pool])) >= 2
                assert flag is (not feasible), (name, c)
                infeasible[name] += not feasible
        batches.append(b)
    assert epochs_done >= 1
    return batches, infeasible


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_homogeneous_shares_match_alpha_beta(alpha: float, beta: float) -> None:
    n = 1500
    batches, infeasible = run_and_check(big_pairs(), 8, alpha, beta, n)
    for p, name, attr in (
        (alpha, "lang", "lang_homogeneous"),
        (beta, "domain", "domain_homogeneous"),
    ):
        requested = np.mean([b.composition["requested"][attr] for b in batches])
        truth = np.mean([getattr(b, attr) for b in batches])
        bound = 4 * math.sqrt(p * (1 - p) / n)  # binomial 4-sigma; 0 for p in {0, 1}
        assert abs(requested - p) <= bound, (attr, requested, p)
        # Truth departs from the request only on batches whose pool could not mix (counted above).
        assert abs(truth - p) <= bound + infeasible[name] / n, (attr, truth, p)
        assert infeasible[name] / n < 0.05


def test_small_pools_and_batch_of_two_keep_every_rule() -> None:
    sizes = {("en", "fr", "medical"): 3, ("en", "ru", "news"): 9, ("en", "fr", "news"): 1}
    for seed in range(4):
        run_and_check(make_pairs(sizes), 2, 0.5, 0.5, 300, seed)
        run_and_check(make_pairs(sizes), 5, 0.3, 0.7, 300, seed)
        run_and_check(make_pairs(sizes), 3, 0.0, 0.0, 300, seed)


def test_composition_is_recounted_from_the_frame() -> None:
    pairs = big_pairs()
    lp, dom = keys(pairs)
    sampler = HybridBatchSampler(pairs, 16, 0.5, 0.5, seed=1)
    for _ in range(80):
        b = next(sampler)
        c = b.composition
        rows = pairs[b.indices.tolist()]
        expect_lp = Counter(
            f"{s}|{t}" for s, t in zip(rows["src_lang"], rows["tgt_lang"], strict=True)
        )
        assert c["lang_pairs"] == dict(expect_lp)
        assert c["domains"] == dict(Counter(rows["domain"].to_list()))
        assert c["size"] == b.indices.size == rows.height
        assert c["lang_homogeneous"] is b.lang_homogeneous is (len(expect_lp) == 1)
        assert c["domain_homogeneous"] is b.domain_homogeneous is (rows["domain"].n_unique() == 1)
        assert b.indices.dtype == np.int64
        assert json.loads(json.dumps(c)) == c
    assert sampler.lang_pairs == tuple(sorted(set(lp)))
    assert sampler.domains == tuple(sorted(set(dom)))
    assert lang_pair_key("en", "es-419") == "en|es-419"


def test_every_pair_once_per_epoch_and_full_batches_when_size_divides() -> None:
    sizes = {("en", lang, d): 10 for lang in LANGS[:3] for d in DOMAINS[:2]}  # 60 pairs
    pairs = make_pairs(sizes)
    sampler = HybridBatchSampler(pairs, 6, 0.0, 0.0, seed=0)
    epochs: dict[int, list[np.ndarray]] = {}
    for _ in range(30):  # exactly three epochs of ten full batches
        b = next(sampler)
        assert b.indices.size == 6
        epochs.setdefault(b.composition["epoch"], []).append(b.indices)
    assert sorted(epochs) == [0, 1, 2]
    orders = [np.concatenate(v) for v in epochs.values()]
    for order in orders:
        assert np.array_equal(np.sort(order), np.arange(60))
    assert not np.array_equal(orders[0], orders[1]), "epochs must reshuffle"


def test_homogeneous_pool_is_weighted_by_remaining_size() -> None:
    pairs = make_pairs({("en", "fr", "medical"): 300, ("en", "ru", "medical"): 100})
    first = [
        next(HybridBatchSampler(pairs, 8, 1.0, 1.0, seed=s)).composition["lang_pairs"]
        for s in range(400)
    ]
    share = np.mean(["en|fr" in c for c in first])
    assert abs(share - 0.75) <= 4 * math.sqrt(0.75 * 0.25 / 400)


def test_mixed_request_without_a_second_pool_reports_the_truth() -> None:
    pairs = make_pairs({("en", "fr", "medical"): 20, ("en", "fr", "news"): 20})
    b = next(HybridBatchSampler(pairs, 8, 0.0, 0.0, seed=0))
    assert b.lang_homogeneous and not b.composition["requested"]["lang_homogeneous"]
    assert not b.domain_homogeneous


def test_mixed_in_both_dimensions_even_when_no_pool_differs_in_both() -> None:
    # Only (fr, news) and (ru, medical) can break a draw that lands in (fr, medical): two swaps.
    sizes = {("en", "fr", "medical"): 200, ("en", "ru", "medical"): 1, ("en", "fr", "news"): 1}
    pairs = make_pairs(sizes)
    for seed in range(20):
        b = next(HybridBatchSampler(pairs, 4, 0.0, 0.0, seed=seed))
        assert not b.lang_homogeneous and not b.domain_homogeneous, b.composition
        assert set(b.composition["lang_pairs"]) == {"en|fr", "en|ru"}


def test_members_are_shuffled_within_a_batch() -> None:
    # Not grouped by pool, so that micro-batches under gradient accumulation stay mixed.
    pairs = big_pairs()
    lp, _ = keys(pairs)
    rank = {k: i for i, k in enumerate(sorted(set(lp)))}
    sampler = HybridBatchSampler(pairs, 16, 0.0, 0.0, seed=0)
    runs = [[rank[k] for k in lp[next(sampler).indices]] for _ in range(20)]
    assert any(r != sorted(r) for r in runs)


def _indices(sampler: HybridBatchSampler, n: int) -> list[list[int]]:
    return [next(sampler).indices.tolist() for _ in range(n)]


def test_same_seed_same_batches_different_seed_different() -> None:
    pairs = big_pairs()
    a = _indices(HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=7), 300)
    b = _indices(HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=7), 300)
    c = _indices(HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=8), 300)
    assert a == b
    assert a != c and a[0] != c[0]


def test_resume_mid_epoch_and_across_epoch_boundaries_equals_uninterrupted() -> None:
    pairs = make_pairs({("en", lang, d): 13 for lang in LANGS[:3] for d in DOMAINS[:2]})
    full = HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=5)
    ref = [next(full) for _ in range(60)]
    epochs = [b.composition["epoch"] for b in ref]
    end0 = epochs.index(1)  # batches drawn when epoch 0 is exactly finished
    assert max(epochs) >= 2
    for cut in [0, 1, 5, end0 - 1, end0, end0 + 1, epochs.index(2) + 2]:
        first = HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=5)
        for _ in range(cut):
            next(first)
        state = json.loads(json.dumps(first.state_dict()))
        resumed = HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=5)
        resumed.load_state_dict(state)
        for b in ref[cut:]:
            got = next(resumed)
            assert got.indices.tolist() == b.indices.tolist(), cut
            assert got.composition == b.composition
        assert resumed.state_dict() == full.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"batch_size": 0}, "batches.batch_size"),
        ({"batch_size": 2.5}, "batches.batch_size"),
        ({"alpha": 1.5}, "batches.alpha"),
        ({"beta": -0.1}, "batches.beta"),
        ({"beta": "0.5"}, "batches.beta"),
        ({"seed": -1}, "run.seed"),
    ],
)
def test_bad_settings_raise_one_line_user_errors(kwargs: dict, needle: str) -> None:
    args = {"batch_size": 4, "alpha": 0.5, "beta": 0.5, "seed": 0} | kwargs
    with pytest.raises(UserError, match=needle) as info:
        HybridBatchSampler(big_pairs(), **args)
    assert "\n" not in str(info.value)


def test_bad_pairs_frames_raise_user_errors() -> None:
    with pytest.raises(UserError, match="missing column"):
        HybridBatchSampler(big_pairs().drop("domain"), 4, 0.5, 0.5, 0)
    with pytest.raises(UserError, match="none left"):
        HybridBatchSampler(big_pairs().head(0), 4, 0.5, 0.5, 0)
    nulls = pl.DataFrame({"src_lang": ["en", "en"], "tgt_lang": ["fr", None], "domain": ["a", "b"]})
    with pytest.raises(UserError, match="row 2, column 'tgt_lang'"):
        HybridBatchSampler(nulls, 4, 0.5, 0.5, 0)


def test_state_from_other_settings_or_pairs_is_refused() -> None:
    pairs = big_pairs()
    sampler = HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=0)
    next(sampler)
    state = sampler.state_dict()
    with pytest.raises(UserError, match="batch_size"):
        HybridBatchSampler(pairs, 16, 0.5, 0.5, seed=0).load_state_dict(state)
    with pytest.raises(UserError, match="fingerprint"):
        other = pairs.with_columns(pl.col("domain").reverse())
        HybridBatchSampler(other, 8, 0.5, 0.5, seed=0).load_state_dict(state)
    with pytest.raises(UserError, match="past the end"):
        HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=0).load_state_dict(
            state | {"batch_in_epoch": 10_000}
        )
    with pytest.raises(UserError, match="epoch"):
        HybridBatchSampler(pairs, 8, 0.5, 0.5, seed=0).load_state_dict(state | {"epoch": None})
