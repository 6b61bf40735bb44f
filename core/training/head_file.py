"""The pair-classification head in a checkpoint, readable without unpickling anything.

`head.safetensors` holds the head's weights; `xrdiag_head.json` what it takes to use them as
training did: its shape (dim, num_labels), the pooling, the input prefix and max length of the
pair encoding, the label names, and the encoder layer it reads (the last). The trainer state
(`trainer.pt`) keeps its own copy for resuming; these two files are for evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xrdiag.errors import UserError

HEAD_WEIGHTS = "head.safetensors"
HEAD_META = "xrdiag_head.json"
HEAD_FORMAT = 1


def save_head(
    head: Any,
    ckpt: Path,
    *,
    pooling: str,
    max_length: int,
    prefix: str,
    label_names: Sequence[str],
    layer: int,
) -> None:
    """Write `head.safetensors` and `xrdiag_head.json` into a checkpoint directory."""
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(weights, str(ckpt / HEAD_WEIGHTS))
    meta = {
        "format": HEAD_FORMAT,
        "kind": "pair_classification",
        "dim": int(head.dense.in_features),
        "num_labels": int(head.num_labels),
        "pooling": pooling,
        "max_length": int(max_length),
        "prefix": prefix,
        "label_names": list(label_names),
        "layer": int(layer),
    }
    (ckpt / HEAD_META).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def read_head_meta(ckpt: Path) -> dict[str, Any]:
    """The head's metadata; a checkpoint without a head (or a broken one) is a UserError."""
    meta_file, weights = ckpt / HEAD_META, ckpt / HEAD_WEIGHTS
    if not meta_file.is_file() or not weights.is_file():
        raise UserError(
            f"{ckpt}: no pair-classification head ({HEAD_META} and {HEAD_WEIGHTS}); expected a "
            "checkpoint of a run with objective.kind = 'pair_classification'"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_file}: cannot read ({exc}); expected the head's JSON") from None
    needed = ("dim", "num_labels", "pooling", "max_length", "prefix", "label_names")
    if (
        not isinstance(meta, dict)
        or meta.get("format") != HEAD_FORMAT
        or any(k not in meta for k in needed)
    ):
        raise UserError(
            f"{meta_file}: not an xrdiag head description (format {HEAD_FORMAT} with "
            f"{', '.join(needed)})"
        )
    return meta


def load_head(ckpt: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The head module (eval mode, on `device`) and its metadata, from the checkpoint files."""
    from safetensors.torch import load_file

    from xrdiag.core.training.objectives import PairClassificationHead

    meta = read_head_meta(ckpt)
    head = PairClassificationHead(int(meta["dim"]), int(meta["num_labels"]))
    try:
        head.load_state_dict(load_file(str(ckpt / HEAD_WEIGHTS)))
    except (OSError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{ckpt / HEAD_WEIGHTS}: cannot load the head ({first})") from None
    return head.to(device).eval(), meta
