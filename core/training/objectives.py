"""Training objectives: bitext contrastive InfoNCE and sentence-pair classification.

- Bitext contrastive: symmetric InfoNCE over in-batch negatives on translation pairs (van den
  Oord et al. 2018; as used for bitext by Feng et al. 2022, LaBSE), with a temperature and
  LaBSE's additive margin on the positive pair.
- Sentence-pair classification: a head on the pooled output of an encoded pair, for
  PAWS-X/XNLI-style labelled data (the setting of Huang et al., EMNLP 2021).

torch is imported lazily (see dann.py): `PairClassificationHead` is built on first access.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

POOLINGS = ("mean", "cls")


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Sentence vectors `[batch, dim]` from token states `[batch, tokens, dim]`.

    Mean pooling averages the states of real tokens only (mask = 1), as the encoder does for
    evaluation (core/encoding/encoder.py), so training optimises the same vector that is evaluated.
    """
    if pooling == "cls":
        return hidden[:, 0, :]
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def contrastive_logits(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float,
    margin: float = 0.0,
    groups: Sequence[object] | None = None,
) -> torch.Tensor:
    """`[n, n]` logits (cos(a_i, b_j) - margin * [i == j]) / temperature.

    The additive margin is subtracted from the positive (diagonal) cosine before scaling, as in
    LaBSE's additive margin softmax (Yang et al. 2019; Feng et al. 2022): it forces the
    true translation to beat every in-batch negative by at least `margin`. Rows of one `group`
    (the same sentence id: a language-mixed batch can hold id X as en->fr and as en->de) are
    translations of each other, not negatives: their off-diagonal logits are -inf.
    """
    import torch
    import torch.nn.functional as F

    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be [n, dim] of the same shape, got {a.shape} and {b.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    sims = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    if margin:
        sims = sims - margin * torch.eye(sims.shape[0], dtype=sims.dtype, device=sims.device)
    logits = sims / temperature
    if groups is not None:
        if len(groups) != logits.shape[0]:
            raise ValueError(f"{len(groups)} groups for {logits.shape[0]} rows")
        codes = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        g = torch.tensor([codes[x] for x in groups], device=logits.device)
        same = (g[:, None] == g[None, :]) & ~torch.eye(len(groups), dtype=torch.bool,
                                                        device=logits.device)  # fmt: skip
        logits = logits.masked_fill(same, float("-inf"))
    return logits


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float,
    margin: float = 0.0,
    groups: Sequence[object] | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the a->b and b->a cross-entropies, positives a[i] <-> b[i].

    L = 1/2 [ CE(S, I) + CE(S^T, I) ] with S from `contrastive_logits` (inputs are pooled
    embeddings; they are L2-normalised here). The bidirectional form is LaBSE's (Feng et al.
    2022): retrieval is evaluated both ways, so both ways are trained. `groups` keeps rows of
    one sentence id from being each other's negatives.
    """
    import torch
    import torch.nn.functional as F

    logits = contrastive_logits(a, b, temperature, margin, groups)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def in_batch_accuracy(logits: torch.Tensor) -> float:
    """Share of rows and columns whose best match is the diagonal: in-batch recall@1 to log."""
    import torch

    target = torch.arange(logits.shape[0], device=logits.device)
    rows = (logits.argmax(dim=1) == target).float().mean()
    cols = (logits.argmax(dim=0) == target).float().mean()
    return float((rows + cols) / 2)


def pair_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Cross-entropy of the pair-classification logits, and the batch accuracy to log."""
    import torch.nn.functional as F

    labels = labels.to(logits.device)
    loss = F.cross_entropy(logits, labels)
    acc = float((logits.argmax(dim=-1) == labels).float().mean())
    return loss, acc


@functools.cache
def _pair_head_class() -> type:
    import torch
    from torch import nn

    class PairClassificationHead(nn.Module):
        """dropout -> Linear(dim, dim) -> tanh -> dropout -> Linear(dim, num_labels).

        The sequence-classification head of BERT/XLM-R fine-tuning (Devlin et al. 2019), applied
        to the pooled output of the pair encoded together ("<s> A </s></s> B </s>"), as in the
        PAWS-X/XNLI experiments of Huang et al. 2021.
        """

        def __init__(self, dim: int, num_labels: int = 2, dropout: float = 0.1) -> None:
            super().__init__()
            if dim < 1 or num_labels < 2:
                raise ValueError(f"need dim >= 1 and num_labels >= 2, got {dim}, {num_labels}")
            self.num_labels = num_labels
            self.dropout = nn.Dropout(dropout)
            self.dense = nn.Linear(dim, dim)
            self.out_proj = nn.Linear(dim, num_labels)

        def forward(self, pooled: torch.Tensor) -> torch.Tensor:
            """Logits `[batch, num_labels]`."""
            x = torch.tanh(self.dense(self.dropout(pooled)))
            return self.out_proj(self.dropout(x))

    # A plain qualname makes it picklable: the module __getattr__ resolves it.
    PairClassificationHead.__qualname__ = PairClassificationHead.__name__
    return PairClassificationHead


def __getattr__(name: str) -> Any:
    """PEP 562: build the torch module class on first access, keeping the import cheap."""
    if name == "PairClassificationHead":
        return _pair_head_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
