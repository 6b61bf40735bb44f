"""Seeded, vectorised simulator of whole studies: per-query hits of a variant and a baseline.

Why: the study's statistics must hold their error rates when seeds are few and cells are
correlated; only whole simulated studies, with the dependence of the real ones, can show it.
Outcomes are Bernoulli with a logistic model (a crossed random-effects item-response model,
as in Baayen, Davidson & Bates 2008, J. Mem. Lang. 59, for subjects x items):

    logit P(hit[arm, seed, pair, id]) = c[pair, domain] + theta[id] + u[arm, seed]
        + v[arm, seed, pair] + w[arm, id] + effect * [arm = variant] * [stratum in effect set]

theta: sentence difficulty, shared by every language pair, seed and arm (sd item_sd); u, v:
seed-level training noise per (arm, seed) and per (arm, seed, pair); w: item x arm interaction
(a variant that helps some sentences and hurts others); c: language-pair plus domain offsets,
evenly spaced, optionally mapped so that the expected recall of the strata spans a range
(e.g. 0.5-0.95). Arm 0 is the variant and arm 1 the baseline, so coef (1, -1) is the contrast.

Population figures (what a test should recover) integrate the normal effects by
Gauss-Hermite quadrature: E sigma(c + tau Z) with tau^2 the sum of the effect variances.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from xrdiag.analyses.study_data import Layout, Study

ARMS = ("variant", "baseline")
PIVOT = "en"
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
_CHUNK = 1 << 22  # values generated per block (float64: 32 MiB)


@dataclass(frozen=True)
class StudySpec:
    """One study design and its true effects (logit units unless said otherwise)."""

    seeds: int = 3
    ids_per_domain: int | tuple[int, ...] = 50
    domains: int = 3
    pairs: int = 4
    base_logit: float = 1.5
    pair_sd: float = 0.5
    domain_sd: float = 0.5
    item_sd: float = 1.5
    recall_range: tuple[float, float] | None = None
    seed_sd: float = 0.0
    seed_pair_sd: float = 0.0
    item_arm_sd: float = 0.0
    effect: float = 0.0
    effect_strata: tuple[int, ...] | None = None

    def ids(self) -> tuple[int, ...]:
        n = self.ids_per_domain
        return (n,) * self.domains if isinstance(n, int) else tuple(n)


def layout(spec: StudySpec) -> Layout:
    """Strata (en -> l<p>, d<g>) domain by domain; every pair of a domain queries its ids."""
    ids = spec.ids()
    if len(ids) != spec.domains or min(ids) < 1 or spec.pairs < 1 or spec.seeds < 1:
        raise ValueError(f"bad study size: {spec}")
    strata = tuple(
        (PIVOT, f"l{p}", f"d{g}") for g in range(spec.domains) for p in range(spec.pairs)
    )
    first = np.concatenate([[0], np.cumsum(ids)[:-1]])
    qs = np.concatenate([np.full(ids[k // spec.pairs], k) for k in range(len(strata))])
    qi = np.concatenate([first[k // spec.pairs] + np.arange(ids[k // spec.pairs])
                         for k in range(len(strata))])  # fmt: skip
    labels = tuple(f"d{g}-{i}" for g in range(spec.domains) for i in range(ids[g]))
    return Layout(strata, labels, qs, qi)


def _tau(spec: StudySpec) -> float:
    return float(np.sqrt(spec.item_sd**2 + spec.seed_sd**2 + spec.seed_pair_sd**2
                         + spec.item_arm_sd**2))  # fmt: skip


def mean_sigmoid(logit: np.ndarray, tau: float) -> np.ndarray:
    """E sigma(logit + tau Z), Z standard normal (64-point Gauss-Hermite)."""
    x = np.asarray(logit, dtype=np.float64)[..., None] + tau * _NODES
    return (1.0 / (1.0 + np.exp(-x))) @ _WEIGHTS


def mean_slope(logit: np.ndarray, tau: float) -> np.ndarray:
    """E sigma'(logit + tau Z): the recall gained per logit, and the mean hit variance."""
    p = 1.0 / (1.0 + np.exp(-(np.asarray(logit, dtype=np.float64)[..., None] + tau * _NODES)))
    return (p * (1 - p)) @ _WEIGHTS


def _logit_for(recall: float, tau: float) -> float:
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_sigmoid(np.array(mid), tau) < recall else (lo, mid)
    return (lo + hi) / 2


def _spaced(n: int, sd: float) -> np.ndarray:
    """n evenly spaced offsets with mean 0 and population sd `sd`."""
    x = np.linspace(-1.0, 1.0, n)
    return sd * x / x.std() if n > 1 else np.zeros(1)


