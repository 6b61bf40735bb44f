"""The encoder against hand computations on a real (tiny, random) BertModel."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from xrdiag.core.encoding.encoder import Encoder, PackedForward, length_batches, model_fingerprint
from xrdiag.errors import UserError

SENTENCES = [
    "Wash your hands often with soap and water.",
    "Lavez-vous souvent les mains avec de l'eau et du savon.",
    "Мойте руки с мылом.",
    "经常用肥皂和水洗手。",
    "اغسل يديك كثيرا بالماء والصابون.",
    "Hi",
    "The virus spreads mainly between people who are in close contact with each other, "
    "typically within about one metre.",
    "¿Tiene fiebre o tos seca?",
]


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> Encoder:
    return Encoder(str(tiny_model_dir), device="cpu")


def hand_pooled(model_dir: Path, text: str, layer: int, pooling: str) -> np.ndarray:
    """One sentence alone (no padding at all), pooled by hand from the hidden states."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        states = model(**ids, output_hidden_states=True).hidden_states[layer][0]
    if pooling == "cls":
        return states[0].numpy()
    return (states.sum(dim=0) / states.shape[0]).numpy()


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_equals_hand_computation(tiny_model_dir: Path, pooling: str, packed: bool) -> None:
    enc = Encoder(
        str(tiny_model_dir), device="cpu", pooling=pooling, token_budget=256, packed=packed
    )
    got = enc.encode(SENTENCES, layers="all")
    assert got.shape == (enc.num_layers, len(SENTENCES), enc.dim)
    for layer in range(enc.num_layers):
        for i, text in enumerate(SENTENCES):
            want = hand_pooled(tiny_model_dir, text, layer, pooling)
            np.testing.assert_allclose(got[layer, i], want, atol=1e-5, rtol=1e-5)


def test_independent_of_batch_size_and_neighbours(tiny_model_dir: Path) -> None:
    small = Encoder(str(tiny_model_dir), device="cpu", token_budget=8)
    large = Encoder(str(tiny_model_dir), device="cpu", token_budget=100_000)
    a = small.encode(SENTENCES, layers="all")
    b = large.encode(SENTENCES, layers="all")
    np.testing.assert_allclose(a, b, atol=1e-5)
    # The same sentence among different company gives the same vector.
    alone = large.encode(SENTENCES[:1], layers="all")
    np.testing.assert_allclose(alone[:, 0], b[:, 0], atol=1e-5)


def test_order_is_preserved(encoder: Encoder) -> None:
    perm = np.random.default_rng(0).permutation(len(SENTENCES))
    base = encoder.encode(SENTENCES)
    shuffled = encoder.encode([SENTENCES[i] for i in perm])
    np.testing.assert_allclose(shuffled, base[:, perm], atol=1e-5)
    # Different sentences give different vectors (the order test would pass on constants).
    assert np.abs(base[0, 0] - base[0, 1]).max() > 1e-3


def test_layers(encoder: Encoder) -> None:
    assert encoder.num_layers == 3
    assert encoder.resolve_layers("all") == [0, 1, 2]
    assert encoder.resolve_layers("last") == [2]
    assert encoder.resolve_layers("0,2") == [0, 2]
    assert encoder.resolve_layers([-1, 0]) == [0, 2]
    every = encoder.encode(SENTENCES[:3], layers="all")
    some = encoder.encode(SENTENCES[:3], layers="0,2")
    np.testing.assert_allclose(some, every[[0, 2]], atol=1e-6)
    with pytest.raises(UserError, match=r"--layers 7: the model has layers 0\.\.2"):
        encoder.resolve_layers("0,7")
    with pytest.raises(UserError, match="expected all, last or comma-separated integers"):
        encoder.resolve_layers("x")


def test_empty_input(encoder: Encoder) -> None:
    assert encoder.encode([], layers="all").shape == (3, 0, encoder.dim)


def test_truncation_to_max_length(tiny_model_dir: Path) -> None:
    enc = Encoder(str(tiny_model_dir), device="cpu", max_length=6)
    assert max(len(x) for x in enc.tokenize(SENTENCES)) == 6


