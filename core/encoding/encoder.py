"""Any Hugging Face encoder, every layer from one forward pass, pooled per sentence.

Speed comes from four choices: texts are tokenised once, up front, with the fast tokenizer;
batches are cut by a token budget over texts sorted by their *token* count (not characters:
in a multilingual corpus a Chinese sentence has few characters and many tokens), so short
sentences travel in large batches; BERT-family models (BERT, XLM-R, RoBERTa: most multilingual
encoders) run *packed* — every linear layer sees the batch's real tokens only, as one
`[tokens, d]` matrix with Q, K and V fused into one product, and attention runs per group of
equal-length sentences with no mask and no padding — and it stops after the deepest layer asked
for. Other models take the stock Hugging Face forward. Results come back in input order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xrdiag.core.encoding.fingerprint import model_fingerprint
from xrdiag.core.encoding.packed_forward import PackedForward
from xrdiag.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["Encoder", "EncodeSpec", "PackedForward", "model_fingerprint", "model_load_errors"]

POOLINGS = ("mean", "cls")
# Weights and activations while encoding; pooling and the returned embeddings stay float32.
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_MODEL = "default"
# Tokens per batch (sum of padded lengths). Large enough to keep the matrix products efficient,
# small enough that activations stay cache-sized: on multilingual-e5-small, 2 CPU cores, packed,
# 2048 ran 3% faster than 1024, 10% faster than 4096 and 20% faster than 16384 (bench/encode.py).
DEFAULT_TOKEN_BUDGET = 2048
# The metadata file the embedded model carries (see core/embedded_model.py).
MODEL_META_FILE = "xrdiag_model.json"


@dataclass(frozen=True)
class EncodeSpec:
    """Everything besides the model weights and the texts that changes an embedding."""

    pooling: str = "mean"
    max_length: int = 512
    prefix: str = ""
    dtype: str = "float32"

    def as_key(self) -> dict[str, Any]:
        key = {"pooling": self.pooling, "max_length": self.max_length, "prefix": self.prefix}
        if self.dtype != "float32":  # float32 keys stay as they were, so caches stay valid
            key["dtype"] = self.dtype
        return key


def resolve_model_path(model: str) -> str:
    """`default` is the embedded model; a path must hold weights; anything else is a hub id."""
    if model in ("", DEFAULT_MODEL):
        from xrdiag.core.encoding.embedded_model import embedded_model_dir

        return str(embedded_model_dir())
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{path}: --model expects a model directory (config.json + weights)")
        if not (path / "config.json").is_file():
            raise UserError(f"{path}: not a model directory: config.json is missing")
        if not any(path.glob("*.safetensors")):
            raise UserError(
                f"{path}: no weights: expected model.safetensors (safetensors only; "
                "pickled .bin weights are not loaded)"
            )
        return str(path.resolve())  # absolute: a manifest names it from any directory
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise UserError(f"{model}: --model path does not exist")
    return model  # a hub id such as intfloat/multilingual-e5-small


def model_meta(model_path: str) -> dict[str, Any]:
    """xrdiag's metadata of a model directory: how it embeds (prefix, pooling, max length, the
    base model of a fine-tuned checkpoint); empty for a directory without it or a hub id."""
    meta_file = Path(model_path) / MODEL_META_FILE
    if not meta_file.is_file():
        return {}
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_file}: unreadable model metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_file}: expected a JSON object of model metadata")
    return meta


def default_prefix(model_path: str) -> str:
    """The input prefix a model expects: its metadata's, else `query: ` for e5 models."""
    meta = model_meta(model_path)
    if "prefix_query" in meta:
        return str(meta["prefix_query"])
    return "query: " if "e5" in Path(model_path).name.lower() else ""


def pick_device(device: str) -> str:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is a user error."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here (use auto or cpu)")
    if device not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {device}: expected auto, cpu, cuda or mps")
    return device


def check_dtype(dtype: str, device: str) -> None:
    """`--dtype`: one of DTYPES; float16 off the CPU only, as in training: CPU kernels for it are
    slow or, in older torch, missing, and bfloat16 is the CPU's half precision."""
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if dtype == "float16" and device == "cpu":
        raise UserError(
            "--dtype float16 needs a GPU and this encoder runs on the CPU; use bfloat16 or float32"
        )


def torch_dtype(dtype: str) -> Any:
    """The torch dtype named by a DTYPES entry."""
    import torch

    return getattr(torch, dtype)


