"""Malformed corpora: one exact line naming the file, the row, the column and the expectation."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.corpus import Corpus, check_corpus, load_corpus, validate_frame
from xrdiag.errors import UserError

LANG_HINT = "expected 'en', 'pt-BR', 'zh-Hans' or 'ckb'"
FORMATS = ".parquet, .csv, .tsv, .jsonl, .ndjson, .tmx or a gettext locale directory"

# (file name, content, expected message without the "<path>" prefix)
CASES = [
    (
        "missing_col.csv",
        "id,language,text\na,en,hi\n",
        ": missing required column 'lang'; expected columns id, lang, text (optional: domain, split, label); found columns: id, language, text",  # noqa: E501
    ),
    (
        "empty_text.csv",
        "id,lang,text\na,en,hi\na,fr,\n",
        ", line 3, column 'text': empty value; expected a non-empty sentence",
    ),
    (
        "blank_text_after_multiline.csv",
        'id,lang,text\na,en,"two\nlines"\na,fr,"  "\n',
        ", line 4, column 'text': empty value; expected a non-empty sentence",
    ),
    (
        "ragged.csv",
        "id,lang,text\na,en,hi\na,fr,salut,extra\n",
        ", line 3: 4 fields; expected 3 as in the header (id, lang, text)",
    ),
    (
        "short.csv",
        "id,lang,text\na,en,hi\na,fr\n",
        ", line 3: 2 fields; expected 3 as in the header (id, lang, text)",
    ),
    (
        "unterminated.csv",
        'id,lang,text\na,en,"hi\na,fr,salut\n',
        ", line 3: malformed CSV (unexpected end of data); expected properly quoted fields",
    ),
    (
        "dup_header.csv",
        "id,lang,text,text\na,en,hi,x\n",
        ", line 1, column 'text': appears twice in the header; expected unique names",
    ),
    (
        "dup.csv",
        "id,lang,text\na,en,hi\nb,en,yo\na,en,hello\n",
        ", line 4, column 'lang': duplicate (id 'a', lang 'en'), first at line 2; expected one row per id and language",  # noqa: E501
    ),
    (
        "dup_after_normalising.csv",
        "id,lang,text\na,es-LA,hola\na,es-419,hola\n",
        ", line 3, column 'lang': duplicate (id 'a', lang 'es-419': 'es-LA' and 'es-419' both normalise to it), first at line 2; expected one row per id and language",  # noqa: E501
    ),
    (
        "latin1.csv",
        "id,lang,text\na,en,hi\na,fr,caf\xe9\n".encode("latin-1"),
        ", line 3 (byte 29): not valid UTF-8; expected a UTF-8 encoded text file",
    ),
    (
        "bad_lang.csv",
        "id,lang,text\na,en,hi\na,english,hi\nb,english,x\n",
        f", line 3, column 'lang': 'english' is not a language code (primary subtag 'english' is 7 letters long, not 2 or 3); {LANG_HINT} (and 1 more row)",  # noqa: E501
    ),
    ("header_only.csv", "id,lang,text\n", ": no rows; expected at least one sentence"),
    ("empty.csv", "", ": no rows; expected at least one sentence"),
    (
        "bad_split.csv",
        "id,lang,text,split\na,en,hi,train\na,fr,salut,validation\n",
        ", line 3, column 'split': 'validation' is not a split; expected train, dev or test",
    ),
    (
        "split_leak.csv",
        "id,lang,text,split\na,en,hi,train\na,fr,salut,test\n",
        ", line 3, column 'split': id 'a' has split 'test' here and 'train' at line 2; expected one split per id (translations share it)",  # noqa: E501
    ),
    (
        "two_domains.csv",
        "id,lang,text,domain\na,en,hi,x\na,fr,salut,y\n",
        ", line 3, column 'domain': id 'a' has domain 'y' here and 'x' at line 2; expected one domain per id (translations share it)",  # noqa: E501
    ),
    (
        "short.tsv",
        'id\tlang\ttext\na\ten\t"hi" there\na\tfr\n',
        ", line 3: 2 fields; expected 3 as in the header (id, lang, text)",
    ),
    (
        "bad.jsonl",
        '{"id":"a","lang":"en","text":"hi"}\n\n{"id": "a", lang: "fr"}\n',
        ", line 3: malformed JSON (Expecting property name enclosed in double quotes at column 13); expected one JSON object per line",  # noqa: E501
    ),
    (
        "list.jsonl",
        '{"id":"a","lang":"en","text":"hi"}\n["a","fr","x"]\n',
        ", line 2: a JSON list; expected one JSON object per line",
    ),
    (
        "empty_id.ndjson",
        '{"id":"a","lang":"en","text":"hi"}\n\n\n{"id":"","lang":"fr","text":"x"}\n',
        ", line 4, column 'id': empty value; expected a non-empty id",
    ),
    (
        "nested.jsonl",
        '{"id":"a","lang":"en","text":["hi"]}\n',
        ", column 'text': values of type List(String); expected text",
    ),
    ("not.parquet", "hello", None),  # message from the Parquet reader: checked by prefix below
    (
        "bad.tmx",
        '<?xml version="1.0"?>\n<tmx><body>\n<tu><tuv xml:lang="en"><seg>hi</tuv></tu>\n</body></tmx>\n',  # noqa: E501
        ", line 3: malformed XML (mismatched tag); expected a well-formed TMX document",
    ),
    (
        "no_tuv.tmx",
        '<?xml version="1.0"?>\n<tmx><body>\n<tu tuid="1">\n</tu>\n</body></tmx>\n',
        ', line 3: <tu> has no <tuv>; expected <tuv xml:lang=".."><seg>text</seg></tuv>',
    ),
    (
        "no_seg.tmx",
        '<?xml version="1.0"?>\n<tmx><body>\n<tu tuid="1"><tuv xml:lang="en"><seg>hi</seg></tuv>\n<tuv xml:lang="fr"></tuv></tu>\n</body></tmx>\n',  # noqa: E501
        ", line 4: <tuv> has no <seg>; expected <seg>text</seg>",
    ),
    (
        "no_lang.tmx",
        '<?xml version="1.0"?>\n<tmx><body>\n<tu tuid="1"><tuv><seg>hi</seg></tuv></tu>\n</body></tmx>\n',  # noqa: E501
        ", line 3: <tuv> has no xml:lang; expected a language attribute",
    ),
    (
        "laughs.tmx",
        '<?xml version="1.0"?>\n<!DOCTYPE tmx [\n<!ENTITY lol "lol">\n<!ENTITY lol2 "&lol;&lol;">\n]>\n<tmx><body><tu><tuv xml:lang="en"><seg>&lol2;</seg></tuv></tu></body></tmx>\n',  # noqa: E501
        ", line 2: DOCTYPE with an internal subset refused; expected TMX without entity declarations",  # noqa: E501
    ),
    (
        "external.tmx",
        '<?xml version="1.0"?>\n<!DOCTYPE tmx SYSTEM "tmx14.dtd">\n<tmx><body><tu><tuv xml:lang="en"><seg>&ext;</seg></tuv></tu></body></tmx>\n',  # noqa: E501
        ", line 3: undeclared entity refused; expected TMX without entity declarations",
    ),
    (
        "html.tmx",
        '<?xml version="1.0"?>\n<html></html>\n',
        ", line 2: root element <html>; expected <tmx>",
    ),
    (
        "empty.tmx",
        '<?xml version="1.0"?>\n<tmx><body></body></tmx>\n',
        ": no rows; expected at least one sentence",
    ),
    ("sheet.xlsx", "x", f": unknown corpus format '.xlsx'; expected {FORMATS}"),
]


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_malformed_file_gives_one_exact_line(
    name: str, content: str | bytes, expected: str | None, tmp_path: Path
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_corpus(path)
    message = str(info.value)
    assert "\n" not in message
    if expected is None:
        assert message.startswith(f"{path}: not a readable Parquet file (")
        assert message.endswith("); expected Parquet")
    else:
        assert message == f"{path}{expected}"
    assert check_corpus(path)[0] == message  # `corpus info` lists the same first problem


def test_parquet_rows_are_one_based(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pl.DataFrame({"id": ["a", "a"], "lang": ["en", "fr"], "text": ["hi", ""]}).write_parquet(path)
    with pytest.raises(UserError, match=None) as info:
        load_corpus(path)
    assert (
        str(info.value)
        == f"{path}, row 2, column 'text': empty value; expected a non-empty sentence"
    )  # noqa: E501


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(UserError) as info:
        load_corpus(path)
    assert (
        str(info.value) == f"{path}: no such file or directory; expected a corpus file ({FORMATS})"
    )  # noqa: E501


def test_gettext_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as info:
        load_corpus(empty)
    layout = "locale/<lang>/LC_MESSAGES/*.po or *.mo (or <lang>/LC_MESSAGES/...)"
    assert str(info.value) == f"{empty}: no gettext catalogs; expected {layout}"

    po = tmp_path / "po/fr/LC_MESSAGES/a.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid "a"\nmsgstr "b"\n\nmsgid x\n', encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_corpus(tmp_path / "po")
    where = f"{tmp_path / 'po'}/fr/LC_MESSAGES/a.po, line 4"
    assert str(info.value) == f'{where}: msgid without a quoted string; expected msgid "..."'

    mo = tmp_path / "mo/fr/LC_MESSAGES/a.mo"
    mo.parent.mkdir(parents=True)
    mo.write_bytes(b"garbage!" * 4)
    with pytest.raises(UserError) as info:
        load_corpus(tmp_path / "mo")
    where = f"{tmp_path / 'mo'}/fr/LC_MESSAGES/a.mo"
    assert str(info.value) == (
        f"{where}: not a gettext .mo file (bad magic number); expected a catalog compiled by msgfmt"
    )

    bad = tmp_path / "bad/english/LC_MESSAGES/a.po"
    bad.parent.mkdir(parents=True)
    bad.write_text('msgid "a"\nmsgstr "b"\n', encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_corpus(tmp_path / "bad")
    assert str(info.value) == (
        f"{tmp_path / 'bad'}, english/LC_MESSAGES/a.po line 1, column 'lang': 'english' is not a "
        f"language code (primary subtag 'english' is 7 letters long, not 2 or 3); {LANG_HINT}"
    )


def test_validate_frame_lists_every_problem() -> None:
    frame = pl.DataFrame(
        {
            "id": ["a", "a", "b", None, "a"],
            "lang": ["en", "en", "xx", "fr", "fr"],
            "text": ["hi", "", "x", "y", "salut"],
            "split": ["train", "train", "train", "dev", "test"],
        }
    )
    assert validate_frame(frame, "f") == [
        "f, row 4, column 'id': empty value; expected a non-empty id",
        "f, row 2, column 'text': empty value; expected a non-empty sentence",
        f"f, row 3, column 'lang': 'xx' is not a language code ('xx' is not an ISO 639-1 code); {LANG_HINT}",  # noqa: E501
        "f, row 5, column 'split': id 'a' has split 'test' here and 'train' at row 1; expected one split per id (translations share it)",  # noqa: E501
    ]


def test_many_problems_of_one_kind_are_summarised() -> None:
    frame = pl.DataFrame(
        {"id": [str(i) for i in range(30)], "lang": ["en"] * 30, "text": [""] * 30}
    )
    problems = validate_frame(frame, "f")
    assert len(problems) == 21
    assert problems[0] == "f, row 1, column 'text': empty value; expected a non-empty sentence"
    assert problems[-1] == "... and 10 more rows with an empty text"


def test_check_corpus_lists_structure_then_content(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("id,lang,text\na,en,hi\na,fr\n", encoding="utf-8")
    assert check_corpus(path) == [
        f"{path}, line 3: 2 fields; expected 3 as in the header (id, lang, text)",
        f"{path}, line 3, column 'text': empty value; expected a non-empty sentence",
    ]


@pytest.mark.parametrize("ratios", [(0.5, 0.5, 0.5), (1.0, 0.0), (1.2, -0.1, -0.1)])
def test_bad_split_ratios(ratios: tuple[float, ...]) -> None:
    with pytest.raises(UserError) as info:
        load_corpus(None, split_ratios=ratios)
    expected = "three non-negative numbers (train, dev, test) summing to 1"
    assert str(info.value) == f"split ratios {ratios}: expected {expected}"


@pytest.fixture(scope="module")
def bundled() -> Corpus:
    return load_corpus(None)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"langs": ["de"]}, "--langs: 'de' is not in the corpus; available: ar, bn, en, es-419, fa, fr, ha, hi, id, kr, lg, ln, om, pt-BR, ru, sw, ti, zh"),  # noqa: E501
        ({"langs": ["english"]}, f"--langs: 'english' is not a language code (primary subtag 'english' is 7 letters long, not 2 or 3); {LANG_HINT}"),  # noqa: E501
        ({"domains": "legal"}, "--domains: 'legal' is not in the corpus; available: conversation, encyclopedia, medical, news, official, travel"),  # noqa: E501
        ({"splits": "val"}, "--splits: 'val' is not a split; expected train, dev or test"),
        ({"max_per_domain": 0}, "--max-per-domain: 0; expected a positive integer"),
        ({"max_per_domain": 2.5}, "--max-per-domain: 2.5; expected a positive integer"),
    ],
)  # fmt: skip
def test_filter_flag_errors(bundled: Corpus, kwargs: dict, expected: str) -> None:
    with pytest.raises(UserError) as info:
        bundled.filter(**kwargs)
    assert str(info.value) == expected


def test_shared_tico19_es_la_duplicate_is_named(tmp_path: Path) -> None:
    """TICO-19 carries es-LA and es-419: loading it whole must say so, not crash."""
    frame = pl.DataFrame(
        {"id": ["x", "x", "x"], "lang": ["en", "es-419", "es-LA"], "text": ["a", "b", "b"]}
    )
    problems = validate_frame(frame, "tico")
    assert problems == [
        "tico, row 3, column 'lang': duplicate (id 'x', lang 'es-419': 'es-419' and 'es-LA' both normalise to it), first at row 2; expected one row per id and language"  # noqa: E501
    ]
