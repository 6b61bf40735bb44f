"""`--dtype`: encoding in bfloat16 on the CPU stays close to float32, is cached apart from it
and recorded; float32 keeps the cache keys it always had; float16 asks for a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli as run

from xrdiag.cache.store import ArrayStore
from xrdiag.core.corpus import load_corpus
from xrdiag.core.encoding.embedding import embed_corpus, layer_key, load_embeddings
from xrdiag.core.encoding.encoder import Encoder


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("packed", [True, False])
def test_bfloat16_is_close_to_float32_and_cached_apart(
    tiny_model_dir: Path, tmp_path: Path, packed: bool
) -> None:
    """Both forwards (packed, and the stock Hugging Face one), every layer."""
    corpus = load_corpus("default").filter(langs="en,fr,ru", max_per_domain=5, seed=0)
    store = ArrayStore(tmp_path / "cache")
    full = Encoder(str(tiny_model_dir), device="cpu", packed=packed)
    half = Encoder(str(tiny_model_dir), device="cpu", packed=packed, dtype="bfloat16")
    a = embed_corpus(full, corpus, "all", store=store)
    b = embed_corpus(half, corpus, "all", store=store)
    assert str(half.model.dtype) == "torch.bfloat16"
    for layer in a.layers:
        assert b.layers[layer].dtype == np.float32  # pooled and returned in float32
        assert row_cosines(a.layers[layer], b.layers[layer]).min() > 0.99
        assert not np.array_equal(a.layers[layer], b.layers[layer])  # really another precision
    fingerprint = corpus.fingerprint()
    assert {layer_key(full, fingerprint, layer) for layer in a.layers}.isdisjoint(
        layer_key(half, fingerprint, layer) for layer in b.layers
    )
    assert len(list(store.entries())) == 2 * len(a.layers)
    again = embed_corpus(half, corpus, "all", store=store)
    assert again.cached_layers == sorted(a.layers)  # its own entries, served back
    assert all(np.array_equal(again.layers[k], b.layers[k]) for k in b.layers)


def test_float32_keeps_the_cache_key_it_had(tiny_model_dir: Path) -> None:
    """The key of a float32 encoding has no dtype in it, so existing caches stay valid."""
    encoder = Encoder(str(tiny_model_dir), device="cpu")
    assert encoder.spec.as_key() == {"pooling": "mean", "max_length": 128, "prefix": ""}
    half = Encoder(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert half.spec.as_key() == {**encoder.spec.as_key(), "dtype": "bfloat16"}


def test_eval_and_embed_record_the_dtype(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--model", str(tiny_model_dir), "--langs", "en,fr", "--max-per-domain", "3"]
    code, _, err = run(["eval", *common, "--out", str(tmp_path / "ev"), "--dtype", "bfloat16",
                        "--analyses", "retrieval", "--bootstrap", "0"], capsys)  # fmt: skip
    assert code == 0, err
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert manifest["encoding"]["dtype"] == "bfloat16"
    assert manifest["options"]["dtype"] == "bfloat16"
    assert manifest["encoding"]["processes"] == 1
    npz = tmp_path / "e.npz"
    code, _, err = run(["embed", *common, "--out", str(npz), "--dtype", "bfloat16"], capsys)
    assert code == 0, err
    assert load_embeddings(npz)[2]["dtype"] == "bfloat16"


@pytest.mark.parametrize("command", ["eval", "embed"])
def test_an_unknown_dtype_is_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run([command, "--out", str(tmp_path / "x"), "--dtype", "float64"], capsys)
    assert code == 2 and "--dtype" in err and "float64" in err


def test_float16_on_the_cpu_is_one_line(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["embed", "--model", str(tiny_model_dir), "--device", "cpu",
                        "--dtype", "float16"], capsys)  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xrdiag: error: --dtype float16 needs a GPU")
