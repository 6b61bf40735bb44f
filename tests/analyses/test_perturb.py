"""Text perturbations on real bundled sentences: determinism, rates, identity, scripts, lexicon."""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path

import polars as pl
import pytest

import xrdiag
from xrdiag.analyses.perturb import (
    KINDS,
    check_rate,
    noise_label,
    parse_noise_kinds,
    perturb_texts,
    word_spans,
)
from xrdiag.core.data.synonyms import load_lexicon
from xrdiag.errors import UserError

BUNDLED = Path(xrdiag.__file__).parent / "core" / "data" / "tico19_subset.parquet"
RATE = 0.1


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    frame = pl.read_parquet(BUNDLED, columns=["id", "lang", "text"])
    return frame.filter(pl.col("lang").is_in(["en", "hi", "zh", "ar", "bn", "ti", "ru"]))


def texts_of(corpus: pl.DataFrame, lang: str, n: int = 150) -> list[str]:
    """n sentences of one language, spread over every domain (seeded sample)."""
    return corpus.filter(pl.col("lang") == lang).sort("id")["text"].sample(n, seed=0).to_list()


@pytest.fixture(scope="module")
def lexicon() -> dict[str, list[str]]:
    return load_lexicon()


def within_sampling_error(hits: int, units: int, rate: float, sigmas: float = 4.0) -> bool:
    """|hits - units * rate| within `sigmas` binomial standard deviations."""
    sd = math.sqrt(units * rate * (1 - rate))
    return abs(hits - units * rate) <= sigmas * sd


def letters(text: str) -> int:
    return sum(unicodedata.category(c)[0] in "LM" for c in text)


def script(char: str) -> str:
    return unicodedata.name(char).split(" ")[0]


MIXED = ["en", "hi", "zh", "ar"]


def mixed_texts(corpus: pl.DataFrame) -> list[str]:
    return [t for lang in MIXED for t in texts_of(corpus, lang)]


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_for_seed_and_key(corpus: pl.DataFrame, lexicon: dict, kind: str) -> None:
    texts = texts_of(corpus, "en", 60)
    langs = ["en"] * len(texts)
    kw = {"langs": langs, "lexicon": lexicon}
    first = perturb_texts(texts, kind, 0.3, seed=3, **kw)
    assert perturb_texts(texts, kind, 0.3, seed=3, **kw) == first
    assert perturb_texts(texts, kind, 0.3, seed=4, **kw) != first
    assert first != texts
    # A text's noise depends on its key, not on its neighbours or position.
    keys = [f"k{i}" for i in range(len(texts))]
    keyed = perturb_texts(texts, kind, 0.3, seed=3, keys=keys, **kw)
    rev = perturb_texts(
        texts[::-1], kind, 0.3, seed=3, keys=keys[::-1], langs=langs, lexicon=lexicon
    )
    assert rev[::-1] == keyed


@pytest.mark.parametrize("kind", KINDS)
def test_rate_zero_is_identity(corpus: pl.DataFrame, lexicon: dict, kind: str) -> None:
    texts = mixed_texts(corpus)
    out = perturb_texts(texts, kind, 0.0, langs=["en"] * len(texts), lexicon=lexicon)
    assert out == texts
    assert all(a is b for a, b in zip(out, texts, strict=True))


@pytest.mark.parametrize(
    ("kind", "units", "changed"),
    [
        ("char_drop", letters, lambda a, b: len(a) - len(b)),
        ("char_insert", letters, lambda a, b: len(b) - len(a)),
        ("char_replace", letters, lambda a, b: sum(x != y for x, y in zip(a, b, strict=True))),
        (
            "strip_punct",
            lambda t: sum(unicodedata.category(c)[0] == "P" for c in t),
            lambda a, b: len(a) - len(b),
        ),
    ],
)
def test_char_rates_within_sampling_error(corpus: pl.DataFrame, kind, units, changed) -> None:  # type: ignore[no-untyped-def]
    texts = mixed_texts(corpus)
    out = perturb_texts(texts, kind, RATE, seed=11)
    n = sum(units(t) for t in texts)
    hits = sum(changed(a, b) for a, b in zip(texts, out, strict=True))
    assert n > 2000
    assert within_sampling_error(hits, n, RATE), (hits, n)


def swap_units(text: str) -> int:
    """Disjoint pairs (0,1), (2,3)... of each run of letters whose two letters differ."""
    count = 0
    for run in re.finditer(r"(?:[^\W\d_]|[\u0300-\u036f\u0900-\u0dff])+", text):
        s = run.group(0)
        if len(s) != sum(unicodedata.category(c)[0] in "LM" for c in s):
            raise AssertionError("test regex caught a non-letter")
        count += sum(s[i] != s[i + 1] for i in range(0, len(s) - 1, 2))
    return count