def test_length_batches_respect_budget() -> None:
    lengths = [5, 40, 3, 12, 12, 7, 200, 1]
    batches = length_batches(lengths, token_budget=50)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for batch in batches:
        padded = max(lengths[i] for i in batch) * len(batch)
        assert padded <= 50 or len(batch) == 1
    # Longest first, so each batch's rows are no longer than the previous batch's.
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima == sorted(maxima, reverse=True)


def test_fingerprint_follows_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert model_fingerprint(str(copy)) == model_fingerprint(str(tiny_model_dir))
    model = AutoModel.from_pretrained(copy)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[0, 0] += 1.0
    model.save_pretrained(copy)
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_model_dir))


def test_model_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no weights: expected model.safetensors"):
        bare = tmp_path / "bare"
        bare.mkdir()
        shutil.copy(tiny_model_dir / "config.json", bare / "config.json")
        Encoder(str(bare), device="cpu")
    with pytest.raises(UserError, match="config.json is missing"):
        Encoder(str(tmp_path), device="cpu")
    with pytest.raises(UserError, match="--model path does not exist"):
        Encoder(str(tmp_path / "nope" / "model"), device="cpu")
    with pytest.raises(UserError, match="--pooling max"):
        Encoder(str(tiny_model_dir), pooling="max")


def variant_model(tiny_model_dir: Path, out: Path, kind: str) -> Path:
    """The tiny encoder's tokenizer with a fresh random model: XLM-R, or BERT with ReLU."""
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    shutil.copytree(tiny_model_dir, out)
    for weights in out.glob("*.safetensors"):
        weights.unlink()
    base = BertConfig.from_pretrained(tiny_model_dir).to_dict()
    torch.manual_seed(1)
    if kind == "xlm-roberta":
        base.update(max_position_embeddings=130, type_vocab_size=1)
        base.pop("model_type", None)
        model = XLMRobertaModel(XLMRobertaConfig(**base))
    else:
        base.update(hidden_act="relu")
        model = BertModel(BertConfig(**base))
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.mark.parametrize("kind", ["xlm-roberta", "relu-bert"])
def test_other_models_equal_hand_computation(
    tiny_model_dir: Path, tmp_path: Path, kind: str
) -> None:
    """XLM-R (positions offset by padding_idx + 1) runs packed; a ReLU BERT falls back."""
    model_dir = variant_model(tiny_model_dir, tmp_path / kind, kind)
    enc = Encoder(str(model_dir), device="cpu", token_budget=128)
    assert (PackedForward.build(enc.model) is not None) == (kind == "xlm-roberta")
    got = enc.encode(SENTENCES, layers="all")
    for layer in range(enc.num_layers):
        for i, text in enumerate(SENTENCES):
            want = hand_pooled(model_dir, text, layer, "mean")
            np.testing.assert_allclose(got[layer, i], want, atol=1e-5, rtol=1e-5)


def test_packed_equals_stock_forward_in_any_row_order(encoder: Encoder) -> None:
    """Rows of mixed, unsorted and repeated lengths in one packed batch (several equal runs)."""
    texts = SENTENCES + SENTENCES[::-1] + SENTENCES[:3]
    ids = encoder.tokenize(texts)
    packed = PackedForward.build(encoder.model)
    assert packed is not None
    for pooling in ("mean", "cls"):
        stock = Encoder(encoder.model_path, device="cpu", pooling=pooling, packed=False)
        want = stock.encode(texts, layers="all")
        with torch.inference_mode():
            got = packed(ids, [0, 1, 2], pooling).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    # A shallow request stops early and still matches.
    with torch.inference_mode():
        first = packed(ids, [1], "cls").numpy()
    np.testing.assert_allclose(first[0], want[1], atol=1e-5, rtol=1e-5)


def test_packed_skips_training_mode(encoder: Encoder) -> None:
    """Dropout is live in training mode, so the packed forward (eval semantics) declines."""
    encoder.model.train()
    try:
        assert PackedForward.build(encoder.model) is None
    finally:
        encoder.model.eval()
    assert PackedForward.build(encoder.model) is not None
