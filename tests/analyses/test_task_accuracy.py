"""Task accuracy: every metric against sklearn on the predictions, every interval against a naive
cluster-bootstrap loop."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, f1_score

from xrdiag.analyses.bootstrap import percentile_interval, resample_indices
from xrdiag.analyses.schema import RESULT_COLUMNS
from xrdiag.analyses.task_accuracy import task_results
from xrdiag.errors import UserError

B = 200


def predictions(seed: int = 0, classes: int = 2) -> pl.DataFrame:
    """Pairs of 40 ids in 3 domains over five language cells; ids repeat across cells and
    within a cell (a positive and a negative per id), accuracy differing by cell."""
    rng = np.random.default_rng(seed)
    skill = {("en", "en"): 0.85, ("fr", "fr"): 0.7, ("en", "fr"): 0.6, ("en", "zh"): 0.55,
             ("zh", "en"): 0.65}  # fmt: skip
    rows = []
    for (l1, l2), p in skill.items():
        for i in range(40):
            for k in range(1 + i % 2):  # 1 or 2 pairs per id
                label = int(rng.integers(classes))
                right = rng.random() < p
                pred = label if right else int((label + 1 + rng.integers(classes - 1)) % classes)
                rows.append({"pair_id": f"{i}|{l1}|{l2}|{k}", "id": f"s{i}", "lang1": l1,
                             "lang2": l2, "domain": ("a", "b", "c")[i % 3], "label": label,
                             "pred": pred})  # fmt: skip
    return pl.DataFrame(rows)


def naive_interval(part: pl.DataFrame, stat, seed: int = 0) -> tuple[float, float]:
    """Resample ids with replacement (the stream of `resample_indices`), keep all their rows."""
    ids = sorted(set(part["id"].to_list()))
    by_id = {i: part.filter(pl.col("id") == i) for i in ids}
    values = []
    for block in resample_indices(len(ids), B, seed):
        for draw in block:
            sample = pl.concat([by_id[ids[k]] for k in draw])
            values.append(stat(sample["label"].to_numpy(), sample["pred"].to_numpy()))
    low, high = percentile_interval(np.asarray(values))
    return float(low), float(high)


def macro(y: np.ndarray, p: np.ndarray) -> float:
    return float(f1_score(y, p, average="macro"))


def get(res: pl.DataFrame, metric: str, src: str | None, tgt: str | None, domain: str) -> dict:
    row = res.filter(
        (pl.col("metric") == metric)
        & (pl.col("src_lang").eq_missing(src))
        & (pl.col("tgt_lang").eq_missing(tgt))
        & (pl.col("domain") == domain)
    )
    assert row.height == 1, (metric, src, tgt, domain)
    return row.row(0, named=True)


@pytest.mark.parametrize("classes", [2, 3])
def test_cell_metrics_equal_sklearn(classes: int) -> None:
    preds = predictions(classes=classes)
    res = task_results(preds, layer=6, bootstrap=0, checkpoint="ck")
    assert res.columns == list(RESULT_COLUMNS)
    assert set(res["analysis"]) == {"task"} and set(res["layer"]) == {6}
    assert set(res["checkpoint"]) == {"ck"} and res["ci_low"].null_count() == res.height
    for (l1, l2), cell in preds.group_by("lang1", "lang2"):
        for domain in ["a", "b", "c", "all"]:
            part = cell if domain == "all" else cell.filter(pl.col("domain") == domain)
            y, p = part["label"].to_numpy(), part["pred"].to_numpy()
            acc = get(res, "accuracy", l1, l2, domain)
            assert acc["value"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
            assert acc["n"] == part.height
            f1 = get(res, "macro_f1", l1, l2, domain)["value"]
            assert f1 == pytest.approx(macro(y, p), abs=1e-12)
    mono = preds.filter(pl.col("lang1") == pl.col("lang2"))
    cross = preds.filter(pl.col("lang1") != pl.col("lang2"))
    for metric, part in (("accuracy_mono", mono), ("accuracy_cross", cross)):
        row = get(res, metric, None, None, "all")
        assert row["value"] == pytest.approx(accuracy_score(part["label"], part["pred"]), abs=1e-12)
        assert row["n"] == part.height


def test_transfer_gap_uses_x_x_else_en_x() -> None:
    preds = predictions()
    res = task_results(preds, bootstrap=0)

    def acc(l1: str, l2: str) -> float:
        cell = preds.filter((pl.col("lang1") == l1) & (pl.col("lang2") == l2))
        return float(accuracy_score(cell["label"], cell["pred"]))

    gaps = res.filter(pl.col("metric") == "transfer_gap")
    # fr has a fr-fr cell; zh has none, so en-zh (never zh-en) stands in
    assert sorted(zip(gaps["src_lang"], gaps["tgt_lang"], strict=True)) == [
        ("en", "zh"), ("fr", "fr"),
    ]  # fmt: skip
    assert get(res, "transfer_gap", "fr", "fr", "all")["value"] == pytest.approx(
        acc("en", "en") - acc("fr", "fr"), abs=1e-12
    )
    assert get(res, "transfer_gap", "en", "zh", "all")["value"] == pytest.approx(
        acc("en", "en") - acc("en", "zh"), abs=1e-12
    )
    no_source = task_results(preds.filter(pl.col("lang1") != "en"), bootstrap=0)
    assert "transfer_gap" not in set(no_source["metric"])


def test_cluster_bootstrap_equals_a_naive_loop() -> None:
    preds = predictions(seed=3, classes=3)
    res = task_results(preds, bootstrap=B, seed=0)
    cell = preds.filter((pl.col("lang1") == "en") & (pl.col("lang2") == "fr"))
    for metric, stat in (("accuracy", accuracy_score), ("macro_f1", macro)):
        row = get(res, metric, "en", "fr", "all")
        low, high = naive_interval(cell, stat)
        assert row["ci_low"] == pytest.approx(low, abs=1e-12)
        assert row["ci_high"] == pytest.approx(high, abs=1e-12)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    domain = cell.filter(pl.col("domain") == "b")
    row = get(res, "macro_f1", "en", "fr", "b")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(naive_interval(domain, macro), 1e-12)
    mono = preds.filter(pl.col("lang1") == pl.col("lang2"))
    row = get(res, "accuracy_mono", None, None, "all")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        naive_interval(mono, accuracy_score), abs=1e-12
    )


def test_gap_interval_resamples_shared_ids_together() -> None:
    preds = predictions(seed=5)
    res = task_results(preds, bootstrap=B, seed=1)
    both = preds.filter(
        ((pl.col("lang1") == "en") & (pl.col("lang2") == "en"))
        | ((pl.col("lang1") == "fr") & (pl.col("lang2") == "fr"))
    )

    def gap(sample: pl.DataFrame) -> float:
        en = sample.filter(pl.col("lang1") == "en")
        fr = sample.filter(pl.col("lang1") == "fr")
        return float(
            accuracy_score(en["label"], en["pred"]) - accuracy_score(fr["label"], fr["pred"])
        )

    ids = sorted(set(both["id"].to_list()))
    by_id = {i: both.filter(pl.col("id") == i) for i in ids}
    values = [
        gap(pl.concat([by_id[ids[k]] for k in draw]))
        for block in resample_indices(len(ids), B, 1)
        for draw in block
    ]
    low, high = percentile_interval(np.asarray(values))
    row = get(res, "transfer_gap", "fr", "fr", "all")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)


def test_bad_predictions_are_one_line_errors() -> None:
    preds = predictions()
    with pytest.raises(UserError, match="missing column.*pred"):
        task_results(preds.drop("pred"))
    with pytest.raises(UserError, match="no rows"):
        task_results(preds.clear())
    with pytest.raises(UserError, match="'label': expected integer"):
        task_results(preds.with_columns(pl.col("label").cast(pl.String)))
