"""Linear probes for language and domain identity, and the proxy A-distance between domains.

A probe that recovers the language of a sentence from its embedding says the space still
encodes language identity (the opposite of language-neutral alignment); the proxy A-distance
says how separable two domains are. Folds are grouped by `id`, so translations of one sentence
never sit on both sides of a split: otherwise a probe could score by memorising the sentence.

Point estimates are the mean over folds (exactly what scikit-learn's `cross_val_score` gives);
intervals are a seeded percentile bootstrap over ids of the out-of-fold predictions (a cluster
bootstrap: all rows of a resampled id come along, since translations are not independent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, percentile_interval
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.schema import ALL_DOMAINS, empty_results, results_frame
from xrdiag.analyses.threads import single_blas_thread
from xrdiag.errors import UserError

TARGETS = ("lang", "domain")
DEFAULT_MAX_ITER = 1000
# lbfgs gradient tolerance: 3-4x fewer iterations than 1e-4 at 40k rows, accuracy within 0.01
DEFAULT_TOL = 1e-3
N_BOOT = 1000
CI_LEVEL = 0.95


class ProbeScore(NamedTuple):
    """Cross-validated probe scores: means over folds and the per-fold [k, 2] (acc, bal_acc)."""

    acc: float
    bal_acc: float
    per_fold: np.ndarray


def probe_estimator(
    max_iter: int = DEFAULT_MAX_ITER, tol: float = DEFAULT_TOL, class_weight: str | None = None
) -> Any:
    """The probe: standardised features, then multinomial logistic regression (lbfgs, L2, C=1).

    Standardising inside the pipeline fits the scaler on the training folds only.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        LogisticRegression(solver="lbfgs", max_iter=max_iter, tol=tol, class_weight=class_weight),
    )


def probe_splitter(folds: int, seed: int) -> Any:
    """Stratified folds grouped by id, shuffled with `seed`."""
    from sklearn.model_selection import StratifiedGroupKFold

    return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)


def check_classes(y: np.ndarray, groups: np.ndarray, folds: int, what: str = "probe") -> None:
    """Raise a one-line `UserError` unless every class has at least `folds` distinct ids."""
    if folds < 2:
        raise UserError(f"probe folds must be at least 2, got {folds}")
    classes = np.unique(y)
    if len(classes) < 2:
        raise UserError(f"{what}: needs at least two classes, got only {classes.tolist()}")
    for cls in classes:
        ids = np.unique(groups[y == cls])
        if len(ids) < folds:
            raise UserError(
                f"{what}: class {cls!r} has {len(ids)} distinct ids ({int((y == cls).sum())} rows),"
                f" fewer than the probe's {folds} folds; add data for it or leave it out "
                "(--langs, --domains, a larger --probe-max-rows)"
            )


def _cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    folds: int,
    seed: int,
    max_iter: int,
    tol: float,
    class_weight: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold (acc, bal_acc) [k, 2] and the out-of-fold predictions [n]."""
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    estimator = probe_estimator(max_iter, tol, class_weight)
    scores = np.empty((folds, 2))
    oof = np.empty(len(y), dtype=y.dtype)
    for k, (train, test) in enumerate(probe_splitter(folds, seed).split(X, y, groups)):
        pred = clone(estimator).fit(X[train], y[train]).predict(X[test])
        oof[test] = pred
        scores[k] = accuracy_score(y[test], pred), balanced_accuracy_score(y[test], pred)
    return scores, oof


def probe_accuracy(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
) -> ProbeScore:
    """Grouped, stratified k-fold accuracy and balanced accuracy of the probe on (X, y)."""
    y, groups = np.asarray(y), np.asarray(groups)
    check_classes(y, groups, folds)
    scores, _ = _cross_validate(X, y, groups, folds, seed, max_iter, tol)
    return ProbeScore(float(scores[:, 0].mean()), float(scores[:, 1].mean()), scores)


def group_bootstrap_ci(
    y: np.ndarray,
    pred: np.ndarray,
    groups: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of accuracy and balanced accuracy, resampling whole groups (ids).

    Uses the package's bootstrap stream (`analyses.bootstrap`) with ids as the resampled items.
    Balanced accuracy is the mean per-class recall over the classes present in a resample,
    as scikit-learn's `balanced_accuracy_score` computes it.
    """
    classes, yc = np.unique(y, return_inverse=True)
    gids, gc = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(gids), len(classes)))
    hits = np.zeros_like(counts)
    np.add.at(counts, (gc, yc), 1.0)
    np.add.at(hits, (gc, yc), (y == pred).astype(float))
    resample = BootstrapMeans(len(gids), n_boot, seed)  # the shared stream, over ids
    n_c, hit_c = resample.means(counts), resample.means(hits)  # [n_boot, classes]
    acc = hit_c.sum(1) / n_c.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = np.nanmean(np.where(n_c > 0, hit_c / n_c, np.nan), axis=1)
    (a_lo, a_hi), (b_lo, b_hi) = (percentile_interval(v, level) for v in (acc, bal))
    return (float(a_lo), float(a_hi)), (float(b_lo), float(b_hi))


