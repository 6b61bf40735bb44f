"""Probes and PAD against scikit-learn's own cross-validation, written out independently here."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xrdiag.analyses.probes import (
    group_bootstrap_ci,
    pad_results,
    probe_accuracy,
    probe_results,
    probe_splitter,
    sample_rows_by_id,
)
from xrdiag.analyses.schema import RESULT_SCHEMA
from xrdiag.errors import UserError

LANGS = ["de", "en", "fr", "sw"]
DOMAINS = ["medical", "news", "travel"]


def corpus(n_ids: int = 40, dim: int = 8, signal: float = 0.6, seed: int = 0):
    """Multi-way parallel toy corpus: every id in every language; language shifts the mean."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(LANGS), dim))
    ids, langs, doms, rows = [], [], [], []
    for i in range(n_ids):
        sentence = rng.normal(size=dim)
        for k, lang in enumerate(LANGS):
            ids.append(f"s{i:03d}")
            langs.append(lang)
            doms.append(DOMAINS[i % len(DOMAINS)])
            rows.append(sentence + signal * centers[k] + 0.5 * rng.normal(size=dim))
    meta = pl.DataFrame({"id": ids, "lang": langs, "domain": doms})
    return np.asarray(rows, dtype=np.float32), meta


def reference_estimator(class_weight=None):
    logistic = LogisticRegression(max_iter=1000, tol=1e-3, class_weight=class_weight)
    return make_pipeline(StandardScaler(), logistic)


@pytest.mark.parametrize("seed", [0, 3])
def test_probe_accuracy_equals_cross_val_score(seed: int) -> None:
    X, meta = corpus()
    y, groups = meta["lang"].to_numpy(), meta["id"].to_numpy()
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    ref_acc = cross_val_score(reference_estimator(), X, y, groups=groups, cv=cv, scoring="accuracy")
    ref_bal = cross_val_score(
        reference_estimator(), X, y, groups=groups, cv=cv, scoring="balanced_accuracy"
    )
    acc, bal, per_fold = probe_accuracy(X, y, groups, folds=5, seed=seed)
    assert 0.4 < acc < 0.99  # neither chance nor perfect, so the comparison means something
    assert acc == pytest.approx(ref_acc.mean(), abs=1e-12)
    assert bal == pytest.approx(ref_bal.mean(), abs=1e-12)
    np.testing.assert_allclose(per_fold[:, 0], ref_acc, atol=1e-12)
    np.testing.assert_allclose(per_fold[:, 1], ref_bal, atol=1e-12)


def test_grouped_folds_never_split_an_id() -> None:
    _, meta = corpus(n_ids=37)
    y, groups = meta["lang"].to_numpy(), meta["id"].to_numpy()
    seen = np.zeros(len(y), dtype=int)
    for train, test in probe_splitter(5, 0).split(np.zeros((len(y), 1)), y, groups):
        assert not set(groups[train]) & set(groups[test])
        seen[test] += 1
    assert (seen == 1).all()


def test_probe_cannot_score_by_memorising_ids() -> None:
    """Features identify the sentence (d > ids), not its domain: only leaky folds beat chance."""
    rng = np.random.default_rng(1)
    _, meta = corpus(n_ids=60)
    codes = np.unique(meta["id"].to_numpy(), return_inverse=True)[1]
    X = rng.normal(size=(60, 80))[codes] + 0.01 * rng.normal(size=(len(codes), 80))
    y, groups = meta["domain"].to_numpy(), meta["id"].to_numpy()
    leaky = cross_val_score(
        reference_estimator(), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)
    )
    assert leaky.mean() > 0.9
    res = probe_results({0: X.astype(np.float32)}, meta, target="domain", n_boot=50)
    acc = res.filter(pl.col("metric") == "domain_probe_acc")["value"].item()
    assert acc < 0.6
    grouped = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    ref = cross_val_score(reference_estimator(), X.astype(np.float32), y, groups=groups, cv=grouped)
    assert acc == pytest.approx(ref.mean(), abs=1e-12)


def test_probe_results_rows_chance_and_ci() -> None:
    X, meta = corpus(signal=0.35)
    keep = ~((meta["lang"] == "sw") & (pl.Series(range(meta.height)) % 8 != 0))
    X, meta = X[keep.to_numpy()], meta.filter(keep)  # sw now a small minority class
    res = probe_results({0: X, 2: X * 2.0}, meta, target="lang", n_boot=200, seed=1)
    assert res.schema == pl.Schema(RESULT_SCHEMA)
    assert res.height == 6
    assert set(res["metric"]) == {"lang_probe_acc", "lang_probe_bal_acc", "lang_probe_chance"}
    assert (res["n"] == meta.height).all()
    assert (res["domain"] == "all").all() and res["src_lang"].is_null().all()
    counts = {lang: sum(1 for x in meta["lang"] if x == lang) for lang in LANGS}
    chance = res.filter(pl.col("metric") == "lang_probe_chance")
    assert chance["value"].to_list() == pytest.approx([max(counts.values()) / meta.height] * 2)
    acc = res.filter((pl.col("metric") == "lang_probe_acc") & (pl.col("layer") == 0)).row(
        0, named=True
    )
    ref = cross_val_score(
        reference_estimator(),
        X,
        meta["lang"].to_numpy(),
        groups=meta["id"].to_numpy(),
        cv=StratifiedGroupKFold(5, shuffle=True, random_state=1),
    )
    assert acc["value"] == pytest.approx(ref.mean(), abs=1e-12)
    assert acc["ci_low"] < acc["value"] < acc["ci_high"]


