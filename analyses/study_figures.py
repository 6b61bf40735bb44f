"""A study's figures per variant and its comparisons with the baseline, on per-query outcomes.

Pure polars and numpy, no model, no file. The unit of replication is right this time: a study
is per-query outcomes (`analyses/study_data.py`: hit of recall@1, cosine, no correction, last
layer, pivot on one side) of every variant x seed x (language pair, sentence id), and every
interval, test and minimum detectable effect comes from the calibrated two-way (seeds x ids)
test of `analyses/multibootstrap.py`: all cells of one seed share a model, all language pairs
and variants share the sentences, and the test says so. The untouched base model is one fixed
model: its outcomes stand in every seed, so its own interval is over ids only and "baseline -
base" pairs each trained seed with it.

Figures (`figure`): `recall@1` (overall, per domain, per language), `quadrant_recall@1` (lang
and domain seen/unseen), `worst_domain_recall@1` (domain names it), `domain_gap` (seen minus
unseen domains), `lang_gap` (seen minus unseen languages), `domain_spread` (population std of
the domain means); `lang_probe_acc`, `domain_probe_acc`, `cross_lang_cka` (debiased where
present) as means over seeds with a t interval over seeds.

A task-accuracy study (`Protocol.metric` "accuracy": a pair classifier's zero-shot accuracy,
outcomes from the task analysis' predictions) has every language pair (the two sentences'
languages, not a pivot and another), a stratum per (lang1, lang2, domain), a query per
(stratum, sentence id) whose value is the share of that id's pairs classified right; its
figures: `accuracy` overall, per domain and per language pair (`lang` = `l1-l2`), on the
pairs training saw (`seen`: a `train_pairs` pattern names them) and those it did not
(`unseen`: the zero-shot pairs), on `mono` (l1 = l2) and `cross` (l1 != l2: the generalized
setting), `lang_gap` (seen minus unseen), and the worst domain and spread across domains.

Comparisons: one primary contrast per variant (default recall@1 on unseen languages x unseen
domains), Holm over the primaries; every other figure is exploratory, Holm over those; and the
training effect, baseline minus base. Each row carries its minimum detectable effect (80 %
power, alpha), so "no difference" is never the verdict, "none larger than MDE" is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from xrdiag.analyses import multibootstrap as mb
from xrdiag.analyses.schema import DEBIASED_CKA, LINEAR_CKA
from xrdiag.analyses.study_data import Figure, Study, gap, mean_of, spread, study_from_frame, worst

ALL = "all"
BASE = "base"
PRIMARY_DEFAULT = ("quadrant_recall@1", "unseen", "unseen")
TASK_PRIMARY = ("accuracy", "unseen", "all")
ANY = "*"
_S, _F, _I = pl.String, pl.Float64, pl.Int64
FIGURE_SCHEMA = {"variant": _S, "figure": _S, "lang": _S, "domain": _S, "value": _F,
                 "ci_low": _F, "ci_high": _F, "n": _I, "n_seeds": _I, "pool": _I,
                 "method": _S, "note": _S}  # fmt: skip
COMPARISON_SCHEMA = {"variant": _S, "baseline": _S, "figure": _S, "lang": _S, "domain": _S,
                     "role": _S, "value": _F, "value_baseline": _F, "delta": _F, "ci_low": _F,
                     "ci_high": _F, "p_value": _F, "p_adjusted": _F, "significant": pl.Boolean,
                     "mde": _F, "n": _I, "n_seeds": _I, "pool": _I, "p_seed_signflip": _F,
                     "method": _S, "note": _S}  # fmt: skip
OUTCOME_COLUMNS = ("variant", "seed", "src_lang", "tgt_lang", "domain", "id", "value", "pool")


@dataclass(frozen=True)
class Protocol:
    """What training saw: the pivot, the training languages and domains."""

    pivot: str
    train_langs: tuple[str, ...]
    train_domains: tuple[str, ...]
    # "recall@1" (retrieval against the pivot) or "accuracy" (a task's zero-shot accuracy).
    metric: str = "recall@1"
    # The task's training language pairs as (lang1, lang2) patterns, "*" for any language.
    train_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def is_task(self) -> bool:
        return self.metric == "accuracy"

    def trained_pair(self, lang1: str, lang2: str) -> bool:
        return any(a in (ANY, lang1) and b in (ANY, lang2) for a, b in self.train_pairs)


Key = tuple[str, str, str]  # (figure, lang, domain)


def outcomes_frame(queries: pl.DataFrame, variant: str, seed: int | None) -> pl.DataFrame:
    """One evaluation's queries.parquet (ranks) as study outcomes: hit = rank 1, last layer."""
    top = queries.filter(pl.col("layer") == pl.col("layer").max())
    return top.select(
        pl.lit(variant).alias("variant"), pl.lit(seed, dtype=pl.Int64).alias("seed"),
        "src_lang", "tgt_lang", "domain", pl.col("id").cast(pl.String),
        (pl.col("rank") == 1).cast(pl.Float64).alias("value"), "pool",
    )  # fmt: skip


