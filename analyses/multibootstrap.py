"""Study comparisons over seeds and sentence ids: Multi-Bootstrap, calibrated contrasts, MDE.

Why: a study's cells share trained models (seeds) and sentences (ids), so cell-level tests
treat correlated numbers as independent (17 of 20 null studies came out "significant"). This
module compares arms with seeds and ids as the two random factors.

* `MultiBootstrap`: the paired Multi-Bootstrap of Sellam et al. (2022, "The MultiBERTs: BERT
  Reproductions for Robustness Analysis", ICLR, section 3): each resample draws seeds and
  ids together, the same seeds and ids for every arm, ids within their domain (every
  language pair of a domain shares its ids). Percentile intervals of any figure of the
  resampled per-stratum means. Its variance keeps (S - 1)/S of the seed part and counts the
  seed x id residual 2-3 times (Owen 2007, "The pigeonhole bootstrap"): too narrow with 3
  seeds and strong seed noise, too wide without seed noise (false positives 0.00-0.10 in
  bench/study_calibration.py), so it is offered for description, not for the verdict.
* `paired_contrast`, `figure_interval`: the calibrated procedure of `analyses.twoway` (two-
  way random-effects variance, generalized p-value with S - 1 seed degrees of freedom);
  every contrast carries its minimum detectable effect (80 % power, two-sided 0.05).
* `seed_sign_flip`: the exact paired permutation test on per-seed figure differences, with
  Hartigan's (1969, JASA 64, "Using subsample values as typical values") interval from the
  2^S - 1 subset means, which excludes 0 exactly when p <= alpha. It treats the ids as
  fixed and its smallest two-sided p is 2 / 2^S: 0.25 at 3 seeds, 0.0625 at 5 (it can
  never reject at 0.05 with fewer than 6 seeds), 0.03125 at 6.
* `holm`: Holm (1979) across a table of contrasts (`analyses.paired.holm_adjust`).

Use: study = study_from_frame(per_query_frame); lay = study.layout;
paired_contrast(study, mean_of(lay.mask(domains=unseen), "recall@1"), "hybrid", "baseline").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from xrdiag.analyses.bootstrap import percentile_interval
from xrdiag.analyses.paired import holm_adjust, sign_flip_pvalue
from xrdiag.analyses.study_data import Figure, Layout, Study
from xrdiag.analyses.twoway import group_sums, twoway_test
from xrdiag.errors import UserError

TWOWAY = "two-way generalized t (seeds x ids)"
BOOTSTRAP = "multi-bootstrap percentile"
_TIE = 1e-12  # subset means this close to 0 are 0, as analyses.paired counts ties


@dataclass(frozen=True)
class Interval:
    """One arm's figure with its interval; `note` says why a NaN is a NaN."""

    value: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_ids: int
    method: str
    note: str = ""


@dataclass(frozen=True)
class Contrast:
    """variant minus baseline on one figure: delta, CI, p, minimum detectable effect, sizes."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    mde: float
    n_seeds: int
    n_ids: int
    method: str
    se: float = float("nan")
    note: str = ""


@dataclass(frozen=True)
class SignFlip:
    """Seed-level sign-flip test: mean per-seed difference, Hartigan CI, p and its floor."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    min_p_value: float
    n_seeds: int


def min_sign_flip_p(n_seeds: int) -> float:
    """The smallest two-sided p the exact seed sign-flip test can give: 2 / 2^S."""
    return 2.0 / 2.0**n_seeds


def restrict(study: Study, arms: Sequence[str]) -> Study:
    """The study on `arms` only, paired: a query counts where every arm has it; seeds and ids
    without any such query are dropped (strata are kept, possibly empty)."""
    idx = [study.arm(a) for a in arms]
    values = study.values[idx]
    both = np.isfinite(values).all(axis=0)  # [S, Q]
    values = np.where(both, values, np.nan)
    seeds = np.flatnonzero(both.any(axis=1))
    lay = study.layout
    seen = np.zeros(len(lay.ids), bool)
    seen[lay.query_id[both.any(axis=0)]] = True
    queries = np.flatnonzero(seen[lay.query_id])
    if queries.size == 0:
        raise UserError(f"study: arms {', '.join(arms)} share no observed query")
    new_id = np.cumsum(seen) - 1
    layout = Layout(lay.strata, tuple(np.array(lay.ids, dtype=object)[seen]),
                    lay.query_stratum[queries], new_id[lay.query_id[queries]])  # fmt: skip
    kept = values[:, seeds][:, :, queries]
    return Study(layout, kept, tuple(arms), tuple(study.seeds[i] for i in seeds))


