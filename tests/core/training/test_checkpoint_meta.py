"""Checkpoints embed as they were trained: prefix, pooling, max length and base model travel in
the checkpoint's metadata, and evaluation reads them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from xrdiag.core.encoding.encoder import MODEL_META_FILE, Encoder
from xrdiag.core.evaluate import EvalOptions, run_eval
from xrdiag.core.training.config import load_config
from xrdiag.core.training.loop import train


def test_e5_checkpoint_is_evaluated_with_its_training_prefix(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "tiny-e5-small"  # "e5" in the name: training prefixes "query: "
    shutil.copytree(tiny_model_dir, model)
    cfg = load_config(
        None,
        [
            f"model.name={model}", "model.max_length=24", "model.pooling=cls",
            "batches.batch_size=8", "corpus.max_per_domain=30", "protocol.dev_max_per_domain=6",
            "optim.max_steps=2", "optim.warmup_steps=0", "run.eval_every=1000",
        ],
    )  # fmt: skip
    result = train(cfg, tmp_path / "run")
    ckpt = result.checkpoint
    assert ckpt is not None and "e5" not in ckpt.name  # step-000002: the name says nothing
    meta = json.loads((ckpt / MODEL_META_FILE).read_text())
    assert meta == {"base_model": str(model), "prefix_query": "query: ", "pooling": "cls",
                    "max_length": 24}  # fmt: skip
    spec = Encoder(str(ckpt), device="cpu").spec
    assert (spec.prefix, spec.pooling, spec.max_length) == ("query: ", "cls", 24)
    out = run_eval(
        str(ckpt), "default", tmp_path / "ev",
        EvalOptions(analyses=("geometry",), langs="en,fr", max_per_domain=5, device="cpu"),
    )  # fmt: skip
    assert out.manifest["encoding"]["prefix"] == "query: "
    assert out.manifest["encoding"]["pooling"] == "cls"
    # An explicit flag still wins over the checkpoint's own.
    assert Encoder(str(ckpt), device="cpu", pooling="mean", prefix="").spec.prefix == ""
