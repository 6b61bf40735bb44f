"""A frozen prefix, computed once: token states after the lower k layers, shared by every model
that has the same lower k layers.

Fine-tuning with the embeddings and the lower k blocks frozen leaves them bit-identical in the
base model and in every checkpoint of every cell of a study. For each sentence the states that
leave block k are then the same for all of them: they are computed once per sentence and
cached, and each model runs only its upper blocks, in training and in evaluation. The cache key
is content, never a claim: a hash of the prefix's own parameters (so a checkpoint whose lower
layers differ in any bit misses), k, and the token ids of the rows (so the tokenizer, the input
prefix and the max length are in it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xrdiag.cache.store import ArrayStore, cache_key

if TYPE_CHECKING:
    import torch

    from xrdiag.core.encoding.packed_forward import PackedForward

# Tokens per prefix pass: the encoder's own budget, which measured fastest on 2 CPU cores.
PREFIX_BATCH_TOKENS = 2048


def layer_list(model: Any) -> Any:
    """The transformer blocks of a HF encoder, lowest first (BERT, XLM-R, DistilBERT, ...)."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        node = model
        for part in path.split("."):
            node = getattr(node, part, None)
        if node is not None:
            return node
    return None


def prefix_modules(model: Any, k: int) -> list[Any]:
    """The modules below block k of an encoder: its embeddings and blocks 0..k-1."""
    return [model.embeddings, *list(layer_list(model))[:k]]


def prefix_fingerprint(model: Any, k: int) -> str:
    """sha256 of the prefix's parameters and buffers (names, shapes, bytes) and the config."""
    import torch

    digest = hashlib.sha256(f"prefix:{k}:{model.config.to_json_string()}".encode())
    for i, module in enumerate(prefix_modules(model, k)):
        for name, tensor in sorted(module.state_dict().items()):
            data = tensor.detach().cpu().contiguous()
            digest.update(f"{i}.{name}:{tuple(data.shape)}:{data.dtype}\n".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rows_digest(rows: Sequence[Sequence[int]]) -> str:
    """sha256 of token id rows, order and lengths included."""
    digest = hashlib.sha256()
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    digest.update(lengths.tobytes())
    digest.update(np.fromiter((t for r in rows for t in r), dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class PrefixStates:
    """Token states at depth k of rows: row i is `states[starts[i] : starts[i] + lengths[i]]`.

    Rows with the same tokens share their states (training pairs repeat the pivot sentence
    once per language), so each distinct row is computed and stored once.
    """

    states: np.ndarray  # [tokens of the distinct rows, d] float32
    starts: np.ndarray  # [rows] int64
    lengths: np.ndarray  # [rows] int64

    def gather(self, index: Sequence[int]) -> np.ndarray:
        """The packed states of rows `index`, in that order."""
        parts = [self.states[self.starts[i] : self.starts[i] + self.lengths[i]] for i in index]
        return np.concatenate(parts) if parts else self.states[:0]


def prefix_states(
    packed: PackedForward,
    model: Any,
    rows: Sequence[Sequence[int]],
    k: int,
    store: ArrayStore | None = None,
) -> PrefixStates:
    """The depth-k states of every row, from the cache or computed once (then cached)."""
    import torch

    store = store if store is not None else ArrayStore()
    key = cache_key(kind="prefix-states", prefix=prefix_fingerprint(model, k), depth=k,
                    rows=rows_digest(rows))  # fmt: skip
    hit = store.get(key)
    if hit is not None:
        return PrefixStates(hit["states"], hit["starts"], hit["lengths"])
    distinct: dict[tuple[int, ...], int] = {}
    which = np.array([distinct.setdefault(tuple(r), len(distinct)) for r in rows], dtype=np.int64)
    unique = list(distinct)
    lengths = np.array([len(r) for r in unique], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    states = np.empty((int(offsets[-1]), int(model.config.hidden_size)), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")  # equal lengths together: fewer attention runs
    start = 0
    with torch.inference_mode():
        while start < order.size:
            stop, tokens = start, 0
            while stop < order.size and (tokens == 0 or tokens + lengths[order[stop]]
                                         <= PREFIX_BATCH_TOKENS):  # fmt: skip
                tokens += int(lengths[order[stop]])
                stop += 1
            batch = order[start:stop]
            x = packed.states([list(unique[i]) for i in batch], k).float().cpu().numpy()
            at = 0
            for i in batch:
                n = int(lengths[i])
                states[offsets[i] : offsets[i] + n] = x[at : at + n]
                at += n
            start = stop
    found = PrefixStates(states, offsets[:-1][which], lengths[which])
    store.put(key, {"states": found.states, "starts": found.starts, "lengths": found.lengths},
              meta={"depth": k, "rows": len(rows), "distinct": len(unique)})  # fmt: skip
    return found


def resume_pooled(
    packed: PackedForward,
    cached: PrefixStates,
    rows: Sequence[Sequence[int]],
    index: Sequence[int],
    k: int,
    layers: list[int],
    pooling: str,
) -> torch.Tensor:
    """Pooled `layers` of rows `index` from their cached depth-k states (upper blocks only)."""
    import torch

    x = torch.from_numpy(cached.gather(index)).to(packed.word.device, packed.word.dtype)
    return packed.resume([list(rows[i]) for i in index], x, k, layers, pooling)
