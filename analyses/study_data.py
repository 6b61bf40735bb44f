"""Per-query outcomes of a study (arm x seed x query) and the figures computed from them.

Why a layout and not cells: a seed x language pair x domain *cell* is not an independent unit.
Every cell of one seed comes from one trained model, and one sentence id is queried in every
language pair, seed and arm. The resampling and variance code (`analyses.multibootstrap`)
needs the outcome of each *query* = (language pair, sentence id), with two labels per query:

* its *stratum* = (language pair, domain): figures give each stratum equal weight, as the
  study's cell-mean figures do;
* its *cluster* = the sentence id: queries that share an id move together, and ids are
  resampled within their domain (every language pair of a domain shares that domain's ids).

A *figure* is a statistic of the per-stratum means (vector [..., K] -> [...]): a masked mean
(overall, per domain, per language, per quadrant), a gap between two masks, the worst group
(min of group means) or the spread of group means (population std). Linear figures carry
their stratum weights, so their variance needs no numerical gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from xrdiag.errors import UserError

FRAME_COLUMNS = ("variant", "seed", "src_lang", "tgt_lang", "domain", "id", "value")


@dataclass(frozen=True)
class Layout:
    """Which stratum (language pair x domain) and which sentence id each query column is.

    `strata[k] = (src_lang, tgt_lang, domain)`; `ids[j]` is the label of cluster j and
    `id_domain[j]` its domain index. Ids are numbered domain by domain (all ids of domain 0,
    then domain 1, ...), so `domain_ids(g)` is a contiguous slice.
    """

    strata: tuple[tuple[str, str, str], ...]
    ids: tuple[str, ...]
    query_stratum: np.ndarray  # [Q] int
    query_id: np.ndarray  # [Q] int
    domains: tuple[str, ...] = field(init=False)
    stratum_domain: np.ndarray = field(init=False)  # [K] int
    id_domain: np.ndarray = field(init=False)  # [n_ids] int

    def __post_init__(self) -> None:
        qs = np.asarray(self.query_stratum, dtype=np.int64)
        qi = np.asarray(self.query_id, dtype=np.int64)
        k, n = len(self.strata), len(self.ids)
        if qs.shape != qi.shape or qs.ndim != 1 or qs.size == 0:
            raise UserError("layout: query_stratum and query_id must be equal non-empty 1-d")
        if qs.min() < 0 or qs.max() >= k or qi.min() < 0 or qi.max() >= n:
            raise UserError("layout: a query points at a stratum or id that does not exist")
        if np.unique(qs * n + qi).size != qs.size:
            raise UserError("layout: a (stratum, id) pair appears twice")
        domains = tuple(dict.fromkeys(s[2] for s in self.strata))
        sdom = np.array([domains.index(s[2]) for s in self.strata], dtype=np.int64)
        idom = np.full(n, -1, dtype=np.int64)
        idom[qi] = sdom[qs]
        if (idom < 0).any():
            raise UserError("layout: an id has no query")
        if not (idom[qi] == sdom[qs]).all():
            raise UserError("layout: an id is queried in two domains; ids must be per domain")
        if (np.diff(idom) < 0).any():
            raise UserError("layout: ids must be numbered domain by domain")
        for name, value in (("query_stratum", qs), ("query_id", qi), ("stratum_domain", sdom)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "id_domain", idom)

    @property
    def n_strata(self) -> int:
        return len(self.strata)

    @property
    def n_queries(self) -> int:
        return int(self.query_stratum.size)

    def domain_ids(self, g: int) -> slice:
        """The ids of domain g, as a slice of the id axis."""
        where = np.flatnonzero(self.id_domain == g)
        return slice(int(where[0]), int(where[-1]) + 1) if where.size else slice(0, 0)

    def mask(
        self,
        *,
        domains: Iterable[str] | None = None,
        langs: Iterable[str] | None = None,
        pivot: str | None = None,
    ) -> np.ndarray:
        """Strata [K] bool in the given domains whose language is in `langs`.

        A stratum's language is its non-pivot side when `pivot` is given, else either side.
        """
        out = np.ones(self.n_strata, dtype=bool)
        if domains is not None:
            keep = set(domains)
            out &= np.array([s[2] in keep for s in self.strata])
        if langs is not None:
            keep = set(langs)
            sides = [
                (t if s == pivot else s,) if pivot in (s, t) else (s, t) for s, t, _ in self.strata
            ]
            out &= np.array([bool(keep.intersection(side)) for side in sides])
        return out

    def domain_masks(self, within: np.ndarray | None = None) -> list[np.ndarray]:
        """One stratum mask per domain (within `within`); domains with no stratum are left out."""
        base = np.ones(self.n_strata, bool) if within is None else np.asarray(within, bool)
        masks = [base & (self.stratum_domain == g) for g in range(len(self.domains))]
        return [m for m in masks if m.any()]


@dataclass(frozen=True)
class Study:
    """Per-query outcomes `values[arm, seed, query]` (0/1 hit or reciprocal rank; NaN: missing)."""

    layout: Layout
    values: np.ndarray
    arms: tuple[str, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        want = (len(self.arms), len(self.seeds), self.layout.n_queries)
        if v.shape != want:
            raise UserError(f"study: values have shape {v.shape}, expected {want}")
        object.__setattr__(self, "values", v)

    def arm(self, name: str) -> int:
        if name not in self.arms:
            raise UserError(f"study: no arm {name!r}; arms are {', '.join(self.arms)}")
        return self.arms.index(name)


def study_from_frame(frame: pl.DataFrame, value: str = "value") -> Study:
    """Study from a long frame, one row per query outcome (`FRAME_COLUMNS`, `value` renamable).

    Arms are the variants in order of appearance; seeds, strata and ids are sorted. A query an
    arm or seed did not evaluate is NaN. Duplicate rows and an id in two domains are errors.
    """
    need = [c for c in FRAME_COLUMNS if c != "value"] + [value]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise UserError(f"study frame: missing column(s) {', '.join(missing)}; need {need}")
    if frame.height == 0:
        raise UserError("study frame: no rows")
    f = frame.select(
        pl.col("variant").cast(pl.String),
        pl.col("seed").cast(pl.Int64),
        *(pl.col(c).cast(pl.String) for c in ("src_lang", "tgt_lang", "domain", "id")),
        pl.col(value).cast(pl.Float64).alias("value"),
    )
    if f.select(pl.all().exclude("value").is_null().any()).row(0) != (False,) * 6:
        raise UserError("study frame: null in variant, seed, src_lang, tgt_lang, domain or id")
    keys = ["variant", "seed", "src_lang", "tgt_lang", "domain", "id"]
    if f.select(pl.struct(keys).is_duplicated().any()).item():
        raise UserError("study frame: the same (variant, seed, language pair, domain, id) twice")
    per_id = f.group_by("id").agg(pl.col("domain").n_unique().alias("n"))
    if per_id["n"].max() > 1:  # type: ignore[operator]
        bad = per_id.filter(pl.col("n") > 1)["id"].head(3).to_list()
        raise UserError(f"study frame: id(s) {', '.join(bad)} appear in two domains")
    arms = tuple(f["variant"].unique(maintain_order=True).to_list())
    seeds = tuple(sorted(f["seed"].unique().to_list()))
    domains = sorted(f["domain"].unique().to_list())
    strata_f = f.select("src_lang", "tgt_lang", "domain").unique()
    strata_f = strata_f.with_columns(
        pl.col("domain").replace_strict(domains, range(len(domains))).alias("g")
    )
    strata_f = strata_f.sort("g", "src_lang", "tgt_lang").with_row_index("k")
    ids_f = (
        f.select("domain", "id")
        .unique()
        .with_columns(pl.col("domain").replace_strict(domains, range(len(domains))).alias("g"))
    )
    ids_f = ids_f.sort("g", "id").with_row_index("j")
    queries = (
        f.select("src_lang", "tgt_lang", "domain", "id")
        .unique()
        .join(
            strata_f.select("src_lang", "tgt_lang", "domain", "k"),
            on=["src_lang", "tgt_lang", "domain"],
        )
        .join(ids_f.select("id", "j"), on="id")
        .sort("k", "j")
        .with_row_index("q")
    )
    layout = Layout(
        strata=tuple(strata_f.select("src_lang", "tgt_lang", "domain").iter_rows()),
        ids=tuple(ids_f["id"].to_list()),
        query_stratum=queries["k"].to_numpy(),
        query_id=queries["j"].to_numpy(),
    )
    rows = f.join(queries.select("src_lang", "tgt_lang", "domain", "id", "q"),
                  on=["src_lang", "tgt_lang", "domain", "id"])  # fmt: skip
    values = np.full((len(arms), len(seeds), layout.n_queries), np.nan)
    a = rows["variant"].replace_strict(list(arms), range(len(arms))).to_numpy()
    s = np.searchsorted(np.array(seeds), rows["seed"].to_numpy())
    values[a, s, rows["q"].to_numpy()] = rows["value"].to_numpy()
    return Study(layout, values, arms, seeds)


Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Figure:
    """A statistic of per-stratum means [..., K] -> [...]; `weights` [K] when it is linear."""

    name: str
    fn: Statistic
    weights: np.ndarray | None = None

    def __call__(self, means: np.ndarray) -> np.ndarray:
        return self.fn(np.asarray(means, dtype=np.float64))


def _group_means(means: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    w = np.stack([np.asarray(m, float) / np.sum(m) for m in masks], axis=1)  # [K, G]
    used = np.flatnonzero(w.any(axis=1))  # strata outside every mask may be NaN
    return means[..., used] @ w[used]


def _linear(name: str, w: np.ndarray) -> Figure:
    used = np.flatnonzero(w)
    return Figure(name, lambda x: x[..., used] @ w[used], w)


def mean_of(mask: np.ndarray, name: str = "mean") -> Figure:
    """Equal-weight mean of the strata in `mask` (overall, a domain, a language, a quadrant)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise UserError(f"figure {name}: the mask selects no stratum")
    return _linear(name, m / m.sum())


def gap(seen: np.ndarray, unseen: np.ndarray, name: str = "gap") -> Figure:
    """Mean of `seen` strata minus mean of `unseen` strata (e.g. the domain gap)."""
    a, b = mean_of(seen, name), mean_of(unseen, name)
    assert a.weights is not None and b.weights is not None
    return _linear(name, a.weights - b.weights)


def worst(masks: Sequence[np.ndarray], name: str = "worst") -> Figure:
    """The lowest group mean (e.g. the worst domain); nonlinear."""
    if not masks or not all(np.any(m) for m in masks):
        raise UserError(f"figure {name}: needs non-empty group masks")
    return Figure(name, lambda x: _group_means(x, masks).min(axis=-1))


def spread(masks: Sequence[np.ndarray], name: str = "spread") -> Figure:
    """Population std of the group means (e.g. the spread across domains); nonlinear."""
    if not masks or not all(np.any(m) for m in masks):
        raise UserError(f"figure {name}: needs non-empty group masks")
    return Figure(name, lambda x: _group_means(x, masks).std(axis=-1))
