"""A sentence pair through encoder and head, the one way training, live eval and predict do it.

The pair is encoded together by the tokenizer's pair template (`tokenizer(first, second)`:
"<s> A </s></s> B </s>" for XLM-R, "[CLS] A [SEP] B [SEP]" for BERT), truncated to the run's
max length; the encoder runs on the looked-up input embeddings (as the training pass does, so
RS-RP and the adversary can perturb them), the pooled last layer goes to the head.
Evaluation runs the modules in eval mode (no dropout, so no RNG is drawn) without gradients,
then puts them back as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EVAL_BATCH = 64  # pairs per forward pass when evaluating


def pair_inputs(
    tokenizer: Any, first: Sequence[str], second: Sequence[str], max_length: int
) -> dict[str, Any]:
    """Token tensors of a batch of pairs (texts as given: any prefix is already on them)."""
    return dict(
        tokenizer(
            list(first), list(second), padding=True, truncation=True, max_length=max_length,
            return_tensors="pt",
        )
    )  # fmt: skip


def pooled_pairs(encoder: Any, inputs: dict[str, Any]) -> Any:
    """Pooled vectors `[batch, dim]` of tokenised pairs through a `PooledEncoder`."""
    enc = dict(inputs)
    mask, ids = enc.pop("attention_mask"), enc.pop("input_ids")
    embeds = encoder.encoder.get_input_embeddings()(ids)
    return encoder(embeds, mask, **enc)


def pair_logits(
    encoder: Any,
    head: Any,
    tokenizer: Any,
    first: Sequence[str],
    second: Sequence[str],
    *,
    max_length: int,
    device: str,
    batch_size: int = EVAL_BATCH,
) -> np.ndarray:
    """Head logits `[n, num_labels]` (float32, input order) of n pairs, in eval mode, no grad.

    Pairs are batched in order of length (less padding); `encoder` is a `PooledEncoder`.
    """
    import torch

    n = len(first)
    out = np.zeros((n, head.num_labels), dtype=np.float32)
    order = np.argsort([-(len(a) + len(b)) for a, b in zip(first, second, strict=True)])
    modes = [(m, m.training) for m in (encoder, head)]
    for module, _ in modes:
        module.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                inputs = pair_inputs(
                    tokenizer, [first[i] for i in rows], [second[i] for i in rows], max_length
                )
                inputs = {k: v.to(device) for k, v in inputs.items()}
                logits = head(pooled_pairs(encoder, inputs))
                out[rows] = logits.float().cpu().numpy()
    finally:
        for module, training in modes:
            module.train(training)
    return out
