"""Model set-up for training: the device, and freezing the embeddings and lower layers.

Freezing the 250k x 384 token-embedding matrix of a multilingual encoder (most of its
parameters) and optionally the lower blocks is what makes CPU fine-tuning of a 118M model
practical: no gradient, no AdamW moments and no update for what is frozen.
"""

from __future__ import annotations

from typing import Any

from xrdiag.core.encoder import pick_device
from xrdiag.errors import UserError


def resolve_device(device: str) -> str:
    """`run.device`: auto, cpu, mps, cuda or cuda:N; an absent device is the user's error."""
    import torch

    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise UserError(f"run.device {device}: no such CUDA device here (use auto or cpu)")
        return device
    try:
        return pick_device(device)
    except UserError as exc:
        raise UserError(f"run.device: {exc}") from None


def _layer_list(model: Any) -> Any:
    """The transformer blocks of a HF encoder, lowest first (BERT, XLM-R, DistilBERT, ...)."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        node = model
        for part in path.split("."):
            node = getattr(node, part, None)
        if node is not None:
            return node
    return None


def freeze(model: Any, embeddings: bool, layers: int) -> None:
    """Freeze the token embedding matrix and/or the lower `layers` transformer blocks."""
    if embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if layers:
        blocks = _layer_list(model)
        if blocks is None or layers > len(blocks):
            have = "no recognisable layer list" if blocks is None else f"{len(blocks)} layers"
            raise UserError(f"model.freeze_layers {layers}: the model has {have}")
        for block in list(blocks)[:layers]:
            block.requires_grad_(False)
