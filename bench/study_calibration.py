"""Calibration of the study comparison on simulated null studies, and its power curve.

Each configuration simulates whole studies (analyses.study_sim: shared sentence difficulty,
language-pair and domain offsets, seed-level training noise, optionally item x arm effects)
with no true difference between variant and baseline, and counts how often each method
calls the overall recall@1 difference significant at alpha 0.05:

* two-way generalized t (analyses.twoway, what paired_contrast reports): printed as
  `<configuration>: false positive rate at alpha 0.05: X`, with the other figures (one
  domain, the domain gap, the worst domain) and the median minimum detectable effect;
* the old cell-level sign-flip test (analyses.paired, seed x pair x domain cells);
* the plain Multi-Bootstrap percentile interval of Sellam et al. 2022 (excludes 0);
* a Welch-Satterthwaite t on the same two variance parts (the rejected alternative).

Then power curves: true effect -> detection rate, with the reported MDE marked.

Run: python bench/study_calibration.py [--studies 1000] [--boot-studies 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xrdiag.analyses.multibootstrap import MultiBootstrap
from xrdiag.analyses.paired import sign_flip_pvalue
from xrdiag.analyses.study_data import Study, gap, mean_of, worst
from xrdiag.analyses.study_sim import (
    ARMS,
    StudySpec,
    effect_for,
    layout,
    noise_ratio,
    simulate,
    with_noise_ratio,
)
from xrdiag.analyses.twoway import cluster_influence, group_sums, twoway_test

WIDE = dict(domains=6, pairs=8)
PRODUCT = dict(domains=6, pairs=24, recall_range=(0.5, 0.95))  # 12 languages both ways
NOISE = (("no seed noise", 0.0), ("seed noise 1x item SE", 1.0), ("seed noise 3x item SE", 3.0))


def config(seeds: int, ids: int, ratio: float, **kw: object) -> StudySpec:
    """A spec whose seed noise is `ratio` times the item-level SE of the overall delta."""
    spec = StudySpec(seeds=seeds, ids_per_domain=ids, **kw)  # type: ignore[arg-type]
    w = np.full(spec.domains * spec.pairs, 1.0 / (spec.domains * spec.pairs))
    return with_noise_ratio(spec, ratio, w) if ratio else spec


CONFIGS: list[tuple[str, StudySpec]] = [
    (f"{s} seeds, {j} ids/domain, {noise}", config(s, j, r, **WIDE))
    for s in (3, 5)
    for j in (20, 60, 300)
    for noise, r in NOISE
] + [
    (f"{s} seeds, {j} ids/domain, seed noise 3x + item x arm 0.6",
     config(s, j, 3.0, item_arm_sd=0.6, **WIDE))
    for s in (3, 5)
    for j in (20, 300)
] + [
    (f"product: {s} seeds, 200 ids/domain, 24 pairs, recall 0.5-0.95, seed noise 2x",
     config(s, 200, 2.0, seed_pair_sd=0.5, seed_sd=1.0, **PRODUCT))
    for s in (3, 5)
]  # fmt: skip
POWER = (CONFIGS[2][1], CONFIGS[-1][1])
ALPHA = 0.05


def satterthwaite_p(values: np.ndarray, spec: StudySpec) -> np.ndarray:
    """The rejected alternative: t with Welch-Satterthwaite df from the same two parts."""
    from scipy.special import stdtr

    lay = layout(spec)
    fig = mean_of(np.ones(lay.n_strata, bool))
    est, _, u = cluster_influence(values, lay, fig, np.array([1.0, -1.0]))
    s = u.shape[-2]
    v_seed = s * u.sum(-1).var(-1, ddof=1)
    ms_b, ms_e, den = 0.0, 0.0, v_seed**2 / (s - 1)
    for g in range(spec.domains):
        ug = u[..., lay.domain_ids(g)]
        j = ug.shape[-1]
        e = ug - ug.mean(-1, keepdims=True) - ug.mean(-2, keepdims=True)
        e = (
            j
            * s
            * ((e + ug.mean((-2, -1), keepdims=True)) ** 2).sum((-2, -1))
            / ((s - 1) * (j - 1))
        )
        b = j * ug.sum(-2).var(-1, ddof=1)
        ms_b, ms_e, den = ms_b + b, ms_e + e, den + b**2 / (j - 1) + e**2 / ((s - 1) * (j - 1))
    item = np.maximum(ms_b - ms_e, 0)
    v = v_seed + item
    df = np.maximum(v**2 / np.where(item > 0, den, v_seed**2 / (s - 1)), 1)
    return 2 * stdtr(df, -np.abs(est) / np.sqrt(v))


def chunks(spec: StudySpec, n: int, seed: int) -> list[np.ndarray]:
    per = max(1, 12_000_000 // (2 * spec.seeds * layout(spec).n_queries))
    return [simulate(spec, min(per, n - i), seed + i) for i in range(0, n, per)]


def null_run(name: str, spec: StudySpec, n: int, n_boot: int, seed: int) -> None:
    lay = layout(spec)
    one = np.ones(lay.n_strata, bool)
    half = lay.mask(domains=[f"d{g}" for g in range(spec.domains // 2)])
    figs = {"one domain": mean_of(lay.mask(domains=["d0"])), "domain gap": gap(half, ~half),
            "worst domain": worst(lay.domain_masks())}  # fmt: skip
    start = time.time()
    rej: dict[str, list[np.ndarray]] = {k: [] for k in ["all", *figs, "cells", "satt", "boot"]}
    mdes = []
    for vals in chunks(spec, n, seed):
        r = twoway_test(vals, lay, mean_of(one))
        rej["all"].append(r.p_value < ALPHA)
        mdes.append(r.mde)
        for k, f in figs.items():
            rej[k].append(twoway_test(vals, lay, f).p_value < ALPHA)
        rej["satt"].append(satterthwaite_p(vals, spec) < ALPHA)
        cells = group_sums(vals, lay.query_stratum, lay.n_strata) / np.bincount(lay.query_stratum)
        rej["cells"].append(np.array([sign_flip_pvalue((c[0] - c[1]).ravel(), draws=1000)
                                      < ALPHA for c in cells]))  # fmt: skip
        done = sum(x.size for x in rej["boot"])
        for v in vals[: max(0, n_boot - done)]:
            b = MultiBootstrap(Study(lay, v, ARMS, tuple(range(spec.seeds))), n_resamples=400)
            low, high = b.interval(b.contrast(mean_of(one), *ARMS))
            rej["boot"].append(np.array([low > 0 or high < 0]))
    rate = {k: float(np.mean(np.concatenate(v))) if v else float("nan") for k, v in rej.items()}
    ratio = noise_ratio(spec, one / one.sum())
    print(
        f"\n[{name}; seed sd / item SE = {ratio:.1f}; {n} null studies, {time.time() - start:.0f}s]"
    )
    print(f"{name}: false positive rate at alpha 0.05: {rate['all']:.3f}")
    others = ", ".join(f"{k} {rate[k]:.3f}" for k in figs)
    print(f"  two-way, other figures: {others}; median MDE {np.median(np.concatenate(mdes)):.4f}")
    print(
        f"  old cell-level sign-flip: {rate['cells']:.3f}; multi-bootstrap percentile "
        f"({n_boot} studies): {rate['boot']:.3f}; Welch-Satterthwaite t: {rate['satt']:.3f}"
    )


def power_curve(spec: StudySpec, n: int, seed: int) -> None:
    lay = layout(spec)
    one = np.ones(lay.n_strata, bool)
    w = one / one.sum()
    null = np.concatenate([twoway_test(v, lay, mean_of(one)).mde for v in chunks(spec, n, seed)])
    mde = float(np.median(null))
    print(
        f"\npower curve: {spec.seeds} seeds, {spec.ids_per_domain} ids/domain, "
        f"{spec.pairs} pairs x {spec.domains} domains, seed sd / item SE "
        f"{noise_ratio(spec, w):.1f}; reported MDE (median) {mde:.4f}"
    )
    print("  true delta   detection rate (significant, positive)")
    for mult in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
        alt = effect_for(spec, mult * mde, w)
        hits = [
            (r.p_value < ALPHA) & (r.estimate > 0)
            for r in (twoway_test(v, lay, mean_of(one)) for v in chunks(alt, n, seed + 7))
        ]
        mark = "   <- MDE (80 % claimed)" if mult == 1.0 else ""
        print(f"  {mult * mde:10.4f}   {np.mean(np.concatenate(hits)):.3f}{mark}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=1000, help="null studies per configuration")
    ap.add_argument("--boot-studies", type=int, default=300, help="of those, bootstrapped")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for i, (name, spec) in enumerate(CONFIGS):
        null_run(name, spec, args.studies, min(args.boot_studies, args.studies), args.seed + i)
    for spec in POWER:
        power_curve(spec, args.studies, args.seed + 100)


if __name__ == "__main__":
    main()