def sample_rows_by_id(ids: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample of whole ids with at most `max_rows` rows in all.

    Whole ids keep the grouping intact (and, for multi-way corpora, the language balance).
    `None` or a cap at or above the row count keeps every row.
    """
    n = len(ids)
    if max_rows is None or max_rows >= n:
        return np.arange(n)
    if max_rows < 1:
        raise UserError(f"--probe-max-rows must be a positive number of rows, got {max_rows}")
    uniq, inverse = np.unique(ids, return_inverse=True)
    sizes = np.bincount(inverse)
    order = np.random.default_rng(seed).permutation(len(uniq))
    keep = order[np.cumsum(sizes[order]) <= max_rows]
    return np.flatnonzero(np.isin(inverse, keep))


def select_layers(embeddings: Mapping[int, np.ndarray], layers: Sequence[int] | None) -> list[int]:
    """The requested layers (all, sorted, when None); an unknown layer is a `UserError`."""
    if layers is None:
        return sorted(embeddings)
    missing = [layer for layer in layers if layer not in embeddings]
    if missing:
        raise UserError(
            f"--layers: no layer {missing} in the embeddings (have {sorted(embeddings)})"
        )
    return list(layers)


def _check_meta(
    embeddings: Mapping[int, np.ndarray], meta: pl.DataFrame, columns: list[str]
) -> None:
    lacking = [c for c in columns if c not in meta.columns]
    if lacking:
        raise ValueError(f"metadata frame lacks columns {lacking}")
    for layer, arr in embeddings.items():
        if arr.shape[0] != meta.height:
            raise ValueError(f"layer {layer}: {arr.shape[0]} rows, metadata has {meta.height}")


def _row(
    metric: str,
    layer: int,
    value: float,
    n: int,
    domain: str = ALL_DOMAINS,
    ci: tuple[float | None, float | None] = (None, None),
) -> dict[str, Any]:
    return {"analysis": "probe", "metric": metric, "layer": layer, "domain": domain,
            "value": float(value), "ci_low": ci[0], "ci_high": ci[1], "n": n}  # fmt: skip


@single_blas_thread()
def probe_results(
    embeddings: Mapping[int, np.ndarray],
    meta: pl.DataFrame,
    *,
    target: str = "lang",
    layers: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    max_rows: int | None = None,
    n_boot: int = N_BOOT,
) -> pl.DataFrame:
    """Per layer: `{target}_probe_acc`, `_bal_acc` (bootstrap CIs over ids) and `_chance`.

    `max_rows` caps the rows used (a seeded sample of whole ids); `n` reports the rows used.
    Chance is the majority-class share, what always predicting the largest class scores.
    """
    if target not in TARGETS:
        raise UserError(f"probe target must be one of {list(TARGETS)}, got {target!r}")
    _check_meta(embeddings, meta, ["id", target])
    chosen = select_layers(embeddings, layers)
    rows = sample_rows_by_id(meta["id"].to_numpy(), max_rows, seed)
    y = meta[target].to_numpy()[rows]
    groups = meta["id"].to_numpy()[rows]
    check_classes(y, groups, folds, what=f"{target} probe")
    chance = float(np.unique(y, return_counts=True)[1].max() / len(y))
    out: list[dict[str, Any]] = []
    for layer in chosen:
        X = np.asarray(embeddings[layer])[rows]
        scores, oof = _cross_validate(X, y, groups, folds, seed, max_iter, tol)
        acc_ci, bal_ci = group_bootstrap_ci(y, oof, groups, n_boot, seed)
        out += [
            _row(f"{target}_probe_acc", layer, scores[:, 0].mean(), len(y), ci=acc_ci),
            _row(f"{target}_probe_bal_acc", layer, scores[:, 1].mean(), len(y), ci=bal_ci),
            _row(f"{target}_probe_chance", layer, chance, len(y)),
        ]
    return results_frame(out)


def proxy_a_distance(balanced_error: float) -> float:
    """PAD = 2 (1 - 2 eps) (Ben-David et al., NIPS 2007; Mach. Learn. 2010).

    `eps` is the domain classifier's cross-validated balanced error, which equals the plain
    error for equal-sized domains (their setting) and keeps a size imbalance from reading as
    divergence; the classifier is trained class-balanced to minimise that same error. Not
    clipped: a value below 0 means the classifier did worse than chance.
    """
    return 2.0 * (1.0 - 2.0 * balanced_error)


@single_blas_thread()
def pad_results(
    embeddings: Mapping[int, np.ndarray],
    meta: pl.DataFrame,
    *,
    layers: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    max_rows: int | None = None,
    n_boot: int = N_BOOT,
) -> pl.DataFrame:
    """Proxy A-distance per layer for every pair of domains, `domain` = "A|B" with A < B.

    All languages of both domains are pooled; `max_rows` caps the rows of each pair (seeded
    sample of whole ids) and `n` reports the rows used. The CI maps the balanced-accuracy
    bootstrap interval through the (increasing) PAD formula.
    """
    _check_meta(embeddings, meta, ["id", "domain"])
    chosen = select_layers(embeddings, layers)
    domains = sorted(meta["domain"].drop_nulls().unique().to_list())
    if len(domains) < 2:
        raise UserError(f"pad: needs at least two domains in column 'domain', got {domains}")
    all_dom, all_ids = meta["domain"].to_numpy(), meta["id"].to_numpy()
    out: list[dict[str, Any]] = []
    for a, b in combinations(domains, 2):
        pair = np.flatnonzero((all_dom == a) | (all_dom == b))
        pair = pair[sample_rows_by_id(all_ids[pair], max_rows, seed)]
        y, groups = all_dom[pair], all_ids[pair]
        check_classes(y, groups, folds, what=f"pad {a}|{b}")
        for layer in chosen:
            X = np.asarray(embeddings[layer])[pair]
            scores, oof = _cross_validate(X, y, groups, folds, seed, max_iter, tol, "balanced")
            _, (b_lo, b_hi) = group_bootstrap_ci(y, oof, groups, n_boot, seed)
            pad = proxy_a_distance(1.0 - float(scores[:, 1].mean()))
            ci = (proxy_a_distance(1.0 - b_lo), proxy_a_distance(1.0 - b_hi))
            out.append(_row("pad", layer, pad, len(y), domain=f"{a}|{b}", ci=ci))
    return results_frame(out)


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `probe` analysis: language and domain probes, PAD per domain pair."""
    layers, meta = inputs.layers, inputs.meta
    common = {"seed": inputs.options["seed"], "max_rows": inputs.options["probe_max_rows"]}
    frames = []
    if meta["lang"].n_unique() > 1:
        frames.append(probe_results(layers, meta, target="lang", **common))
    if meta["domain"].n_unique() > 1:
        frames.append(probe_results(layers, meta, target="domain", **common))
        frames.append(pad_results(layers, meta, **common))
    return pl.concat(frames) if frames else empty_results()
