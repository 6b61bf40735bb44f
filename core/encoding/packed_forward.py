"""A BERT-family forward over packed (unpadded) token rows, pooling the requested layers.

Split from core/encoder.py, which uses it for every BERT, XLM-R and RoBERTa model in eval mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

# Model types whose layers the packed forward knows, and whether their positions are offset:
# XLM-R and RoBERTa count positions from padding_idx + 1, BERT from 0.
PACKED_TYPES = {"bert": False, "xlm-roberta": True, "roberta": True}
PACKED_ACTS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


class PackedForward:
    """A BERT-family forward over packed token rows that pools the requested layers.

    Why: a padded batch spends its padding on every linear layer and needs a mask in every
    attention. Here the batch is one `[tokens, d]` matrix of real tokens; Q, K and V come from
    one fused product; attention runs, without a mask, on each run of equal-length sentences
    (a strided view of the QKV matrix, no copy). The maths is the model's own (BERT,
    Devlin et al. 2019), so results equal the stock forward to float rounding. Weights are read
    from the model when built, so build one per `encode` call: training may change them.
    """

    def __init__(self, model: Any) -> None:
        import torch

        cfg = model.config
        emb = model.embeddings
        self.heads = int(cfg.num_attention_heads)
        self.eps = float(cfg.layer_norm_eps)
        self.approximate = PACKED_ACTS[cfg.hidden_act]
        self.word = emb.word_embeddings.weight
        self.position = emb.position_embeddings.weight
        self.type0 = emb.token_type_embeddings.weight[0]
        self.norm0 = (emb.LayerNorm.weight, emb.LayerNorm.bias)
        self.offset = int(cfg.pad_token_id) + 1 if PACKED_TYPES[cfg.model_type] else 0
        self.blocks = []
        for layer in model.encoder.layer:
            att, out1, mid, out2 = (
                layer.attention.self,
                layer.attention.output,
                layer.intermediate,
                layer.output,
            )
            qkv_w = torch.cat([att.query.weight, att.key.weight, att.value.weight])
            qkv_b = torch.cat([att.query.bias, att.key.bias, att.value.bias])
            self.blocks.append(
                (
                    (qkv_b, qkv_w.t()),
                    (out1.dense.bias, out1.dense.weight.t()),
                    (out1.LayerNorm.weight, out1.LayerNorm.bias),
                    (mid.dense.bias, mid.dense.weight.t()),
                    (out2.dense.bias, out2.dense.weight.t()),
                    (out2.LayerNorm.weight, out2.LayerNorm.bias),
                )
            )

    @classmethod
    def build(cls, model: Any) -> PackedForward | None:
        """A packed forward for `model` in eval mode, or None where its layers are not BERT's."""
        cfg = model.config
        if (
            model.training
            or cfg.model_type not in PACKED_TYPES
            or getattr(cfg, "position_embedding_type", "absolute") != "absolute"
            or getattr(cfg, "is_decoder", False)
            or cfg.hidden_act not in PACKED_ACTS
            or (PACKED_TYPES[cfg.model_type] and cfg.pad_token_id is None)
        ):
            return None
        try:
            return cls(model)
        except AttributeError:  # same model_type, different module layout
            return None

    def __call__(self, rows: list[list[int]], layers: list[int], pooling: str) -> torch.Tensor:
        """Pooled states `[len(layers), len(rows), d]` of id rows (any order, no padding)."""
        return self.resume(rows, self.embed(rows), 0, layers, pooling)

    def embed(self, rows: list[list[int]]) -> torch.Tensor:
        """The embedding output (depth 0) of id rows, packed `[tokens, d]`."""
        import torch
        import torch.nn.functional as F

        device = self.word.device
        lengths = np.array([len(r) for r in rows])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        positions = np.arange(int(lengths.sum())) - np.repeat(starts, lengths) + self.offset
        flat = torch.tensor([t for r in rows for t in r], dtype=torch.long, device=device)
        x = self.word[flat] + self.position[torch.from_numpy(positions).to(device)] + self.type0
        return F.layer_norm(x, x.shape[-1:], *self.norm0, eps=self.eps)

    def states(self, rows: list[list[int]], depth: int) -> torch.Tensor:
        """Token states after the first `depth` blocks, packed `[tokens, d]` (no pooling)."""
        x = self.embed(rows)
        runs = _equal_runs(np.array([len(r) for r in rows]))
        for block in self.blocks[:depth]:
            x = self._block(x, block, runs)
        return x

    def resume(
        self, rows: list[list[int]], x: torch.Tensor, depth: int, layers: list[int], pooling: str
    ) -> torch.Tensor:
        """Pooled `layers` (all > depth, or 0 when depth is 0) from the packed states `x` of
        `rows` at `depth`: the blocks below are not run again (a frozen prefix, computed once)."""
        import torch

        device = x.device
        lengths = np.array([len(r) for r in rows])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        runs = _equal_runs(lengths)
        segment = torch.from_numpy(np.repeat(np.arange(len(rows)), lengths)).to(device)
        counts = torch.from_numpy(lengths).to(device=device, dtype=torch.float32)
        first = torch.from_numpy(starts).to(device)

        def pool(h: torch.Tensor) -> torch.Tensor:
            h = h.float()  # pooled in float32 whatever the model's dtype (a no-op in float32)
            if pooling == "cls":
                return h[first]
            total = torch.zeros((len(rows), h.shape[1]), dtype=h.dtype, device=device)
            return total.index_add_(0, segment, h) / counts[:, None]

        pooled = [pool(x)] if depth in layers else []
        for d, block in enumerate(self.blocks[depth : max(layers)], start=depth + 1):
            x = self._block(x, block, runs)
            if d in layers:
                pooled.append(pool(x))
        return torch.stack(pooled)

    def _block(
        self, x: torch.Tensor, block: tuple, runs: list[tuple[int, int, int]]
    ) -> torch.Tensor:
        """One transformer layer (post-norm) on packed rows."""
        import torch
        import torch.nn.functional as F

        qkv, dense1, norm1, up, down, norm2 = block
        d = x.shape[1]
        fused = torch.addmm(qkv[0], x, qkv[1])
        attended = torch.empty_like(x)
        for start, count, length in runs:
            end = start + count * length
            parts = fused[start:end].view(count, length, 3, self.heads, d // self.heads)
            q, k, v = (parts[:, :, i].transpose(1, 2) for i in range(3))
            out = F.scaled_dot_product_attention(q, k, v)  # [count, heads, length, dh]
            attended[start:end].view(count, length, self.heads, -1).copy_(out.transpose(1, 2))
        y = torch.addmm(dense1[0], attended, dense1[1])
        y += x
        x = F.layer_norm(y, (d,), *norm1, eps=self.eps)
        h = F.gelu(torch.addmm(up[0], x, up[1]), approximate=self.approximate)
        y = torch.addmm(down[0], h, down[1])
        y += x
        return F.layer_norm(y, (d,), *norm2, eps=self.eps)


def _equal_runs(lengths: np.ndarray) -> list[tuple[int, int, int]]:
    """(first token, sentence count, length) of each run of consecutive equal lengths."""
    runs: list[tuple[int, int, int]] = []
    token = 0
    i = 0
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == lengths[i]:
            j += 1
        runs.append((token, j - i, int(lengths[i])))
        token += (j - i) * int(lengths[i])
        i = j
    return runs
