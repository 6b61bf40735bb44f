"""A model directory that does not hold what its config promises is refused in one line.

Missing or surplus layers, another hidden size, unreadable safetensors and malformed
`xrdiag_model.json` values: exit 2 with one line naming the file, never a random layer
evaluated as if it were trained, never a traceback.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import run_cli


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run_cli(argv, capsys)
    return code, err


def edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, **changes}))

    return edit


def edit_weights(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        file = model / "model.safetensors"
        file.write_bytes(change(file.read_bytes()))

    return edit


def write_meta(text: str) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        (model / "xrdiag_model.json").write_text(text)

    return edit


def flip_header(data: bytes) -> bytes:
    out = bytearray(data)
    out[20] ^= 0x55
    return bytes(out)


CASES = {
    "one layer more in the config": (edit_config(num_hidden_layers=3), "weights the files lack"),
    "one layer less in the config": (edit_config(num_hidden_layers=1), "has no place for"),
    "another hidden size": (edit_config(hidden_size=64), "but config.json makes it"),
    "truncated weights": (edit_weights(lambda b: b[: len(b) // 2]), "not a readable safetensors"),
    "zeroed weights": (edit_weights(lambda b: bytes(len(b))), "not a readable safetensors"),
    "empty weights": (edit_weights(lambda b: b""), "not a readable safetensors"),
    "flipped header byte": (edit_weights(flip_header), "not a readable safetensors"),
    "metadata not JSON": (write_meta('{"pooling": '), "xrdiag_model.json: unreadable"),
    "metadata max_length text": (write_meta('{"max_length": "abc"}'), "max_length 'abc'"),
    "metadata pooling number": (write_meta('{"pooling": 3}'), "pooling 3"),
    "tokenizer cut short": (
        lambda m: (m / "tokenizer.json").write_text((m / "tokenizer.json").read_text()[:500]),
        "cannot load model",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_model_is_one_line_exit_2(
    case: str, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, expected = CASES[case]
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    edit(model)
    code, err = cli(
        ["embed", "--model", str(model), "--out", str(tmp_path / "e.npz"), "--langs", "en,fr",
         "--max-per-domain", "2", "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert expected in err and str(model) in err
    assert not (tmp_path / "e.npz").exists()


def test_cached_embeddings_of_unchecked_weights_are_not_trusted(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Embeddings cached before weights were checked (no marker) make the model load once."""
    from xrdiag.cache.store import ArrayStore
    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.encoding.embedding import embed_corpus, layer_key
    from xrdiag.core.encoding.encoder import Encoder
    from xrdiag.errors import UserError

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    edit_config(num_hidden_layers=3)(model)
    corpus = load_corpus("default").filter(langs="en,fr", max_per_domain=2)
    encoder = Encoder(str(model), device="cpu")
    import numpy as np

    store = ArrayStore()
    fake = np.zeros((corpus.frame.height, encoder.dim), dtype=np.float32)
    store.put(layer_key(encoder, corpus.fingerprint(), 3), {"embeddings": fake})
    with pytest.raises(UserError, match="weights the files lack"):
        embed_corpus(encoder, corpus, "last", store=store)


def test_a_model_without_a_pooler_still_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    """xrdiag pools hidden states itself: a checkpoint without pooler weights is fine."""
    from safetensors.numpy import load_file, save_file

    from xrdiag.core.encoding.encoder import Encoder

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith("pooler.")}
    assert len(kept) < len(weights)
    save_file(kept, model / "model.safetensors", metadata={"format": "pt"})
    out = Encoder(str(model), device="cpu").encode(["a sentence", "another one"])
    assert out.shape == (1, 2, 32)


def test_fingerprint_follows_weights_rewritten_in_place(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Same size, same inode, mtime put back: the content changed, so must the fingerprint."""
    import os

    import torch
    from transformers import BertConfig, BertModel

    from xrdiag.core.encoding.encoder import Encoder

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    weights = model / "model.safetensors"
    before = Encoder(str(model), device="cpu").fingerprint
    stat = weights.stat()
    other = tmp_path / "other"
    torch.manual_seed(123)
    BertModel(BertConfig.from_pretrained(model)).save_pretrained(other, safe_serialization=True)
    new = (other / "model.safetensors").read_bytes()
    assert len(new) == stat.st_size and new != weights.read_bytes()
    with weights.open("r+b") as fh:  # in place: the inode stays
        fh.write(new)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = weights.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        stat.st_ino,
        stat.st_size,
        stat.st_mtime_ns,
    )
    assert Encoder(str(model), device="cpu").fingerprint != before
