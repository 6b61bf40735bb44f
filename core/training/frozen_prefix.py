"""Training on a frozen prefix: the lower blocks run once per sentence, not once per step.

With `model.freeze_layers = k > 0` the embeddings and the lower k blocks are the *prefix*: frozen
as a whole and run without dropout (they are not trained, so their dropout would only add
noise upstream of what is). When, in addition, the inputs are never perturbed (no RS-RP noise
on input embeddings, no RS-DA substitution, no adversarial step), the states that leave block k
are a function of the sentence alone: `core/encoding/frozen_prefix.py` computes them once per
sentence (cached across every cell of a study that shares the base model, k and the tokens)
and each training step runs only the upper blocks on them. The loss equals the full forward's
to float rounding (tested to 1e-5), dropout in the upper blocks included: the prefix draws no
random numbers in either path.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from xrdiag.core.encoding.frozen_prefix import PrefixStates, prefix_modules

if TYPE_CHECKING:
    import torch

    from xrdiag.core.training.config_schema import TrainConfig


def lock_prefix(model: Any, k: int) -> None:
    """Freeze the embeddings and the lower k blocks and keep them in eval mode (no dropout),
    whatever `model.train()` is called later (dev evaluation toggles the mode)."""
    for module in prefix_modules(model, k):
        module.requires_grad_(False)
        module.eval()
        for sub in module.modules():
            sub.train = types.MethodType(lambda self, mode=True: self, sub)


def reuse_reason(cfg: TrainConfig, model: Any) -> str | None:
    """Why the prefix states cannot be reused for this run (None: they can)."""
    from xrdiag.core.encoding.packed_forward import PACKED_TYPES

    rb = cfg.robust
    if cfg.model.freeze_layers < 1:
        return "no frozen layers"
    if rb.rs_rp.enabled or rb.rs_da.enabled or rb.adversarial.enabled:
        return "the inputs are perturbed (RS-RP, RS-DA or an adversarial step)"
    if cfg.objective.kind != "contrastive":
        return "pair classification encodes the two sentences together"
    if getattr(model.config, "model_type", "") not in PACKED_TYPES:
        return f"model type {model.config.model_type!r} has no packed forward"
    return None


def _upper_encoder_class() -> type:
    from torch import nn

    from xrdiag.core.training.objectives import pool

    class UpperEncoder(nn.Module):
        """The blocks above the prefix, from depth-k states to the pooled last layer."""

        def __init__(self, model: Any, k: int, pooling: str) -> None:
            super().__init__()
            self.model = model
            self.blocks = nn.ModuleList(list(model.encoder.layer)[k:])
            self.pooling = pooling

        def forward(self, states: Any, attention_mask: Any) -> Any:
            hidden = states
            mask = _layer_mask(self.model, attention_mask, hidden)
            for block in self.blocks:
                out = block(hidden, attention_mask=mask)
                hidden = out[0] if isinstance(out, tuple) else out
            return pool(hidden, attention_mask, self.pooling)

    UpperEncoder.__qualname__ = UpperEncoder.__name__
    return UpperEncoder


def upper_encoder(model: Any, k: int, pooling: str) -> Any:
    """A module running the blocks above the prefix and pooling (see UpperEncoder)."""
    return _upper_encoder_class()(model, k, pooling)


def _layer_mask(model: Any, mask: torch.Tensor, hidden: torch.Tensor) -> Any:
    """The attention mask the model's own forward would hand its blocks."""
    create = getattr(model, "_create_attention_masks", None)
    if create is not None:  # transformers >= 5
        layer_mask, _ = create(attention_mask=mask, encoder_attention_mask=None,
                               embedding_output=hidden, encoder_hidden_states=None,
                               cache=None)  # fmt: skip
        return layer_mask
    return model.get_extended_attention_mask(mask, mask.shape)


def padded_states(
    cached: PrefixStates, index: list[int], device: Any, dtype: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `index` of the cached states as a right-padded batch `[b, t, d]` and its mask."""
    import torch

    lengths = [int(cached.lengths[i]) for i in index]
    width = max(lengths)
    dim = cached.states.shape[1]
    states = torch.zeros((len(index), width, dim), dtype=torch.float32)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, (i, n) in enumerate(zip(index, lengths, strict=True)):
        start = int(cached.starts[i])
        states[row, :n] = torch.from_numpy(cached.states[start : start + n])
        mask[row, :n] = 1
    return states.to(device, dtype or torch.float32), mask.to(device)
