"""The built paraphrase task on the bundled corpus: labels, kinds, splits, determinism, files."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.core.corpus import load_corpus
from xrdiag.core.data.synonyms import load_lexicon
from xrdiag.core.task.build import TASK_COLUMNS, build_task, task_summary, write_task
from xrdiag.core.task.lang_pairs import expand_pairs, parse_lang_pair, parse_patterns
from xrdiag.core.task.pairs_io import read_pairs
from xrdiag.core.task.rewrites import function_words, swap_words, synonym_rewrite
from xrdiag.core.training.robust import WORD
from xrdiag.errors import UserError

LANGS = ["en", "fr", "zh", "hi"]
CAP = 25  # ids per domain: every split and domain still present, fast


@pytest.fixture(scope="module")
def corpus():
    return load_corpus("default")


@pytest.fixture(scope="module")
def task(corpus) -> pl.DataFrame:
    return build_task(corpus, langs=LANGS, pairs="en-*,zh-en", max_per_domain=CAP, seed=0)


def texts(corpus) -> dict[tuple[str, str], str]:
    f = corpus.frame.filter(pl.col("lang").is_in(LANGS))
    return {(i, lang): t for i, lang, t in f.select("id", "lang", "text").iter_rows()}


def test_rows_labels_and_splits(corpus, task: pl.DataFrame) -> None:
    assert task.columns == list(TASK_COLUMNS)
    pairs = set(task.select("lang1", "lang2").unique().iter_rows())
    assert pairs == {("en", "en"), ("en", "fr"), ("en", "zh"), ("en", "hi"), ("zh", "en")}
    balance = task.group_by("lang1", "lang2", "split").agg(pos=pl.col("label").sum(), n=pl.len())
    assert (balance["pos"] * 2 == balance["n"]).all()  # balanced per (lang1, lang2, split)
    assert set(task["split"]) == {"train", "dev", "test"} and task["pair_id"].is_unique().all()
    meta = corpus.frame.select("id", "domain", "split").unique()
    joined = task.select("id", "domain", "split").unique().join(meta, on="id", suffix="_c")
    assert (joined["split"] == joined["split_c"]).all()
    assert (joined["domain"] == joined["domain_c"]).all()
    kinds = Counter(task.filter(pl.col("label") == 0)["kind"].to_list())
    assert set(kinds) == {"neighbour", "swap"}
    assert abs(kinds["neighbour"] - kinds["swap"]) < 0.1 * sum(kinds.values())  # half each
    summary = task_summary(task)
    assert summary["n"].sum() == task.height


def test_positives_and_negatives(corpus, task: pl.DataFrame) -> None:
    text = texts(corpus)
    lex = load_lexicon()
    for row in task.iter_rows(named=True):
        i, l1, l2, s2 = row["id"], row["lang1"], row["lang2"], row["sentence2"]
        assert row["sentence1"] == text[(i, l1)]
        if row["kind"] == "positive":
            if l1 != l2:
                assert s2 == text[(i, l2)]  # the translation
            else:  # an English paraphrase: some words replaced by lexicon neighbours
                a, b = WORD.findall(row["sentence1"]), WORD.findall(s2)
                changed = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
                assert s2 != row["sentence1"] and len(a) == len(b) and changed
                for x, y in changed:
                    assert y.lower() in lex.get(x.lower(), []), (x, y)
    pos = task.filter(pl.col("kind") == "positive").select("id", "lang1", "lang2", p="sentence2")
    neg = task.filter(pl.col("label") == 0).join(pos, on=["id", "lang1", "lang2"])
    assert neg.height == pos.height  # one negative per positive
    assert (neg["sentence2"] != neg["p"]).all() and (neg["sentence2"] != neg["sentence1"]).all()
    ids_of = {}
    for i, lang, t in corpus.frame.select("id", "lang", "text").iter_rows():
        ids_of.setdefault((lang, t), set()).add(i)
    meta = {i: (d, s) for i, d, s in corpus.frame.select("id", "domain", "split").iter_rows()}
    for row in neg.iter_rows(named=True):
        if row["kind"] == "swap":  # the same characters, in another order
            assert sorted(row["sentence2"]) == sorted(row["p"])
        else:  # another id's sentence, same domain and split
            others = ids_of[(row["lang2"], row["sentence2"])] - {row["id"]}
            assert any(meta[o] == meta[row["id"]] for o in others)


def test_deterministic_and_pairs_independent(corpus, task: pl.DataFrame) -> None:
    again = build_task(corpus, langs=LANGS, pairs="en-*,zh-en", max_per_domain=CAP, seed=0)
    assert again.equals(task)
    alone = build_task(corpus, langs=LANGS, pairs="en-fr", max_per_domain=CAP, seed=0)
    assert alone.equals(task.filter((pl.col("lang1") == "en") & (pl.col("lang2") == "fr")))
    other = build_task(corpus, langs=LANGS, pairs="en-fr", max_per_domain=CAP, seed=1)
    assert not other.equals(alone)


def test_hard_neighbours_under_the_encoder(corpus, tiny_model_dir: Path) -> None:
    """A neighbour negative is the nearest other same-domain lang2 sentence under the model."""
    from xrdiag.core.encoding.encoder import Encoder

    task = build_task(corpus, langs=["en", "fr"], pairs="en-fr", max_per_domain=12,
                      model=str(tiny_model_dir), neighbour_share=1.0, device="cpu")  # fmt: skip
    near = task.filter(pl.col("kind") == "neighbour")
    assert near.height > 0.8 * task.filter(pl.col("label") == 0).height  # 1-id domains: swap
    enc = Encoder(str(tiny_model_dir), device="cpu")
    checked = 0
    for split in ("train", "dev", "test"):
        part = task.filter(pl.col("split") == split)
        pool = part.filter(pl.col("kind") == "positive")
        src = enc.encode(pool["sentence1"].to_list())[0]
        tgt = enc.encode(pool["sentence2"].to_list())[0]
        src /= np.linalg.norm(src, axis=1, keepdims=True)
        tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
        ids, domains = pool["id"].to_list(), pool["domain"].to_list()
        s1, s2 = pool["sentence1"].to_list(), pool["sentence2"].to_list()
        for row in part.filter(pl.col("kind") == "neighbour").iter_rows(named=True):
            i = ids.index(row["id"])
            ok = [
                j
                for j in range(len(ids))
                if j != i and domains[j] == domains[i] and s2[j] != s2[i] and s1[j] != s1[i]
            ]
            best = max(ok, key=lambda j: float(src[i] @ tgt[j]))  # noqa: B023
            assert row["sentence2"] == s2[best]
            checked += 1
    assert checked == near.height


def test_written_atomically_and_read_back(task: pl.DataFrame, tmp_path: Path) -> None:
    path = write_task(task, tmp_path / "out" / "task.parquet")
    assert sorted(p.name for p in path.parent.iterdir()) == ["task.parquet"]
    back = read_pairs(path, num_labels=2)
    assert back.frame.height == task.height and back.has_split
    assert back.frame.select(task.columns).equals(task)


def test_bad_requests(corpus) -> None:
    with pytest.raises(UserError, match="same-language pairs need paraphrases"):
        build_task(corpus, langs=["en", "fr"], pairs="fr-fr", max_per_domain=5)
    with pytest.raises(UserError, match="'de' is not among the languages"):
        build_task(corpus, langs=["en", "fr"], pairs="en-de", max_per_domain=5)
    with pytest.raises(UserError, match="--neighbour-share"):
        build_task(corpus, langs=["en", "fr"], neighbour_share=2.0)


def test_language_pair_patterns() -> None:
    assert parse_lang_pair("en-fr") == ("en", "fr")
    assert parse_lang_pair("en-es-419") == ("en", "es-419")
    assert parse_lang_pair("es-LA-*") == ("es-419", "*")
    assert parse_lang_pair("en:pt-br") == ("en", "pt-BR")
    assert parse_lang_pair("pt-br-en", known=["en", "pt-BR"]) == ("pt-BR", "en")
    with pytest.raises(UserError, match="ambiguous.*lang1:lang2"):
        parse_lang_pair("pt-br-en")  # (pt, br-EN) or (pt-BR, en)
    with pytest.raises(UserError, match="expected lang1-lang2"):
        parse_lang_pair("english")
    langs = ["en", "fr", "zh"]
    assert expand_pairs(parse_patterns("*-*"), langs, monolingual=["en"]) == [
        ("en", "en"), ("en", "fr"), ("en", "zh"), ("fr", "en"), ("fr", "zh"), ("zh", "en"),
        ("zh", "fr"),
    ]  # fmt: skip
    assert expand_pairs(parse_patterns("*-en,en-zh"), langs) == [
        ("en", "zh"), ("fr", "en"), ("zh", "en"),
    ]  # fmt: skip


def test_rewrites() -> None:
    function = function_words(["the cat and the dog", "the bird and a fish"] * 3)
    assert {"the", "and"} <= function
    rng = random.Random(0)
    swapped = swap_words("Paris is bigger than the small Lyon today", function, rng)
    assert swapped is not None and swapped.startswith("Paris ")  # the first word stays
    assert sorted(swapped.split()) == sorted("Paris is bigger than the small Lyon today".split())
    assert swap_words("Only one word", frozenset({"one", "word"}), rng) is None
    zh = swap_words("您的亲属有同样的症状吗", frozenset(), rng)
    assert zh is not None and sorted(zh) == sorted("您的亲属有同样的症状吗")
    assert zh != "您的亲属有同样的症状吗"
    lex = {"cat": ["kitten"], "big": ["large", "huge", "giant"]}
    out = synonym_rewrite("The big cat sleeps", lex, frozenset({"the"}), random.Random(1))
    assert out in ("The large cat sleeps", "The huge cat sleeps", "The big kitten sleeps")
    assert synonym_rewrite("The dog", lex, frozenset(), random.Random(1)) is None
