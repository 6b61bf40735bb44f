"""The frozen prefix computed once: equal embeddings, shared by models with equal lower layers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from xrdiag.cache.store import ArrayStore
from xrdiag.core.corpus import load_corpus
from xrdiag.core.encoding.encoder import Encoder
from xrdiag.core.encoding.frozen_prefix import prefix_fingerprint

TEXTS = load_corpus("default").filter(langs="en,fr,zh", domains="news")


def test_prefix_path_equals_the_full_forward(tiny_model_dir: Path) -> None:
    texts = TEXTS.frame["text"].to_list()
    full = Encoder(str(tiny_model_dir), device="cpu").encode(texts, "last")
    entries = ArrayStore().info()["entries"]
    fast = Encoder(str(tiny_model_dir), device="cpu", frozen_prefix=1)
    first = fast.encode(texts, "last")
    np.testing.assert_allclose(first, full, rtol=0, atol=1e-5)
    assert ArrayStore().info()["entries"] == entries + 1  # the depth-1 states, cached
    np.testing.assert_allclose(fast.encode(texts, "last"), full, rtol=0, atol=1e-5)
    assert ArrayStore().info()["entries"] == entries + 1  # served from the cache
    # A layer at or below the prefix cannot be resumed: the full forward answers.
    both = fast.encode(texts, [1, 2])
    np.testing.assert_allclose(both[1], full[0], rtol=0, atol=1e-5)


def test_a_model_with_other_lower_layers_misses(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The key is the prefix's content: change one weight below block k and the cache misses,
    change one above and it hits (the checkpoint case)."""
    from safetensors.torch import load_file, save_file

    texts = TEXTS.frame["text"].to_list()[:40]
    base = Encoder(str(tiny_model_dir), device="cpu", frozen_prefix=1)
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    for target, name in ((upper, "encoder.layer.1.output.dense.bias"),
                         (lower, "encoder.layer.0.output.dense.bias")):  # fmt: skip
        shutil.copytree(tiny_model_dir, target)
        weights = load_file(str(target / "model.safetensors"))
        key = next(k for k in weights if k.endswith(name))
        weights[key] = weights[key] + 0.5
        save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    fp = {p: prefix_fingerprint(Encoder(str(p), device="cpu").model, 1)
          for p in (tiny_model_dir, upper, lower)}  # fmt: skip
    assert fp[tiny_model_dir] == fp[upper] != fp[lower]
    base.encode(texts, "last")
    entries = ArrayStore().info()["entries"]
    got = Encoder(str(upper), device="cpu", frozen_prefix=1).encode(texts, "last")
    assert ArrayStore().info()["entries"] == entries  # the prefix states were reused
    want = Encoder(str(upper), device="cpu").encode(texts, "last")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    Encoder(str(lower), device="cpu", frozen_prefix=1).encode(texts, "last")
    assert ArrayStore().info()["entries"] == entries + 1
