"""Predictions of a pair-classification checkpoint on a validated pairs frame.

The checkpoint directory holds the fine-tuned encoder (`model.safetensors`), its tokenizer and
the head (`head.safetensors` + `xrdiag_head.json`, `core/training/head_file.py`). Each pair is
encoded as training encoded it: the tokenizer's pair template, the run's max length, its input
prefix on both sentences, its pooling, through `core/training/pair_forward.py` (the code the
training loop's live evaluation runs), batched, in eval mode, without gradients.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from xrdiag.errors import UserError

PREDICTION_COLUMNS = ("pair_id", "id", "lang1", "lang2", "domain", "label", "pred", "prob")


def load_checkpoint(ckpt: Path | str, device: str = "cpu") -> tuple[object, object, object, dict]:
    """(pooled encoder, head, tokenizer, head metadata) of a pair-classification checkpoint."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from xrdiag.core.encoding.encoder import model_load_errors
    from xrdiag.core.training.head_file import load_head
    from xrdiag.core.training.model_setup import pooled_encoder

    path = Path(ckpt).expanduser()
    if not path.is_dir():
        raise UserError(f"{path}: no such checkpoint directory")
    head, meta = load_head(path, device)  # first: a checkpoint without a head fails fast
    hf_logging.disable_progress_bar()
    with model_load_errors(str(path)):
        tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
        model = AutoModel.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False)
    if int(model.config.hidden_size) != int(meta["dim"]):
        raise UserError(
            f"{path}: the head expects {meta['dim']}-dimensional vectors, the model gives "
            f"{model.config.hidden_size}"
        )
    encoder = pooled_encoder(model.to(device).eval(), str(meta["pooling"]))
    return encoder, head, tokenizer, meta


def predict_pairs(
    ckpt: Path | str,
    pairs: pl.DataFrame,
    *,
    device: str = "cpu",
    batch_size: int = 64,
) -> pl.DataFrame:
    """One row per pair: `PREDICTION_COLUMNS` (pred = argmax class, prob = its softmax prob).

    `pairs` is a `pairs_io` frame (pair_id, id, sentence1, sentence2, label, lang1, lang2,
    domain); labels outside the head's classes are the user's error.
    """
    from xrdiag.core.training.pair_forward import pair_logits

    missing = [c for c in ("pair_id", "id", "sentence1", "sentence2", "label", "lang1", "lang2",
                           "domain") if c not in pairs.columns]  # fmt: skip
    if missing:
        raise UserError(f"pairs: missing column(s) {', '.join(missing)}; expected a pairs frame")
    encoder, head, tokenizer, meta = load_checkpoint(ckpt, device)
    num_labels = int(meta["num_labels"])
    if pairs.height and int(pairs["label"].max()) >= num_labels:  # type: ignore[arg-type]
        raise UserError(
            f"pairs: label {pairs['label'].max()} but the head of {ckpt} has {num_labels} "
            f"classes ({', '.join(meta['label_names'])})"
        )
    prefix = str(meta["prefix"])
    logits = pair_logits(
        encoder, head, tokenizer,
        [prefix + t for t in pairs["sentence1"].to_list()],
        [prefix + t for t in pairs["sentence2"].to_list()],
        max_length=int(meta["max_length"]), device=device, batch_size=batch_size,
    )  # fmt: skip
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    pred = logits.argmax(axis=1)
    return pairs.select("pair_id", "id", "lang1", "lang2", "domain", "label").with_columns(
        pred=pl.Series(pred, dtype=pl.Int64),
        prob=pl.Series(probs[np.arange(len(pred)), pred], dtype=pl.Float64),
    )
