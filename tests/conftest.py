"""Session fixtures: an isolated cache, and a tiny randomly initialised encoder for fast tests.

The tiny encoder is a real `BertModel` with a real subword tokenizer trained on the bundled
corpus, saved with `save_pretrained` as safetensors: everything the engine does to a real model
happens to it, in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_VOCAB = 3000


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own cache, so tests never see a user's cache or each other's."""
    root = tmp_path_factory.mktemp("xrdiag-cache")
    os.environ["XRDIAG_CACHE_DIR"] = str(root)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return root


def _bundled_texts() -> list[str]:
    import polars as pl

    import xrdiag

    path = Path(xrdiag.__file__).parent / "core" / "data" / "tico19_subset.parquet"
    # Every 8th sentence (~7,000, all 18 languages): enough for a vocabulary, fast to train.
    return pl.read_parquet(path, columns=["text"])["text"].gather_every(8).to_list()


def build_tiny_encoder(out: Path, seed: int = 0, layers: int = 2) -> Path:
    """A BertModel (hidden 32) plus an XLM-R-style subword tokenizer trained on the bundled corpus.

    BPE rather than Unigram: its trainer takes a second where Unigram's takes minutes, and the
    engine does not care which subword model a tokenizer uses.
    """
    import torch
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=TINY_VOCAB, special_tokens=specials)
    tok.train_from_iterator(_bundled_texts(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=128,
    )
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.token_to_id("<pad>"),
    )
    BertModel(config).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))