def _used_ids(study: Study, figure: Figure, value: float) -> tuple[int, str]:
    """Ids in the strata the figure depends on, and a note when the figure is undefined."""
    lay = study.layout
    if not np.isfinite(value):
        empty = [lay.strata[k] for k in range(lay.n_strata)
                 if not np.isfinite(study.values[..., lay.query_stratum == k]).any()]  # fmt: skip
        where = f": no observation in stratum {'/'.join(empty[0])}" if empty else ""
        return 0, f"figure {figure.name} is undefined{where}"
    if figure.weights is None:
        return len(lay.ids), ""
    used = np.flatnonzero(figure.weights != 0)
    return int(np.unique(lay.query_id[np.isin(lay.query_stratum, used)]).size), ""


def _note(n_seeds: int, se: float, base: str) -> str:
    if base:
        return base
    if n_seeds < 2:
        return "one seed: seed-to-seed variance cannot be estimated (no interval, no test)"
    if se == 0:
        return "no variation in the outcomes: the standard error is 0"
    if not np.isfinite(se):
        return "a domain the figure uses has a single id: its id variance cannot be estimated"
    return ""


def _check(study: Study, figure: Figure) -> None:
    if figure.weights is not None and figure.weights.shape != (study.layout.n_strata,):
        raise UserError(f"figure {figure.name}: weights for {figure.weights.shape} strata, "
                        f"the study has {study.layout.n_strata}")  # fmt: skip


