"""A training checkpoint's contents: weights and tokenizer, plus everything a resume needs.

`save_state` writes into a checkpoint directory (RunDir.save_checkpoint makes it atomic) the
model (`save_pretrained`, safetensors, so the checkpoint loads as a model anywhere), its
tokenizer, a pair-classification head as safetensors plus JSON (`head_file.py`), and the
trainer state: optimiser, scheduler, heads, the sampler's position, the
RS-DA substituter and every RNG, so a resumed run reaches the weights of an uninterrupted one.
`model` is the run's StepModel.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from xrdiag.core.encoding.encoder import MODEL_META_FILE
from xrdiag.core.training.head_file import save_head
from xrdiag.errors import UserError

TRAINER_STATE = "trainer_state.json"
TRAINER_TENSORS = "trainer.pt"


def write_embedding_meta(model: Any, ckpt: Path) -> None:
    """How the checkpoint embeds, so evaluation embeds as training did: the base model's own
    metadata (if any) plus the prefix, pooling and max length the run used, and the base model.

    Without it a fine-tuned hub e5 model (trained with "query: " because its name says e5)
    would be evaluated without the prefix, its folder being named step-NNNNNN.
    """
    source = Path(model.model_path) / MODEL_META_FILE
    meta = json.loads(source.read_text(encoding="utf-8")) if source.is_file() else {}
    meta.update(
        base_model=meta.get("base_model") or model.cfg.model.name,
        prefix_query=model.prefix,
        pooling=model.cfg.model.pooling,
        max_length=model.max_length,
    )
    if model.cfg.model.freeze_layers:  # bit-identical to the base below this block
        meta["frozen_layers"] = model.cfg.model.freeze_layers
    (ckpt / MODEL_META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def save_state(model: Any, ckpt: Path, step: int) -> None:
    """Weights (safetensors, loadable by `--model`), tokenizer, and the trainer state."""
    import torch

    model.model.save_pretrained(ckpt, safe_serialization=True)
    model.tokenizer.save_pretrained(ckpt)
    write_embedding_meta(model, ckpt)
    tensors = {
        "optimizer": model.optimizer.state_dict(),
        "scheduler": model.scheduler.state_dict(),
        "head": model.head.state_dict() if model.head is not None else None,
        "discriminator": model.disc.state_dict() if model.disc is not None else None,
        "torch_rng": torch.get_rng_state(),
        "noise_rng": model.noise.get_state(),
    }
    torch.save(tensors, ckpt / TRAINER_TENSORS)
    if model.head is not None:  # again, unpickled, for evaluation (head_file.py)
        save_head(
            model.head, ckpt, pooling=model.cfg.model.pooling, max_length=model.max_length,
            prefix=model.prefix, label_names=model.label_names, layer=model.n_layers,
        )  # fmt: skip
    state = {
        "step": step,
        "sampler": model.sampler.state_dict(),
        "substituter": model.substituter.state_dict() if model.substituter else None,
        "rng": _rng_state(),
    }
    (ckpt / TRAINER_STATE).write_text(json.dumps(state), encoding="utf-8")


def restore_state(model: Any, ckpt: Path, hint: str = "") -> int:
    """Load the trainer state of a checkpoint whose weights this model was built from.

    `trainer.pt` is read with `weights_only=True`: tensors and plain containers, never code, so
    a pickle planted in it is refused, not run. Any damage (truncated, zeroed, foreign) is one
    line, with `hint` (what to resume from instead).
    """
    import torch

    try:
        state = json.loads((ckpt / TRAINER_STATE).read_text(encoding="utf-8"))
        tensors = torch.load(ckpt / TRAINER_TENSORS, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not isinstance(tensors, dict):
            raise ValueError("not the trainer state xrdiag writes")
        missing = [k for k in ("optimizer", "scheduler", "torch_rng", "noise_rng")
                   if k not in tensors]  # fmt: skip
        missing += [k for k in ("step", "sampler", "rng") if k not in state]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
    except Exception as exc:  # torch.load raises unpickling, zip, EOF and runtime errors alike
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{ckpt}: cannot read the trainer state ({reason}){hint}") from None
    model.optimizer.load_state_dict(tensors["optimizer"])
    model.scheduler.load_state_dict(tensors["scheduler"])
    if model.head is not None:
        model.head.load_state_dict(tensors["head"])
    if model.disc is not None:
        model.disc.load_state_dict(tensors["discriminator"])
    model.sampler.load_state_dict(state["sampler"])
    if model.substituter is not None:
        model.substituter.load_state_dict(state["substituter"])
    torch.set_rng_state(tensors["torch_rng"])
    model.noise.set_state(tensors["noise_rng"])
    _set_rng_state(state["rng"])
    return int(state["step"])


def _rng_state() -> dict[str, Any]:
    """Python and numpy global RNG states, JSON-serialisable."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}  # fmt: skip


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