def task_outcomes_frame(predictions: pl.DataFrame, variant: str, seed: int | None) -> pl.DataFrame:
    """A task evaluation's predictions.parquet as study outcomes: per (lang1, lang2, domain, id)
    the share of that sentence's pairs (its positive and negative ...) classified right."""
    right = (pl.col("pred") == pl.col("label")).cast(pl.Float64)
    per = predictions.group_by("lang1", "lang2", "domain", pl.col("id").cast(pl.String)).agg(
        right.mean().alias("value")
    )
    return per.sort("lang1", "lang2", "domain", "id").select(
        pl.lit(variant).alias("variant"), pl.lit(seed, dtype=pl.Int64).alias("seed"),
        pl.col("lang1").alias("src_lang"), pl.col("lang2").alias("tgt_lang"), "domain", "id",
        "value", pl.lit(None, dtype=pl.Int64).alias("pool"),
    )  # fmt: skip


def study_of(outcomes: pl.DataFrame, protocol: Protocol) -> Study:
    """The pivot's pairs of every arm (a task: every pair); the base model's single evaluation
    stands in every seed."""
    piv = protocol.pivot
    rows = outcomes
    if not protocol.is_task:
        rows = outcomes.filter((pl.col("src_lang") == piv) | (pl.col("tgt_lang") == piv))
    trained = rows.filter(pl.col("variant") != BASE)
    seeds = sorted(trained["seed"].unique().to_list()) or [0]
    base = rows.filter(pl.col("variant") == BASE).drop("seed")
    copies = [base.with_columns(pl.lit(s, dtype=pl.Int64).alias("seed")) for s in seeds]
    frame = pl.concat([trained, *copies], how="diagonal_relaxed") if copies else trained
    return study_from_frame(frame.select(OUTCOME_COLUMNS[:-1]))


def figure_set(study: Study, protocol: Protocol) -> list[tuple[Key, Figure]]:
    """Every recall (or task accuracy) figure the study reports, keyed (figure, lang, domain)."""
    if protocol.is_task:
        return task_figure_set(study, protocol)
    lay, piv = study.layout, protocol.pivot
    langs = sorted({t if s == piv else s for s, t, _ in lay.strata})
    seen_l = [g for g in langs if g in protocol.train_langs]
    unseen_l = [g for g in langs if g not in protocol.train_langs]
    seen_d = [d for d in lay.domains if d in protocol.train_domains]
    unseen_d = [d for d in lay.domains if d not in protocol.train_domains]
    out: list[tuple[Key, Figure]] = [(("recall@1", ALL, ALL), mean_of(np.ones(lay.n_strata, bool)))]
    out += [(("recall@1", ALL, d), mean_of(lay.mask(domains=[d]))) for d in lay.domains]
    out += [(("recall@1", g, ALL), mean_of(lay.mask(langs=[g], pivot=piv))) for g in langs]
    for lname, lset in (("seen", seen_l), ("unseen", unseen_l)):
        for dname, dset in (("seen", seen_d), ("unseen", unseen_d)):
            mask = lay.mask(domains=dset, langs=lset, pivot=piv)
            if lset and dset and mask.any():
                out.append((("quadrant_recall@1", lname, dname), mean_of(mask)))
    domains = lay.domain_masks()
    if len(domains) > 1:
        out.append((("worst_domain_recall@1", ALL, ALL), worst(domains, "worst domain")))
        out.append((("domain_spread", ALL, ALL), spread(domains, "domain spread")))
    if seen_d and unseen_d:
        out.append((("domain_gap", ALL, ALL),
                    gap(lay.mask(domains=seen_d), lay.mask(domains=unseen_d))))  # fmt: skip
    if seen_l and unseen_l:
        out.append((("lang_gap", ALL, ALL), gap(lay.mask(langs=seen_l, pivot=piv),
                                                lay.mask(langs=unseen_l, pivot=piv))))  # fmt: skip
    return out