def paired_contrast(
    study: Study,
    figure: Figure,
    variant: str,
    baseline: str,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Contrast:
    """variant minus baseline on `figure`, paired by seed and query (module docstring).

    The CI is the (1 - alpha) interval of the same test, so it excludes 0 iff p < alpha; mde
    is the smallest true |delta| detected with `power` at `alpha` given these seeds and ids.
    """
    _check(study, figure)
    pair = restrict(study, (variant, baseline))
    r = twoway_test(pair.values, pair.layout, figure, (1.0, -1.0), alpha=alpha, power=power)
    n_ids, base = _used_ids(pair, figure, float(r.estimate))
    se = float(r.se)
    return Contrast(float(r.estimate), float(r.ci_low), float(r.ci_high), float(r.p_value),
                    float(r.mde), len(pair.seeds), n_ids, TWOWAY, se,
                    _note(len(pair.seeds), se, base))  # fmt: skip


def figure_interval(
    study: Study,
    figure: Figure,
    arm: str,
    *,
    confidence: float = 0.95,
    method: str = "twoway",
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """One arm's figure and its interval: calibrated ("twoway") or Multi-Bootstrap percentile."""
    _check(study, figure)
    one = restrict(study, (arm,))
    if method == "bootstrap":
        boot = MultiBootstrap(one, n_resamples=n_resamples, seed=seed)
        value = float(figure(boot.observed[0]))
        low, high = boot.interval(boot.figure(figure, arm), confidence)
        n_ids, note = _used_ids(one, figure, value)
        return Interval(value, low, high, len(one.seeds), n_ids, BOOTSTRAP, note)
    if method != "twoway":
        raise UserError(f"figure_interval: method {method!r}; expected twoway or bootstrap")
    r = twoway_test(one.values, one.layout, figure, (1.0,), alpha=1 - confidence)
    n_ids, base = _used_ids(one, figure, float(r.estimate))
    return Interval(float(r.estimate), float(r.ci_low), float(r.ci_high), len(one.seeds), n_ids,
                    TWOWAY, _note(len(one.seeds), float(r.se), base))  # fmt: skip


class MultiBootstrap:
    """Resampled per-stratum means [B, arm, K]: seeds and ids drawn together (docstring).

    The stream: rng = default_rng(seed); seed draws rng.integers(0, S, (B, S)); then, domain
    by domain in layout order, id draws rng.integers(0, J_g, (B, J_g)). A resample's stratum
    mean pools every (drawn seed, drawn id) observation of that stratum, with multiplicity;
    NaN where none was drawn.
    """

    def __init__(self, study: Study, *, n_resamples: int = 2000, seed: int = 0) -> None:
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
        self.study, lay = study, study.layout
        a, s, _ = study.values.shape
        present = np.isfinite(study.values)
        x, p = np.where(present, study.values, 0.0), present.astype(np.float64)
        self.observed = _ratio(group_sums(x.sum(1), lay.query_stratum, lay.n_strata),
                               group_sums(p.sum(1), lay.query_stratum, lay.n_strata))  # fmt: skip
        rng = np.random.default_rng(seed)
        seed_w = _counts(rng.integers(0, s, (n_resamples, s)), s)  # [B, S]
        num = np.zeros((n_resamples, a, lay.n_strata))
        den = np.zeros_like(num)
        for g in range(len(lay.domains)):
            ids = lay.domain_ids(g)
            j = ids.stop - ids.start
            if j == 0:
                continue
            id_w = _counts(rng.integers(0, j, (n_resamples, j)), j)  # [B, J_g]
            strata = np.flatnonzero(lay.stratum_domain == g)
            qs = np.flatnonzero(np.isin(lay.query_stratum, strata))
            col = np.searchsorted(strata, lay.query_stratum[qs])
            for arr, out in ((x, num), (p, den)):
                dense = np.zeros((j, a, s, strata.size))  # this domain's ids x cells
                dense[lay.query_id[qs] - ids.start, :, :, col] = arr[:, :, qs].transpose(2, 0, 1)
                per_seed = (id_w @ dense.reshape(j, -1)).reshape(-1, a, s, strata.size)
                out[:, :, strata] = np.einsum("bs,bask->bak", seed_w, per_seed)
        self.means = _ratio(num, den)

    def figure(self, figure: Figure, arm: str) -> np.ndarray:
        """The figure of one arm in every resample [B]."""
        return np.asarray(figure(self.means[:, self.study.arm(arm)]))

    def contrast(self, figure: Figure, variant: str, baseline: str) -> np.ndarray:
        """figure(variant) - figure(baseline) in every resample [B] (same seeds and ids)."""
        return self.figure(figure, variant) - self.figure(figure, baseline)

    @staticmethod
    def interval(stats: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
        """Percentile interval of resampled statistics, NaNs (empty strata) dropped."""
        ok = np.asarray(stats, dtype=np.float64)
        ok = ok[np.isfinite(ok)]
        if ok.size == 0:
            return float("nan"), float("nan")
        low, high = percentile_interval(ok, confidence)
        return float(low), float(high)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each of n items was drawn in each resample: [B, n] float."""
    rows = idx.shape[0]
    flat = (idx + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def seed_sign_flip(
    study: Study, figure: Figure, variant: str, baseline: str, *, alpha: float = 0.05
) -> SignFlip:
    """Exact sign-flip test of the per-seed figure differences (ids fixed; docstring).

    The interval is Hartigan's: the k-th smallest to k-th largest of the 2^S - 1 subset
    means, k = floor(alpha 2^(S-1)), coverage 1 - 2k / 2^S; infinite when k = 0 (S <= 5 at
    alpha 0.05). It excludes 0 exactly when p <= alpha (p < alpha unless alpha 2^(S-1) is
    an integer), barring per-seed differences that are exactly 0.
    """
    _check(study, figure)
    pair = restrict(study, (variant, baseline))
    lay, v = pair.layout, pair.values
    present = np.isfinite(v)
    num = group_sums(np.where(present, v, 0.0), lay.query_stratum, lay.n_strata)
    den = group_sums(present.astype(float), lay.query_stratum, lay.n_strata)
    per_seed = np.asarray(figure(_ratio(num, den)))  # [2, S]
    d = per_seed[0] - per_seed[1]
    s = d.size
    if s > 16 or not np.isfinite(d).all():
        raise UserError(f"seed_sign_flip: needs 1-16 seeds with defined figures, got {d}")
    k = int(np.floor(alpha * 2 ** (s - 1)))
    low, high = -np.inf, np.inf
    if k >= 1:
        sums = [d[list(c)].mean() for r in range(1, s + 1) for c in combinations(range(s), r)]
        means = np.sort(np.asarray(sums))
        means[np.abs(means) <= _TIE * max(1.0, np.abs(d).max())] = 0.0  # as the p-value's ties
        low, high = float(means[k - 1]), float(means[-k])
    return SignFlip(float(d.mean()), low, high, sign_flip_pvalue(d), min_sign_flip_p(s), s)


def holm(contrasts: Sequence[Contrast]) -> np.ndarray:
    """Holm-adjusted p-values of a table of contrasts, in order (NaN stays NaN)."""
    return holm_adjust([c.p_value for c in contrasts])
