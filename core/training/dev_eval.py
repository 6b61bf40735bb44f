"""Live dev diagnostics during training: retrieval recall@1, cross-language CKA, probes, and
for pair classification the task accuracy per language pair.

Every `run.eval_every` steps the loop embeds a fixed dev subset (every language and domain) and
calls the same pure analyses `xrdiag eval` uses, kept cheap: recall@1 with cosine scoring, no
correction and no bootstrap; linear CKA of the last layer; 3-fold language and domain probes
on at most `PROBE_MAX_ROWS` rows. The summary splits what training saw from what it did not
(the zero-shot protocol), so the gap can be watched as it opens or closes. With a
pair-classification objective the event also carries `task`: accuracy on a fixed, seeded
sample of the pairs file's dev pairs (`task_dev_sample`), every language pair, including
those training never sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.cka import cross_language_cka
from xrdiag.analyses.probes import probe_accuracy, sample_rows_by_id
from xrdiag.analyses.retrieval import retrieval_results
from xrdiag.analyses.schema import ALL_DOMAINS
from xrdiag.core.encoding.encoder import length_batches

EVAL_TOKEN_BUDGET = 4096
PROBE_FOLDS = 3
PROBE_MAX_ROWS = 1500


def _mean(values: pl.Series) -> float | None:
    return float(values.mean()) if values.len() else None  # type: ignore[arg-type]


def recall_summary(
    rows: pl.DataFrame, pivot: str, train_langs: Sequence[str], train_domains: Sequence[str]
) -> dict[str, float | None]:
    """Mean recall@1 overall, over seen / unseen languages, and over seen / unseen domains.

    A pair is "seen" when its non-pivot language is a training language; the language means
    use the `all` pool, the domain means the per-domain pools of every pair.
    """
    other = pl.when(pl.col("src_lang") == pivot).then("tgt_lang").otherwise("src_lang")
    rows = rows.with_columns(other=other)
    pooled = rows.filter(pl.col("domain") == ALL_DOMAINS)
    per_domain = rows.filter(pl.col("domain") != ALL_DOMAINS)
    seen_lang = pl.col("other").is_in(list(train_langs))
    seen_domain = pl.col("domain").is_in(list(train_domains))
    return {
        "mean": _mean(pooled["value"]),
        "seen_langs": _mean(pooled.filter(seen_lang)["value"]),
        "unseen_langs": _mean(pooled.filter(~seen_lang)["value"]),
        "seen_domains": _mean(per_domain.filter(seen_domain)["value"]),
        "unseen_domains": _mean(per_domain.filter(~seen_domain)["value"]),
    }


def _probe(emb: np.ndarray, meta: pl.DataFrame, target: str, seed: int) -> dict[str, float]:
    """Grouped 3-fold probe accuracy for `target` and the majority-class chance level."""
    rows = sample_rows_by_id(meta["id"].to_numpy(), PROBE_MAX_ROWS, seed)
    y = meta[target].to_numpy()[rows]
    score = probe_accuracy(emb[rows], y, meta["id"].to_numpy()[rows], PROBE_FOLDS, seed)
    chance = float(np.unique(y, return_counts=True)[1].max() / len(y))
    return {"acc": score.acc, "bal_acc": score.bal_acc, "chance": chance, "n": int(len(y))}


def dev_diagnostics(
    emb: np.ndarray,
    meta: pl.DataFrame,
    *,
    layer: int,
    pivot: str,
    train_langs: Sequence[str],
    train_domains: Sequence[str],
    seed: int = 0,
) -> dict[str, Any]:
    """The `eval` event's payload from last-layer dev embeddings `[n, dim]` and their metadata.

    `meta` has id, lang, domain (row i describes emb[i]). Retrieval covers pivot <-> every
    language in both directions, per domain and pooled.
    """
    ret = retrieval_results(
        emb, meta.select("id", "lang", "domain"), layer=layer, pivot=pivot, ks=(1,),
        scorings=("cos",), corrections=("none",), bootstrap=0, seed=seed,
    ).filter(pl.col("metric").str.starts_with("recall@1"))  # fmt: skip
    recall = [
        {"src_lang": s, "tgt_lang": t, "domain": d, "value": v, "n": n}
        for s, t, d, v, n in ret.select("src_lang", "tgt_lang", "domain", "value", "n").iter_rows()
    ]
    # The debiased estimator: dev sets are small, where plain linear CKA is inflated.
    cka = cross_language_cka({layer: emb}, meta.select("id", "lang", "domain"), kinds=("debiased",))
    cka_rows = [
        {"src_lang": s, "tgt_lang": t, "value": v, "n": n}
        for s, t, v, n in cka.select("src_lang", "tgt_lang", "value", "n").iter_rows()
    ]
    with_pivot = cka.filter((pl.col("src_lang") == pivot) | (pl.col("tgt_lang") == pivot))
    return {
        "layer": layer,
        "n_sentences": int(meta.height),
        "recall@1": recall_summary(ret, pivot, train_langs, train_domains),
        "retrieval": recall,
        "cka": {
            "metric": "debiased_cka",
            "mean": _mean(cka["value"]),
            "mean_with_pivot": _mean(with_pivot["value"]),
            "pairs": cka_rows,
        },
        "lang_probe": _probe(emb, meta, "lang", seed),
        "domain_probe": _probe(emb, meta, "domain", seed),
    }


def embed_ids(
    model: Any, ids: list[list[int]], pad_id: int, pooling: str, device: str
) -> np.ndarray:
    """Pooled last-layer embeddings `[n, dim]` of token-id lists, in input order, eval mode.

    Batched by a token budget over length-sorted sentences (as core/encoding/encoder.py does); the
    model goes back to train mode afterwards. No dropout runs, so no RNG is consumed.
    """
    import torch

    from xrdiag.core.training.objectives import pool

    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in length_batches([len(x) for x in ids], EVAL_TOKEN_BUDGET):
                width = max(len(ids[i]) for i in batch)
                x = torch.full((len(batch), width), pad_id, dtype=torch.long)
                m = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    x[row, : len(ids[i])] = torch.tensor(ids[i])
                    m[row, : len(ids[i])] = 1
                x, m = x.to(device), m.to(device)
                hidden = model(input_ids=x, attention_mask=m).last_hidden_state
                out[batch] = pool(hidden, m, pooling).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def task_dev_sample(dev: pl.DataFrame, per_lang_pair: int, seed: int = 0) -> pl.DataFrame:
    """The fixed dev pairs of the live task accuracy: at most `per_lang_pair` rows of each
    (lang1, lang2), drawn with the run's seed, sorted by (lang1, lang2, pair_id)."""
    if dev.height == 0:
        return dev
    parts = [
        group if group.height <= per_lang_pair else group.sample(per_lang_pair, seed=seed)
        for _, group in dev.sort("pair_id").group_by("lang1", "lang2", maintain_order=True)
    ]
    return pl.concat(parts).sort("lang1", "lang2", "pair_id")


def task_summary(dev: pl.DataFrame, pred: np.ndarray) -> dict[str, Any]:
    """The eval event's `task` field: accuracy over the dev sample, per language pair.

    `mean` averages the pairs (each pair counts once, as the recall@1 mean does); `mono` and
    `cross` pool the rows of same-language and of cross-language pairs; `by_pair` is keyed
    `lang1|lang2`.
    """
    from xrdiag.core.training.sampler import lang_pair_key

    if dev.height == 0:
        return {"accuracy": {"mean": None, "mono": None, "cross": None, "by_pair": {}}, "n": 0}
    rows = dev.select("lang1", "lang2").with_columns(
        correct=pl.Series(np.asarray(pred) == dev["label"].to_numpy()).cast(pl.Float64)
    )
    per = rows.group_by("lang1", "lang2").agg(pl.col("correct").mean()).sort("lang1", "lang2")
    same = pl.col("lang1") == pl.col("lang2")
    return {
        "accuracy": {
            "mean": _mean(per["correct"]),
            "mono": _mean(rows.filter(same)["correct"]),
            "cross": _mean(rows.filter(~same)["correct"]),
            "by_pair": {lang_pair_key(a, b): v for a, b, v in per.iter_rows()},
        },
        "n": int(dev.height),
    }