def task_figure_set(study: Study, protocol: Protocol) -> list[tuple[Key, Figure]]:
    """A task study's accuracy figures (module docstring), keyed (figure, lang, domain)."""
    lay, m = study.layout, protocol.metric
    pairs = list(dict.fromkeys((s, t) for s, t, _ in lay.strata))
    pair_of = np.array([f"{s}-{t}" for s, t, _ in lay.strata])
    seen = np.array([protocol.trained_pair(s, t) for s, t, _ in lay.strata])
    mono = np.array([s == t for s, t, _ in lay.strata])
    out: list[tuple[Key, Figure]] = [((m, ALL, ALL), mean_of(np.ones(lay.n_strata, bool)))]
    if len(lay.domains) > 1:
        out += [((m, ALL, d), mean_of(lay.mask(domains=[d]))) for d in lay.domains]
    out += [((m, f"{s}-{t}", ALL), mean_of(pair_of == f"{s}-{t}")) for s, t in pairs]
    for name, mask in (("seen", seen), ("unseen", ~seen), ("mono", mono), ("cross", ~mono)):
        if mask.any() and not mask.all():
            out.append(((m, name, ALL), mean_of(mask)))
    if seen.any() and not seen.all():
        out.append((("lang_gap", ALL, ALL), gap(seen, ~seen)))
    domains = lay.domain_masks()
    if len(domains) > 1:
        out.append(((f"worst_domain_{m}", ALL, ALL), worst(domains, "worst domain")))
        out.append((("domain_spread", ALL, ALL), spread(domains, "domain spread")))
    return out


def _pools(outcomes: pl.DataFrame, study: Study, figure: Figure) -> int | None:
    """The largest candidate pool among the strata a figure uses."""
    pools = outcomes.group_by("src_lang", "tgt_lang").agg(pl.col("pool").max())
    by_pair = {(s, t): p for s, t, p in pools.iter_rows()}
    used = (range(study.layout.n_strata) if figure.weights is None
            else np.flatnonzero(figure.weights))  # fmt: skip
    found = [by_pair.get(study.layout.strata[k][:2]) for k in used]
    found = [p for p in found if p is not None]
    return int(max(found)) if found else None


def _worst_domain(study: Study, arm: str) -> str:
    """The domain whose mean recall is lowest for `arm` (the label of the worst-domain figure)."""
    lay = study.layout
    values = np.nanmean(study.values[study.arm(arm)], axis=0)  # [Q]
    means = [np.nanmean([np.nanmean(values[lay.query_stratum == k])
                         for k in np.flatnonzero(m)]) for m in lay.domain_masks()]  # fmt: skip
    present = [lay.domains[lay.stratum_domain[np.flatnonzero(m)[0]]] for m in lay.domain_masks()]
    return present[int(np.argmin(means))]


def study_figures(
    outcomes: pl.DataFrame, summary: pl.DataFrame, protocol: Protocol, *, alpha: float = 0.05
) -> pl.DataFrame:
    """figures.parquet: every figure of every variant (base included) with its interval."""
    if outcomes.height == 0:
        return pl.DataFrame(schema=FIGURE_SCHEMA)
    study = study_of(outcomes, protocol)
    figures = figure_set(study, protocol)
    rows = []
    for arm in study.arms:
        for (name, lang, domain), fig in figures:
            r = mb.figure_interval(study, fig, arm, confidence=1 - alpha)
            if name.startswith("worst_domain_"):
                domain = _worst_domain(study, arm)
            rows.append({"variant": arm, "figure": name, "lang": lang, "domain": domain,
                         "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "n": r.n_ids, "n_seeds": 1 if arm == BASE else r.n_seeds,
                         "pool": _pools(outcomes, study, fig), "method": r.method,
                         "note": r.note})  # fmt: skip
    rows += _seed_figures(summary, alpha)
    return pl.DataFrame(rows, schema=FIGURE_SCHEMA)


