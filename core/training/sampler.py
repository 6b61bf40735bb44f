"""Hybrid batch sampler: each batch is language- and/or domain-homogeneous with set probabilities.

With probability alpha a batch is language-homogeneous (every pair shares one ordered
(src_lang, tgt_lang) pair), otherwise mixed across language pairs; independently, with
probability beta it is domain-homogeneous, otherwise mixed across domains. alpha = beta = 1 and
alpha = beta = 0 are the two pure regimes. Mixed-domain batches are what give a domain
discriminator both classes in one step (Ganin et al. 2016).

Rules, so that the configured probabilities hold exactly and every pair is used once per epoch:

- Sampling is without replacement within an epoch; the epoch ends when every pair has been used,
  and the next one reshuffles (its generator is seeded with ``[seed, epoch]``).
- The two regime draws are Bernoulli(alpha) and Bernoulli(beta) for every batch; they are never
  redrawn or overridden, so a homogeneous batch is always homogeneous.
- A homogeneous batch picks its pool (a language pair, a domain, or both) weighted by the number
  of pairs the pool still holds, among the pools that can still fill a whole batch; when none
  can, among all non-empty pools, and the batch is *short* (the pool's whole remainder). A
  homogeneous batch is never topped up from another pool.
- A mixed batch is a uniform draw without replacement from the eligible remainder (all of it,
  or the chosen pool of the homogeneous dimension). If that draw happens to land in one language
  pair (or one domain) while the remainder holds another, one uniformly chosen member is swapped
  for a uniformly chosen pair that makes the batch mixed. A mixed batch is short only at the end
  of an epoch, when fewer than ``batch_size`` eligible pairs remain.
- A mixed batch can still be homogeneous in truth when the remainder cannot mix (one language
  pair left, or a batch of one). ``Batch.lang_homogeneous`` / ``domain_homogeneous`` and the
  composition dict report the truth; ``composition["requested"]`` reports the regime draw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from xrdiag.errors import UserError

REQUIRED_COLUMNS = ("src_lang", "tgt_lang", "domain")
STATE_VERSION = 1


def lang_pair_key(src_lang: str, tgt_lang: str) -> str:
    """The name of an ordered language pair in composition dicts, e.g. ``en|es-419``.

    A bar, because BCP-47 tags themselves contain hyphens.
    """
    return f"{src_lang}|{tgt_lang}"


@dataclass(frozen=True)
class Batch:
    """One batch: pair indices (rows of the pairs frame), true homogeneity flags, composition.

    ``composition`` is JSON-serialisable: epoch, batch_in_epoch, size, the two true flags,
    ``requested`` (the regime draws), ``lang_pairs`` and ``domains`` (counts per name).
    """

    indices: np.ndarray
    lang_homogeneous: bool
    domain_homogeneous: bool
    composition: dict[str, Any]


class HybridBatchSampler:
    """Endless, seeded, resumable batch sampler over training pairs (see the module docstring).

    Iterating the sampler (it is its own iterator) yields `Batch` objects forever;
    `state_dict()` after any batch and `load_state_dict()` on a fresh sampler built from the same
    pairs and settings continue with exactly the batches an uninterrupted iteration would give.
    """

    def __init__(
        self, pairs: pl.DataFrame, batch_size: int, alpha: float, beta: float, seed: int
    ) -> None:
        _check_settings(batch_size, alpha, beta, seed)
        self.batch_size = int(batch_size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.seed = int(seed)
        self._index_pairs(pairs)
        self._epoch = 0
        self._batch_in_epoch = 0
        self._rng: np.random.Generator | None = None
        self._order: list[np.ndarray] = []
        self._remaining = np.zeros(len(self._members), dtype=np.int64)

    # -- set-up -----------------------------------------------------------------------------

    def _index_pairs(self, pairs: pl.DataFrame) -> None:
        """Group pair rows into cells (language pair x domain), in a row-order-free, sorted way."""
        missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
        if missing:
            raise UserError(
                f"training pairs: missing column(s) {missing}; expected {list(REQUIRED_COLUMNS)}"
            )
        if pairs.height == 0:
            raise UserError("training pairs: none left after the protocol's language/domain filter")
        cols = {c: pairs[c].cast(pl.String) for c in REQUIRED_COLUMNS}
        for name, col in cols.items():
            if col.null_count():
                row = int(col.is_null().arg_max() or 0) + 1
                raise UserError(f"training pairs: row {row}, column {name!r} is empty")
        lp = [lang_pair_key(s, t) for s, t in zip(cols["src_lang"], cols["tgt_lang"], strict=True)]
        dom = cols["domain"].to_list()
        self.lang_pairs: tuple[str, ...] = tuple(sorted(set(lp)))
        self.domains: tuple[str, ...] = tuple(sorted(set(dom)))
        lp_pos = {k: i for i, k in enumerate(self.lang_pairs)}
        dom_pos = {k: i for i, k in enumerate(self.domains)}
        lp_id = np.fromiter((lp_pos[k] for k in lp), dtype=np.int64, count=len(lp))
        dom_id = np.fromiter((dom_pos[k] for k in dom), dtype=np.int64, count=len(dom))
        code = lp_id * len(self.domains) + dom_id
        cells, sizes = np.unique(code, return_counts=True)
        order = np.argsort(code, kind="stable")
        self._members = np.split(order, np.cumsum(sizes)[:-1])
        self._sizes = sizes.astype(np.int64)
        self._cell_lp = cells // len(self.domains)
        self._cell_dom = cells % len(self.domains)
        self.n_pairs = int(pairs.height)
        digest = hashlib.sha256()
        for k, d in zip(lp, dom, strict=True):
            digest.update(f"{k}\t{d}\n".encode())
        self._fingerprint = digest.hexdigest()

    def _start_epoch(self) -> None:
        """Fresh generator and per-cell shuffles for the current epoch."""
        self._rng = np.random.default_rng([self.seed, self._epoch])
        self._order = [self._rng.permutation(m) for m in self._members]
        self._remaining = self._sizes.copy()
        self._batch_in_epoch = 0

    # -- iteration ----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch the last batch came from (0-based)."""
        return self._epoch

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self._rng is None:
            self._start_epoch()
        elif not self._remaining.any():
            self._epoch += 1
            self._start_epoch()
        batch = self._draw()
        self._batch_in_epoch += 1
        return batch

    def _draw(self) -> Batch:
        """Draw the regimes, the pool and the members of the next batch of this epoch."""
        rng = self._rng
        assert rng is not None
        want_lang = bool(rng.random() < self.alpha)
        want_dom = bool(rng.random() < self.beta)
        avail = self._remaining.copy()
        if want_lang or want_dom:
            if want_lang and want_dom:
                group = np.arange(len(avail))
            else:
                group = self._cell_lp if want_lang else self._cell_dom
            chosen = self._choose_pool(group, avail, rng)
            avail[group != chosen] = 0
        k = int(min(self.batch_size, avail.sum()))
        counts = rng.multivariate_hypergeometric(avail, k).astype(np.int64)
        counts = self._make_mixed(counts, avail, not want_lang, not want_dom, rng)
        parts = []
        for c in np.flatnonzero(counts):
            start = self._sizes[c] - self._remaining[c]
            parts.append(self._order[c][start : start + counts[c]])
            self._remaining[c] -= counts[c]
        indices = rng.permutation(np.concatenate(parts))
        return self._batch(indices, counts, want_lang, want_dom)

    def _choose_pool(self, group: np.ndarray, avail: np.ndarray, rng: np.random.Generator) -> int:
        """A pool id weighted by its remainder, among pools able to fill a batch if any can."""
        sizes = np.bincount(group, weights=avail, minlength=int(group.max()) + 1)
        ok = sizes >= self.batch_size
        if not ok.any():
            ok = sizes > 0
        weights = np.where(ok, sizes, 0.0)
        return int(rng.choice(len(weights), p=weights / weights.sum()))

    def _make_mixed(
        self,
        counts: np.ndarray,
        avail: np.ndarray,
        need_lang: bool,
        need_dom: bool,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Swap members (uniformly) until each dimension that must be mixed is, where possible.

        Each swap removes one member and adds one eligible unused pair; among the swaps that
        leave the fewest unmixed dimensions, one is drawn with probability proportional to
        (members in the removed cell) x (unused pairs in the added cell).
        """
        if not (need_lang or need_dom) or counts.sum() < 2:
            return counts
        for _ in range(2):  # each swap fixes at least one of at most two dimensions
            lp_n = np.bincount(self._cell_lp, weights=counts, minlength=len(self.lang_pairs))
            dom_n = np.bincount(self._cell_dom, weights=counts, minlength=len(self.domains))
            bad = int(need_lang and (lp_n > 0).sum() < 2) + int(need_dom and (dom_n > 0).sum() < 2)
            if bad == 0:
                break
            used = np.flatnonzero(counts > 0)
            spare = np.flatnonzero(avail - counts > 0)
            if spare.size == 0:
                break
            after = np.zeros((used.size, spare.size), dtype=np.int64)
            if need_lang:
                after += _distinct_after(lp_n, self._cell_lp, used, spare) < 2
            if need_dom:
                after += _distinct_after(dom_n, self._cell_dom, used, spare) < 2
            best = after.min()
            if best >= bad:
                break
            weight = np.outer(counts[used], avail[spare] - counts[spare]) * (after == best)
            pick = int(rng.choice(weight.size, p=(weight / weight.sum()).ravel()))
            r, a = divmod(pick, spare.size)
            counts = counts.copy()
            counts[used[r]] -= 1
            counts[spare[a]] += 1
        return counts

    def _batch(
        self, indices: np.ndarray, counts: np.ndarray, want_lang: bool, want_dom: bool
    ) -> Batch:
        """Package a batch with its JSON-serialisable composition."""
        lp_n = np.bincount(self._cell_lp, weights=counts, minlength=len(self.lang_pairs))
        dom_n = np.bincount(self._cell_dom, weights=counts, minlength=len(self.domains))
        lang_pairs = {self.lang_pairs[i]: int(lp_n[i]) for i in np.flatnonzero(lp_n)}
        domains = {self.domains[i]: int(dom_n[i]) for i in np.flatnonzero(dom_n)}
        lang_h, dom_h = len(lang_pairs) == 1, len(domains) == 1
        composition = {
            "epoch": self._epoch,
            "batch_in_epoch": self._batch_in_epoch,
            "size": int(indices.size),
            "lang_homogeneous": lang_h,
            "domain_homogeneous": dom_h,
            "requested": {"lang_homogeneous": want_lang, "domain_homogeneous": want_dom},
            "lang_pairs": lang_pairs,
            "domains": domains,
        }
        return Batch(indices.astype(np.int64), lang_h, dom_h, composition)

    # -- resumption ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position: settings, a fingerprint of the pairs, epoch, batch in epoch.

        The epoch is replayed from its seed on load, so no index lists need storing.
        """
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "alpha": self.alpha,
            "beta": self.beta,
            "n_pairs": self.n_pairs,
            "fingerprint": self._fingerprint,
            "epoch": self._epoch,
            "batch_in_epoch": self._batch_in_epoch if self._rng is not None else 0,
            "started": self._rng is not None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; the pairs and settings must be the ones it was written with."""
        if state.get("version") != STATE_VERSION:
            raise UserError(
                f"sampler state: version {state.get('version')!r}, expected {STATE_VERSION}"
            )
        mine = self.state_dict()
        for key in ("seed", "batch_size", "alpha", "beta", "n_pairs", "fingerprint"):
            if state.get(key) != mine[key]:
                raise UserError(
                    f"sampler state: {key} is {state.get(key)!r} in the checkpoint but "
                    f"{mine[key]!r} now; resume with the run's own config and corpus"
                )
        for key in ("epoch", "batch_in_epoch"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"sampler state: {key} is {value!r}, expected an integer >= 0")
        self._epoch = int(state["epoch"])
        if not state.get("started", True):
            self._rng = None
            self._batch_in_epoch = 0
            return
        self._start_epoch()
        for _ in range(int(state["batch_in_epoch"])):
            if not self._remaining.any():
                raise UserError(
                    f"sampler state: batch_in_epoch {state['batch_in_epoch']} is past the end of "
                    f"epoch {self._epoch}"
                )
            self._draw()
            self._batch_in_epoch += 1


def _distinct_after(
    n: np.ndarray, cell_key: np.ndarray, used: np.ndarray, spare: np.ndarray
) -> np.ndarray:
    """Distinct keys in the batch after moving one member from cell used[r] to cell spare[a]."""
    kr = cell_key[used][:, None]
    ka = cell_key[spare][None, :]
    lost = (n[kr] == 1) & (kr != ka)
    gained = (n[ka] == 0) & (kr != ka)
    return int((n > 0).sum()) - lost.astype(np.int64) + gained.astype(np.int64)


def _check_settings(batch_size: int, alpha: float, beta: float, seed: int) -> None:
    """One-line errors naming the config key, for values the config may have let through."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise UserError(f"batches.batch_size: expected an integer, got {batch_size!r}")
    if batch_size < 1:
        raise UserError(f"batches.batch_size: expected >= 1, got {batch_size}")
    for key, value in (("batches.alpha", alpha), ("batches.beta", beta)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise UserError(f"{key}: expected a number in [0, 1], got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise UserError(f"{key}: expected a probability in [0, 1], got {value}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UserError(f"run.seed: expected a non-negative integer, got {seed!r}")