def test_char_swap_rate(corpus: pl.DataFrame) -> None:
    texts = [t for lang in ("en", "zh", "ru") for t in texts_of(corpus, lang)]
    out = perturb_texts(texts, "char_swap", RATE, seed=5)
    n = sum(swap_units(t) for t in texts)
    diff = sum(
        sum(x != y for x, y in zip(a, b, strict=True)) for a, b in zip(texts, out, strict=True)
    )
    assert diff % 2 == 0 and n > 3000
    assert within_sampling_error(diff // 2, n, RATE), (diff // 2, n)


EN_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*")


def zh_units(text: str) -> int:
    han = sum(unicodedata.name(c, "").startswith("CJK UNIFIED") for c in text)
    other = re.sub(r"[\u4e00-\u9fff]", " ", text)
    return han + len(re.findall(r"[^\W_]+", other))


def test_word_dropout_rate_en_and_zh(corpus: pl.DataFrame) -> None:
    en = [t for t in texts_of(corpus, "en", 400) if t.isascii()]
    out = perturb_texts(en, "word_dropout", RATE, seed=2)
    n = sum(len(EN_WORD.findall(t)) for t in en)
    hits = n - sum(len(EN_WORD.findall(t)) for t in out)
    assert n > 3000 and within_sampling_error(hits, n, RATE), (hits, n)
    zh = texts_of(corpus, "zh", 300)
    out = perturb_texts(zh, "word_dropout", RATE, seed=2)
    n = sum(zh_units(t) for t in zh)
    hits = n - sum(zh_units(t) for t in out)
    assert n > 3000 and within_sampling_error(hits, n, RATE), (hits, n)


def test_zh_words_are_characters() -> None:
    assert word_spans("新冠病毒 COVID-19 症状") == [
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 4),
        (5, 10),
        (11, 13),
        (14, 15),
        (15, 16),
    ]
    assert word_spans("don't stop") == [(0, 5), (6, 10)]


def test_lowercase_rate(corpus: pl.DataFrame) -> None:
    en = [t for t in texts_of(corpus, "en", 1500) if t.isascii()]
    out = perturb_texts(en, "lowercase", 0.3, seed=1)
    n = hits = 0
    for a, b in zip(en, out, strict=True):
        assert a.lower() == b.lower()
        for wa, wb in zip(EN_WORD.findall(a), EN_WORD.findall(b), strict=True):
            if wa != wa.lower():
                n += 1
                hits += wb == wa.lower()
            else:
                assert wa == wb
    assert n > 1000 and within_sampling_error(hits, n, 0.3), (hits, n)


def test_synonym_uses_only_listed_neighbours_at_rate(corpus: pl.DataFrame, lexicon: dict) -> None:
    # Single-word neighbours only, so input and output words align one to one.
    lex = {
        w: [x for x in ns if x.isalpha() and x.isascii() and x != w]
        for w, ns in lexicon.items()
        if w.isalpha()
    }
    lex = {w: ns for w, ns in lex.items() if ns}
    en = [t for t in texts_of(corpus, "en", 400) if t.isascii()]
    out = perturb_texts(en, "synonym", 0.3, seed=9, langs=["en"] * len(en), lexicon=lex)
    n = hits = 0
    for a, b in zip(en, out, strict=True):
        wa, wb = re.findall(r"[A-Za-z]+", a), re.findall(r"[A-Za-z]+", b)
        assert len(wa) == len(wb)
        for x, y in zip(wa, wb, strict=True):
            if x.lower() in lex:
                n += 1
                if x != y:
                    hits += 1
                    assert y.lower() in lex[x.lower()], (x, y)
                    assert y[0].isupper() == x[0].isupper()
            else:
                assert x == y
    assert n > 1000 and within_sampling_error(hits, n, 0.3), (hits, n)


def test_synonym_leaves_other_languages_alone(corpus: pl.DataFrame, lexicon: dict) -> None:
    texts = texts_of(corpus, "en", 50) + texts_of(corpus, "hi", 50)
    langs = ["fr"] * 50 + ["hi"] * 50  # English-looking text labelled French stays as it is
    assert perturb_texts(texts, "synonym", 1.0, langs=langs, lexicon=lexicon) == texts
    changed = perturb_texts(
        texts, "synonym", 1.0, langs=["en-GB"] * 50 + langs[50:], lexicon=lexicon
    )
    assert changed[:50] != texts[:50] and changed[50:] == texts[50:]


@pytest.mark.parametrize("lang", ["hi", "bn", "zh", "ar", "ti", "ru", "en"])
def test_replacements_keep_script_and_category(corpus: pl.DataFrame, lang: str) -> None:
    texts = texts_of(corpus, lang, 80)
    out = perturb_texts(texts, "char_replace", 0.3, seed=7)
    changed = 0
    for a, b in zip(texts, out, strict=True):
        for x, y in zip(a, b, strict=True):
            if x != y:
                changed += 1
                assert script(x) == script(y), (x, y)
                assert unicodedata.category(x) == unicodedata.category(y), (x, y)
    assert changed > 100


@pytest.mark.parametrize("kind", ["char_insert", "char"])
@pytest.mark.parametrize("lang", ["hi", "zh", "ti"])
def test_insertions_stay_in_script(corpus: pl.DataFrame, kind: str, lang: str) -> None:
    texts = texts_of(corpus, lang, 80)
    out = perturb_texts(texts, kind, 0.3, seed=7)
    before = {script(c) for t in texts for c in t if unicodedata.category(c)[0] in "LM"}
    after = {script(c) for t in out for c in t if unicodedata.category(c)[0] in "LM"}
    assert after <= before
    assert out != texts


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match="--noise-rate"):
        check_rate(1.5)
    with pytest.raises(UserError, match="--noise-rate"):
        perturb_texts(["a"], "char", -0.1)
    with pytest.raises(UserError, match="--noise-kinds.*typo"):
        parse_noise_kinds("char,typo")
    with pytest.raises(UserError, match="--noise-seed"):
        perturb_texts(["a"], "char", 0.1, seed=-1)
    assert parse_noise_kinds(" char , synonym,char") == ("char", "synonym")
    assert noise_label("char", 0.1) == "char@0.1"