def test_group_bootstrap_matches_binomial_interval_and_respects_groups() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.8, y, 1 - y)
    (lo, hi), (blo, bhi) = group_bootstrap_ci(y, pred, np.arange(n), n_boot=2000, seed=0)
    p = (y == pred).mean()
    half = 1.96 * np.sqrt(p * (1 - p) / n)
    assert lo == pytest.approx(p - half, abs=3e-3) and hi == pytest.approx(p + half, abs=3e-3)
    assert blo < p < bhi
    # ten identical copies of each row: a cluster bootstrap must not narrow the interval
    (lo10, hi10), _ = group_bootstrap_ci(
        np.repeat(y, 10), np.repeat(pred, 10), np.repeat(np.arange(n), 10), n_boot=2000, seed=0
    )
    assert hi10 - lo10 == pytest.approx(hi - lo, rel=0.15)


def test_pad_near_zero_for_identical_and_near_two_for_separable() -> None:
    rng = np.random.default_rng(0)
    n_a, n_b, dim = 300, 100, 6  # unequal sizes: a plain error would read the imbalance as PAD
    meta = pl.DataFrame(
        {
            "id": [f"a{i}" for i in range(n_a)] + [f"b{i}" for i in range(n_b)],
            "domain": ["legal"] * n_a + ["medical"] * n_b,
        }
    )
    same = rng.normal(size=(n_a + n_b, dim)).astype(np.float32)
    apart = same.copy()
    apart[n_a:, 0] += 12.0
    res = pad_results({0: same, 1: apart}, meta, n_boot=100)
    assert res["domain"].to_list() == ["legal|medical"] * 2
    assert res["metric"].to_list() == ["pad", "pad"]
    same_pad, apart_pad = res.sort("layer")["value"].to_list()
    assert abs(same_pad) < 0.3
    assert apart_pad > 1.95
    # PAD = 2 (1 - 2 eps) with eps the balanced cross-validated error (Ben-David et al.)
    bal = cross_val_score(
        reference_estimator(class_weight="balanced"),
        same,
        meta["domain"].to_numpy(),
        groups=meta["id"].to_numpy(),
        cv=StratifiedGroupKFold(5, shuffle=True, random_state=0),
        scoring="balanced_accuracy",
    ).mean()
    assert same_pad == pytest.approx(2 * (1 - 2 * (1 - bal)), abs=1e-12)


def test_pad_covers_every_domain_pair() -> None:
    X, meta = corpus(n_ids=30)
    res = pad_results({0: X}, meta, n_boot=20)
    assert sorted(res["domain"]) == ["medical|news", "medical|travel", "news|travel"]
    assert res.filter(pl.col("domain") == "medical|news")["n"].item() == 20 * len(LANGS)


def test_class_smaller_than_folds_is_a_user_error() -> None:
    X, meta = corpus(n_ids=12)
    rare = (meta["lang"] != "sw") | meta["id"].is_in(["s000", "s001", "s002"])
    with pytest.raises(UserError, match=r"class 'sw' has 3 distinct ids .* the probe's 5 folds"):
        probe_results({0: X[rare.to_numpy()]}, meta.filter(rare))
    with pytest.raises(UserError, match="--layers"):
        probe_results({0: X}, meta, layers=[7])
    with pytest.raises(UserError, match="probe target"):
        probe_results({0: X}, meta, target="script")


def test_max_rows_samples_whole_ids_and_reports_n() -> None:
    X, meta = corpus(n_ids=40)
    ids = meta["id"].to_numpy()
    rows = sample_rows_by_id(ids, 90, seed=5)
    assert len(rows) == 88  # 22 whole ids of four rows each
    kept = set(ids[rows])
    assert all((ids == i).sum() == (ids[rows] == i).sum() for i in kept)
    assert np.array_equal(rows, sample_rows_by_id(ids, 90, seed=5))
    assert not np.array_equal(rows, sample_rows_by_id(ids, 90, seed=6))
    assert len(sample_rows_by_id(ids, None, seed=0)) == len(ids)
    res = probe_results({0: X}, meta, max_rows=90, seed=5, n_boot=20)
    assert (res["n"] == 88).all()
