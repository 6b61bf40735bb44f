"""Task accuracy of a sentence-pair classifier: per language pair and domain, with cluster CIs.

Input: predictions, one row per pair, with `id` (the sentence id: the cluster), `lang1`,
`lang2`, `domain`, `label` and `pred` (integers). Output: rows of the long results schema,
analysis `task`, `src_lang` = lang1, `tgt_lang` = lang2, `n` = pairs:

- `accuracy` and `macro_f1` per (lang1, lang2) and domain, and domain `all`. Macro F1 is the
  unweighted mean over the classes present in the labels or the predictions of the F1
  2TP / (2TP + FP + FN) (sklearn's `f1_score(average="macro")`).
- `accuracy_mono` / `accuracy_cross`: accuracy pooled over every row with lang1 == lang2 (the
  monolingual diagonal) / lang1 != lang2 (the generalized cross-lingual setting of Huang et
  al. 2021), src_lang and tgt_lang null, domain `all`.
- `transfer_gap`, per language X != S (S = `source_lang`, English by default; domain `all`):
  accuracy(S-S) - accuracy(X-X) when the X-X cell exists (the papers' tables: fine-tuned on
  English, tested in X), else accuracy(S-S) - accuracy(S-X); the row names the compared cell
  (src_lang X and tgt_lang X, or S and X) and `n` is that cell's pairs. Positive = worse
  than on English. No S-S cell, no gap rows.

Intervals are seeded percentile bootstraps (`bootstrap.py`) over clusters: a resample draws
ids with replacement and takes every pair of each drawn id (a sentence's pairs, its positive
and negative, its translations, are not independent). Accuracy and F1 are ratios of per-id
sums, so each resample is the ratio of resampled sums (`BootstrapMeans` over the ids). A gap
resamples the union of the two cells' ids once, so cells that share ids (translations) are
paired; resamples where a cell draws no pair are left out of its interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.bootstrap import BootstrapMeans, percentile_interval
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.schema import ALL_DOMAINS, results_frame
from xrdiag.errors import UserError

ANALYSIS = "task"
REQUIRED = ("id", "lang1", "lang2", "domain", "label", "pred")


def cluster_sums(
    ids: np.ndarray, label: np.ndarray, pred: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids, per-id sums `[k, 2 + 3c]`): correct, n, then TP, FP, FN per class."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    cols = [label == pred, np.ones(label.size, bool)]
    for c in classes:
        cols += [(pred == c) & (label == c), (pred == c) & (label != c), (pred != c) & (label == c)]
    values = np.column_stack(cols).astype(np.float64)
    sums = np.zeros((uniq.size, values.shape[1]))
    np.add.at(sums, inverse, values)
    return uniq, sums


def accuracy_of(sums: np.ndarray) -> np.ndarray:
    """Accuracy from (resampled) total sums `[..., 2 + 3c]`; NaN where there is no pair."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[..., 0] / sums[..., 1]


def macro_f1_of(sums: np.ndarray) -> np.ndarray:
    """Macro F1 over the classes present (TP + FP + FN > 0) from total sums `[..., 2 + 3c]`."""
    tp, fp, fn = sums[..., 2::3], sums[..., 3::3], sums[..., 4::3]
    denom = 2 * tp + fp + fn
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.where(present, denom, 1.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return f1.sum(axis=-1) / present.sum(axis=-1)


def _interval(
    sums: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], boot: BootstrapMeans | None
) -> tuple[float | None, float | None]:
    if boot is None:
        return None, None
    values = stat(boot.means(sums))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    low, high = percentile_interval(values)
    return float(low), float(high)


def _check(predictions: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in REQUIRED if c not in predictions.columns]
    if missing:
        raise UserError(
            f"task predictions: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED)}"
        )
    if predictions.height == 0:
        raise UserError("task predictions: no rows; expected one row per sentence pair")
    for col in ("label", "pred"):
        if not predictions.schema[col].is_integer():
            raise UserError(f"task predictions, column {col!r}: expected integer classes")
    return predictions.with_columns(pl.col("id").cast(pl.String))


