"""Corpus hygiene: a sentence never sits in two splits, placeholders are reported."""

from __future__ import annotations

import polars as pl

from xrdiag.core.corpus import Corpus, load_corpus, split_of
from xrdiag.core.corpus.hygiene import grouped_splits, text_key


def test_ids_sharing_a_sentence_share_a_split() -> None:
    # Find ids whose own splits differ, then give them one sentence in one language.
    ids = [f"u{i}" for i in range(200)]
    a = next(i for i in ids if split_of(i) == "train")
    b = next(i for i in ids if split_of(i) == "test")
    c = next(i for i in ids if split_of(i) == "dev")
    rows = [
        (a, "en", "Wash your hands."), (a, "fr", "Lavez-vous les mains."),
        (b, "en", "wash  your HANDS."), (b, "fr", "Autre phrase."),  # same text up to case/space
        (c, "en", "Something else."), (c, "fr", "Lavez-vous les mains."),  # b-c linked via a
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["id", "lang", "text"], orient="row")
    corpus = Corpus.from_frame(frame)
    splits = dict(corpus.frame.select("id", "split").unique().iter_rows())
    assert splits[a] == splits[b] == splits[c] == split_of(min(a, b, c))
    assert grouped_splits(frame, split_of) == splits
    assert text_key("Wash  your\u00a0HANDS.") == text_key("wash your hands.")


def test_the_bundled_corpus_has_no_sentence_in_two_splits() -> None:
    f = load_corpus("default").frame
    keyed = f.with_columns(pl.col("text").map_elements(text_key, return_dtype=pl.String))
    spread = keyed.group_by("lang", "text").agg(pl.col("split").n_unique().alias("splits"))
    assert spread.filter(pl.col("splits") > 1).height == 0


def test_placeholders_are_reported() -> None:
    frame = pl.DataFrame(
        {
            "id": ["1", "1", "2", "2"],
            "lang": ["en", "es", "en", "es"],
            "text": ["Hello.", "{NS}", "Bye.", "Adiós."],
        }  # fmt: skip
    )
    info = Corpus.from_frame(frame).describe()
    assert info["placeholder_rows"] == 1
    assert any("placeholders" in p and "'{NS}'" in p for p in info["problems"])