def length_batches(lengths: Sequence[int], token_budget: int) -> list[np.ndarray]:
    """Indices grouped into batches, longest first, each padded size * count <= token_budget.

    Sorting by token count keeps padding near zero; a budget instead of a fixed count lets short
    sentences travel in large batches. A sentence longer than the budget gets a batch of its own.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        count = max(1, token_budget // max(longest, 1))
        batches.append(order[start : start + count])
        start += count
    return batches


class Encoder:
    """A Hugging Face encoder that returns pooled embeddings for every requested layer.

    Layer 0 is the embedding output, layer L the last transformer block (as in
    `output_hidden_states`).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        pooling: str | None = None,
        max_length: int | None = None,
        prefix: str | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        packed: bool = True,
        frozen_prefix: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self.model_name = model
        self.model_path = resolve_model_path(model)
        # A checkpoint says how it was trained to embed; explicit arguments still win.
        meta = model_meta(self.model_path)
        # Blocks below this one are shared with other models (a study's base and cells): their
        # output is computed once per sentence (core/encoding/frozen_prefix.py).
        meta_file = Path(self.model_path) / MODEL_META_FILE
        if frozen_prefix is None:
            frozen_prefix = meta.get("frozen_layers", 0)
            if isinstance(frozen_prefix, bool) or not isinstance(frozen_prefix, int):
                raise UserError(
                    f"{meta_file}: frozen_layers {frozen_prefix!r}; expected an integer"
                )
        self.frozen_prefix = int(frozen_prefix)
        if pooling is None:
            pooling = meta.get("pooling", "mean")
            if pooling not in POOLINGS:
                raise UserError(
                    f"{meta_file}: pooling {pooling!r}; expected one of {', '.join(POOLINGS)}"
                )
        if max_length is None:
            max_length = meta.get("max_length", 512)
            if isinstance(max_length, bool) or not isinstance(max_length, int):
                raise UserError(f"{meta_file}: max_length {max_length!r}; expected an integer")
        if pooling not in POOLINGS:
            raise UserError(f"--pooling {pooling}: expected one of {', '.join(POOLINGS)}")
        if max_length < 2:
            raise UserError(f"--max-length {max_length}: expected at least 2")
        self.device = pick_device(device)
        check_dtype(dtype, self.device)
        self.token_budget = token_budget
        self.packed = packed  # False forces the stock Hugging Face forward (padded batches)
        self._model: Any = None
        self._tokenizer: Any = None
        self._config: Any = self._load_config()
        limit = int(getattr(self._config, "max_position_embeddings", max_length))
        # XLM-R style models reserve two positions for the padding offset.
        if getattr(self._config, "model_type", "") in ("xlm-roberta", "roberta"):
            limit -= 2
        self.spec = EncodeSpec(
            pooling=pooling,
            max_length=min(max_length, limit),
            prefix=default_prefix(self.model_path) if prefix is None else prefix,
            dtype=dtype,
        )
        self._fingerprint: str | None = None

    def _load_config(self) -> Any:
        from transformers import AutoConfig

        with model_load_errors(self.model_name):
            return AutoConfig.from_pretrained(self.model_path, trust_remote_code=False)

    def _load(self) -> None:
        """Tokenizer and weights, loaded on first use: a fully cached call never needs them."""
        if self._model is not None:
            return
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from xrdiag.core.encoding.weights import load_encoder, mark_verified

        hf_logging.disable_progress_bar()  # our own progress bar is the one a user reads
        hint = self._repair_hint()
        with model_load_errors(self.model_name, hint):
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.model_path, use_fast=True, trust_remote_code=False
            )
        model = load_encoder(self.model_path, self.model_name, hint)
        if not getattr(self._tokenizer, "is_fast", False):
            raise UserError(f"{self.model_name}: a fast tokenizer (tokenizer.json) is required")
        self._model = model.eval().to(self.device, dtype=torch_dtype(self.spec.dtype))
        mark_verified(self.fingerprint)

    def verify(self) -> None:
        """Load (and so check) the weights unless these very weights once loaded cleanly.

        A call served entirely from the cache never loads the model; this keeps embeddings
        cached from weights that were never checked from passing for checked ones.
        """
        from xrdiag.core.encoding.weights import is_verified

        if not is_verified(self.fingerprint):
            self._load()

    def _repair_hint(self) -> str:
        """How to repair a model xrdiag made itself: the embedded one lives in the cache."""
        from xrdiag.cache.paths import models_dir

        if Path(self.model_path).parent == models_dir():
            return (
                "; the converted default model is damaged: `xrdiag cache clear` removes it "
                "and the next command rebuilds it"
            )
        return ""

    @property
    def num_layers(self) -> int:
        """Hidden-state layers, embeddings included (L + 1)."""
        return int(self._config.num_hidden_layers) + 1

    @property
    def dim(self) -> int:
        return int(self._config.hidden_size)

    @property
    def tokenizer(self) -> Any:
        self._load()
        return self._tokenizer

    @property
    def model(self) -> Any:
        self._load()
        return self._model

    @property
    def fingerprint(self) -> str:
        """Content hash of weights and tokenizer (or hub revision): the cache key's model part."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model_path, self._config)
        return self._fingerprint

    def resolve_layers(self, layers: str | Sequence[int] | None) -> list[int]:
        """`all`, `last`, a comma list or a sequence of ints -> sorted unique layer indices."""
        top = self.num_layers - 1
        if layers is None or layers == "last":
            return [top]
        if layers == "all":
            return list(range(self.num_layers))
        if isinstance(layers, str):
            try:
                wanted = [int(p) for p in layers.split(",") if p.strip()]
            except ValueError:
                raise UserError(
                    f"--layers {layers}: expected all, last or comma-separated integers"
                ) from None
        else:
            wanted = [int(x) for x in layers]
        for layer in wanted:
            if not -self.num_layers <= layer <= top:
                raise UserError(f"--layers {layer}: the model has layers 0..{top} (0 = embeddings)")
        return sorted({layer % self.num_layers for layer in wanted})

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of every text (prefix added, truncated to max_length), no padding."""
        self._load()
        prefixed = [self.spec.prefix + t for t in texts] if self.spec.prefix else list(texts)
        enc = self._tokenizer(
            prefixed,
            truncation=True,
            max_length=self.spec.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(enc["input_ids"])

    def encode(
        self,
        texts: Sequence[str],
        layers: str | Sequence[int] | None = "last",
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Pooled embeddings, float32 `[len(layers), len(texts), dim]`, in input order."""
        import torch

        wanted = self.resolve_layers(layers)
        out = np.zeros((len(wanted), len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)  # loads the model too
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        packed = PackedForward.build(self._model) if self.packed else None
        k = self.frozen_prefix
        cached = None
        if packed is not None and 0 < k < min(wanted):
            from xrdiag.core.encoding.frozen_prefix import prefix_states, resume_pooled

            cached = prefix_states(packed, self._model, ids, k)
        done = 0
        with torch.inference_mode():
            for batch in length_batches([len(x) for x in ids], self.token_budget):
                rows = [ids[i] for i in batch]
                if packed is not None and cached is not None:
                    pooled = resume_pooled(packed, cached, ids, batch, k, wanted,
                                           self.spec.pooling).float().cpu().numpy()  # fmt: skip
                elif packed is not None:
                    pooled = packed(rows, wanted, self.spec.pooling).float().cpu().numpy()
                else:
                    input_ids, mask = _pad(rows, pad_id, self.device)
                    pooled = self._forward(input_ids, mask, wanted)
                out[:, batch, :] = pooled
                done += len(batch)
                if progress is not None:
                    progress(done, len(texts))
        return out

    def _forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, layers: list[int]
    ) -> np.ndarray:
        """The stock forward on a padded batch: any model, every hidden state when needed."""
        import torch

        need_all = layers != [self.num_layers - 1]
        result = self._model(
            input_ids=input_ids, attention_mask=mask, output_hidden_states=need_all
        )
        hidden = (
            result.hidden_states
            if need_all
            else (None,) * (self.num_layers - 1) + (result.last_hidden_state,)
        )
        states = torch.stack([hidden[layer] for layer in layers]).float()  # [l, b, t, d]
        if self.spec.pooling == "cls":
            pooled = states[:, :, 0, :]
        else:
            weights = mask.to(states.dtype).unsqueeze(-1)  # [b, t, 1]
            pooled = (states * weights).sum(dim=2) / weights.sum(dim=1).clamp(min=1.0)
        return pooled.float().cpu().numpy()


def _pad(rows: list[list[int]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch of id lists to its longest row."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


@contextmanager
def model_load_errors(model_name: str, hint: str = "") -> Iterator[None]:
    """A model that cannot be loaded (missing files, unknown hub id) is the user's error.

    `tokenizers` reports a corrupt tokenizer.json as a bare `Exception`, hence the wide net;
    it only wraps reading a model's files.
    """
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        from xrdiag.core.encoding.weights import first_line

        raise UserError(f"{model_name}: cannot load model: {first_line(exc)}{hint}") from None