def intercepts(spec: StudySpec) -> np.ndarray:
    """c[K]: base + pair + domain offsets (evenly spaced), mapped onto recall_range if set."""
    off = _spaced(spec.domains, spec.domain_sd)[:, None] + _spaced(spec.pairs, spec.pair_sd)
    c = spec.base_logit + off.ravel()
    if spec.recall_range is None:
        return c
    lo, hi = (_logit_for(r, _tau(spec)) for r in spec.recall_range)
    span = c.max() - c.min()
    return np.full_like(c, (lo + hi) / 2) if span == 0 else lo + (c - c.min()) / span * (hi - lo)


def _effect_mask(spec: StudySpec) -> np.ndarray:
    k = spec.domains * spec.pairs
    if spec.effect_strata is None:
        return np.ones(k)
    m = np.zeros(k)
    m[list(spec.effect_strata)] = 1.0
    return m


def simulate(spec: StudySpec, n_studies: int, seed: int) -> np.ndarray:
    """values [n_studies, 2 (variant, baseline), seeds, Q] of 0/1 hits.

    One RNG stream for the batch, drawn in blocks of studies: study i of a batch of n is not
    study i of a batch of m != n (every batch is reproducible from its seed and size).
    """
    lay = layout(spec)
    rng = np.random.default_rng(seed)
    qs, qi = lay.query_stratum, lay.query_id
    pair = qs % spec.pairs
    base = intercepts(spec)[qs]
    shift = np.stack([spec.effect * _effect_mask(spec)[qs], np.zeros(qs.size)])  # [2, Q]
    s, n_ids = spec.seeds, len(lay.ids)
    per = max(1, _CHUNK // (2 * s * qs.size))
    out = []
    for start in range(0, n_studies, per):
        n = min(per, n_studies - start)
        theta = rng.normal(0, spec.item_sd, (n, 1, 1, n_ids))[..., qi]
        u = rng.normal(0, spec.seed_sd, (n, 2, s, 1))
        v = rng.normal(0, spec.seed_pair_sd, (n, 2, s, spec.pairs))[..., pair]
        w = rng.normal(0, spec.item_arm_sd, (n, 2, 1, n_ids))[..., qi]
        eta = base + theta + u + v + w + shift[:, None, :]
        out.append((rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64))
    return np.concatenate(out)


def simulate_study(spec: StudySpec, seed: int) -> Study:
    """One simulated study as a `Study` (arms variant, baseline; seeds 0..S-1)."""
    return Study(layout(spec), simulate(spec, 1, seed)[0], ARMS, tuple(range(spec.seeds)))


def expected_recall(spec: StudySpec) -> np.ndarray:
    """Population recall [2, K] of every stratum for the variant and the baseline."""
    c = intercepts(spec)
    tau = _tau(spec)
    return np.stack([mean_sigmoid(c + spec.effect * _effect_mask(spec), tau),
                     mean_sigmoid(c, tau)])  # fmt: skip


def true_delta(spec: StudySpec, weights: np.ndarray) -> float:
    """Population variant-minus-baseline value of the linear figure with stratum weights."""
    rec = expected_recall(spec)
    return float((rec[0] - rec[1]) @ np.asarray(weights, dtype=np.float64))


def effect_for(spec: StudySpec, delta: float, weights: np.ndarray) -> StudySpec:
    """The spec with the logit effect whose population delta on `weights` equals `delta`."""
    lo, hi = -15.0, 15.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if true_delta(replace(spec, effect=mid), weights) < delta else (lo, mid)
    return replace(spec, effect=(lo + hi) / 2)


def noise_ratio(spec: StudySpec, weights: np.ndarray) -> float:
    """About sd of a seed's figure difference from training noise / item-level SE of delta.

    Delta method on the population recall: a logit shift x moves stratum k by slope_k * x,
    and a hit's variance is slope_k (mean_slope); item SE counts hits and item x arm effects.
    """
    w = np.asarray(weights, dtype=np.float64)
    raw = mean_slope(intercepts(spec), _tau(spec))
    grid = (raw * w).reshape(spec.domains, spec.pairs)
    by_pair, by_domain = grid.sum(axis=0), grid.sum(axis=1)
    seed_var = 2 * spec.seed_sd**2 * grid.sum() ** 2 + 2 * spec.seed_pair_sd**2 * by_pair @ by_pair
    ids = np.array(spec.ids(), dtype=np.float64)
    item_var = 2 * (w**2 * raw / (spec.seeds * np.repeat(ids, spec.pairs))).sum()
    item_var += 2 * spec.item_arm_sd**2 * (by_domain**2 / ids).sum()
    return float(np.sqrt(seed_var / item_var))


def with_noise_ratio(spec: StudySpec, ratio: float, weights: np.ndarray) -> StudySpec:
    """The spec with seed_sd and seed_pair_sd scaled so that noise_ratio is `ratio`
    (seed_sd alone, set to 1 first, when both are 0)."""
    base = spec if spec.seed_sd or spec.seed_pair_sd else replace(spec, seed_sd=1.0)
    scale = ratio / noise_ratio(base, weights)
    return replace(base, seed_sd=base.seed_sd * scale, seed_pair_sd=base.seed_pair_sd * scale)