def task_results(
    predictions: pl.DataFrame,
    *,
    layer: int = 0,
    bootstrap: int = 1000,
    seed: int = 0,
    source_lang: str = "en",
    checkpoint: str = "",
) -> pl.DataFrame:
    """The `task` rows of the results schema from predictions (module docstring)."""
    frame = _check(predictions)
    classes = np.unique(np.concatenate([frame["label"].to_numpy(), frame["pred"].to_numpy()]))
    boots: dict[int, BootstrapMeans] = {}

    def boot(k: int) -> BootstrapMeans | None:
        if not bootstrap:
            return None
        if k not in boots:
            boots[k] = BootstrapMeans(k, bootstrap, seed)
        return boots[k]

    def sums_of(part: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return cluster_sums(
            part["id"].to_numpy(), part["label"].to_numpy(), part["pred"].to_numpy(), classes
        )

    def rows_for(part: pl.DataFrame, base: dict[str, Any], metrics: dict[str, Any]) -> list:
        _, sums = sums_of(part)
        total = sums.sum(axis=0)
        out = []
        for metric, stat in metrics.items():
            low, high = _interval(sums, stat, boot(sums.shape[0]))
            value = float(stat(total))
            out.append({**base, "metric": metric, "value": value, "ci_low": low,
                        "ci_high": high, "n": part.height})  # fmt: skip
        return out

    both = {"accuracy": accuracy_of, "macro_f1": macro_f1_of}
    rows: list[dict[str, Any]] = []
    cells = frame.select("lang1", "lang2").unique().sort("lang1", "lang2").iter_rows()
    for lang1, lang2 in cells:
        cell = frame.filter((pl.col("lang1") == lang1) & (pl.col("lang2") == lang2))
        base = {"analysis": ANALYSIS, "layer": layer, "src_lang": lang1, "tgt_lang": lang2}
        for domain in sorted(cell["domain"].unique().to_list()):
            part = cell.filter(pl.col("domain") == domain)
            rows += rows_for(part, {**base, "domain": domain}, both)
        rows += rows_for(cell, {**base, "domain": ALL_DOMAINS}, both)
    pooled = {"analysis": ANALYSIS, "layer": layer, "domain": ALL_DOMAINS}
    same = pl.col("lang1") == pl.col("lang2")
    for metric, part in (("accuracy_mono", frame.filter(same)),
                         ("accuracy_cross", frame.filter(~same))):  # fmt: skip
        if part.height:
            rows += rows_for(part, pooled, {metric: accuracy_of})
    rows += _gaps(frame, source_lang, sums_of, boot, pooled)
    return results_frame(rows, checkpoint=checkpoint)


def _gaps(
    frame: pl.DataFrame,
    source: str,
    sums_of: Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray]],
    boot: Callable[[int], BootstrapMeans | None],
    base: dict[str, Any],
) -> list[dict[str, Any]]:
    """`transfer_gap` rows: accuracy(S-S) minus X-X, else minus S-X (module docstring)."""

    def cell(a: str, b: str) -> pl.DataFrame:
        return frame.filter((pl.col("lang1") == a) & (pl.col("lang2") == b))

    ref = cell(source, source)
    if ref.height == 0:
        return []
    langs = sorted((set(frame["lang1"].to_list()) | set(frame["lang2"].to_list())) - {source})
    out = []
    for lang in langs:
        other = cell(lang, lang)
        pair = (lang, lang)
        if other.height == 0:
            other, pair = cell(source, lang), (source, lang)
        if other.height == 0:
            continue
        ids_a, sums_a = sums_of(ref)
        ids_b, sums_b = sums_of(other)
        union = np.union1d(ids_a, ids_b)
        joint = np.zeros((union.size, sums_a.shape[1] + sums_b.shape[1]))
        joint[np.searchsorted(union, ids_a), : sums_a.shape[1]] = sums_a
        joint[np.searchsorted(union, ids_b), sums_a.shape[1] :] = sums_b
        width = sums_a.shape[1]

        def gap(s: np.ndarray, w: int = width) -> np.ndarray:
            return accuracy_of(s[..., :w]) - accuracy_of(s[..., w:])

        low, high = _interval(joint, gap, boot(union.size))
        out.append({**base, "metric": "transfer_gap", "src_lang": pair[0], "tgt_lang": pair[1],
                    "value": float(gap(joint.sum(axis=0))), "ci_low": low, "ci_high": high,
                    "n": other.height})  # fmt: skip
    return out


def analyse(inputs: AnalysisInputs) -> dict[str, pl.DataFrame]:
    """The registered `task` analysis: the checkpoint's predictions on the pairs and their
    accuracy rows; the predictions themselves are written too (predictions.parquet)."""
    if inputs.predict is None or inputs.pairs is None:
        raise UserError("--analyses task: give the labelled pairs with --task PAIRS_FILE")
    predictions = inputs.predict(inputs.pairs)
    opts = inputs.options
    results = task_results(predictions, layer=inputs.top_layer, bootstrap=opts["bootstrap"],
                           seed=opts["seed"])  # fmt: skip
    return {"results": results, "predictions": predictions}