def _seed_figures(summary: pl.DataFrame, alpha: float) -> list[dict[str, object]]:
    """Probe accuracies and cross-language CKA at the last layer: mean over seeds, t interval.

    CKA is the debiased estimator where present (plain linear CKA is inflated at these sample
    sizes); older results fall back to the plain one.
    """
    from scipy.stats import t as student

    if summary.height == 0 or "variant" not in summary.columns:
        return []
    top = summary.filter(
        (pl.col("layer") == pl.col("layer").max().over("variant", "seed"))
        & (pl.col("domain") == ALL)
    )
    cka = DEBIASED_CKA if (top["metric"] == DEBIASED_CKA).any() else LINEAR_CKA
    picks = {
        "lang_probe_acc": pl.col("metric") == "lang_probe_acc",
        "domain_probe_acc": pl.col("metric") == "domain_probe_acc",
        "cross_lang_cka": (pl.col("metric") == cka) & (pl.col("src_lang") != pl.col("tgt_lang")),
    }
    rows = []
    for variant in summary["variant"].unique(maintain_order=True).to_list():
        mine = top.filter(pl.col("variant") == variant)
        for figure, cond in picks.items():
            per_seed = (
                mine.filter(cond).group_by(pl.col("seed").fill_null(-1)).agg(pl.col("value").mean())
            )
            if per_seed.height == 0:
                continue
            v = per_seed["value"].to_numpy()
            low = high = float("nan")
            if v.size > 1:
                half = student.ppf(1 - alpha / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
                low, high = float(v.mean() - half), float(v.mean() + half)
            rows.append({"variant": variant, "figure": figure, "lang": ALL, "domain": ALL,
                         "value": float(v.mean()), "ci_low": low, "ci_high": high,
                         "n": None, "n_seeds": int(v.size), "pool": None,
                         "method": "t over seeds", "note": ""})  # fmt: skip
    return rows


def compare_variants(
    outcomes: pl.DataFrame,
    protocol: Protocol,
    *,
    baseline: str = "baseline",
    primary: Key = PRIMARY_DEFAULT,
    alpha: float = 0.05,
    power: float = 0.8,
) -> pl.DataFrame:
    """comparison.parquet: each variant minus the baseline on every figure (module docstring)."""
    if outcomes.height == 0 or baseline not in outcomes["variant"].unique().to_list():
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    study = study_of(outcomes, protocol)
    figures = figure_set(study, protocol)
    keys = [k for k, _ in figures]
    main = primary if primary in keys else (protocol.metric, ALL, ALL)
    # Training's own effect: the primary figure, the overall one, the seen quadrant.
    training_keys = {main, (protocol.metric, ALL, ALL), ("quadrant_recall@1", "seen", "seen")}
    rows: list[dict[str, object]] = []
    contrasts: list[tuple[str, mb.Contrast]] = []
    variants = [v for v in study.arms if v not in (baseline, BASE)]
    pairs = [(v, baseline) for v in variants]
    if BASE in study.arms:
        pairs.append((baseline, BASE))  # did training change anything?
    for variant, reference in pairs:
        for (name, lang, domain), fig in figures:
            if reference == BASE and (name, lang, domain) not in training_keys:
                continue
            c = mb.paired_contrast(study, fig, variant, reference, alpha=alpha, power=power)
            role = "training" if reference == BASE else (
                "primary" if (name, lang, domain) == main else "exploratory")  # fmt: skip
            flip = float("nan")
            if len(study.seeds) >= 5 and reference != BASE:
                flip = mb.seed_sign_flip(study, fig, variant, reference, alpha=alpha).p_value
            contrasts.append((role, c))
            a = mb.figure_interval(study, fig, variant).value
            b = mb.figure_interval(study, fig, reference).value
            rows.append({"variant": variant, "baseline": reference, "figure": name, "lang": lang,
                         "domain": domain, "role": role, "value": a, "value_baseline": b,
                         "delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high,
                         "p_value": c.p_value, "mde": c.mde, "n": c.n_ids, "n_seeds": c.n_seeds,
                         "pool": _pools(outcomes, study, fig), "p_seed_signflip": flip,
                         "method": c.method, "note": c.note})  # fmt: skip
    for role in ("primary", "exploratory", "training"):  # Holm within each family
        idx = [i for i, (r, _) in enumerate(contrasts) if r == role]
        adjusted = mb.holm([contrasts[i][1] for i in idx]) if idx else []
        for i, p in zip(idx, adjusted, strict=True):
            rows[i]["p_adjusted"] = float(p)
            rows[i]["significant"] = bool(np.isfinite(p) and p < alpha)
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)
