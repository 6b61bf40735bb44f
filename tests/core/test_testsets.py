"""Standard test sets read as distributed: Tatoeba, FLORES-200, FLORES+ and NTREX-128.

The fixtures under fixtures/testsets are a few sentences of our own in each set's real file
naming (Tatoeba as in LASER's data/tatoeba/v1, FLORES-200 as in flores200_dataset, NTREX as in
its repository, CRLF line ends included). FLORES+ Parquet files are written here with pyarrow,
not with the polars reader under test. Broken variants are copies edited in a tmp folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xrdiag.core.corpus import check_corpus, load_corpus
from xrdiag.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "testsets"


def copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def error_of(source: str | Path) -> str:
    with pytest.raises(UserError) as info:
        load_corpus(source)
    message = str(info.value)
    assert "\n" not in message
    assert check_corpus(source)[0] == message  # `corpus info` reports the same line
    return message


def rows(source: str | Path, lang: str) -> list[tuple[str, str, str, str, str]]:
    frame = load_corpus(source).frame.filter(pl.col("lang") == lang).sort("id")
    return list(frame.select("id", "lang_code", "domain", "split", "text").iter_rows())


# ----------------------------------------------------------------------------- Tatoeba
def test_tatoeba_pairs_scope_ids_and_domains() -> None:
    corpus = load_corpus(FIXTURES / "tatoeba")
    assert corpus.layout == "tatoeba" and corpus.describe()["layout"] == "tatoeba"
    assert corpus.langs == ["de", "en", "fr", "zh"]  # cmn -> zh, eng -> en
    assert corpus.domains == ["cmn-eng", "deu-eng", "fra-eng"]
    assert rows(FIXTURES / "tatoeba", "fr")[2] == (
        "fra-eng:3",
        "fra",
        "fra-eng",
        "test",
        "Où est la gare ?",
    )
    english = corpus.frame.filter(pl.col("lang") == "en")
    assert english.height == 3 + 3 + 2  # one English side per pair, never shared
    assert english.filter(pl.col("id") == "cmn-eng:3")["text"].item() == (
        "This book is very interesting."  # the last line has no final newline
    )
    assert set(corpus.frame["split"]) == {"test"}
    # every id is exactly one pair: XX <-> English
    assert (
        corpus.frame.group_by("id")
        .agg(pl.col("lang").sort())
        .filter(pl.col("lang").list.len() != 2)
        .is_empty()
    )


def test_tatoeba_scheme_file_and_folder_read_the_same_set() -> None:
    folder = load_corpus(FIXTURES / "tatoeba")
    named = load_corpus(f"tatoeba:{FIXTURES / 'tatoeba'}")
    one_file = load_corpus(FIXTURES / "tatoeba" / "tatoeba.fra-eng.fra")
    assert folder.fingerprint() == named.fingerprint() == one_file.fingerprint()


def test_tatoeba_missing_partner_file(tmp_path: Path) -> None:
    folder = copy("tatoeba", tmp_path)
    (folder / "tatoeba.deu-eng.eng").unlink()
    assert error_of(folder) == (
        f"{folder / 'tatoeba.deu-eng.deu'}: missing partner file tatoeba.deu-eng.eng; expected "
        "both files of the pair (Tatoeba files named tatoeba.XXX-eng.XXX and tatoeba.XXX-eng.eng "
        "(XXX: ISO 639-3))"
    )


def test_tatoeba_different_line_counts(tmp_path: Path) -> None:
    folder = copy("tatoeba", tmp_path)
    with (folder / "tatoeba.fra-eng.fra").open("a") as fh:
        fh.write("Une ligne de trop.\n")
    assert error_of(folder) == (
        f"{folder / 'tatoeba.fra-eng.fra'}: 4 lines, but tatoeba.fra-eng.eng has 3; expected "
        "line-aligned files of equal length (one sentence per line, line N of every file a "
        "translation of line N)"
    )


def test_tatoeba_unknown_language_code(tmp_path: Path) -> None:
    folder = copy("tatoeba", tmp_path)
    for side in ("french", "eng"):
        (folder / f"tatoeba.french-eng.{side}").write_text("x\n")
    message = error_of(folder)
    assert message.startswith(
        f"{folder / 'tatoeba.french-eng.french'}: unknown language code: 'french' is not a "
        "language code (primary subtag 'french' is 6 letters long, not 2 or 3); expected Tatoeba"
    )


# ----------------------------------------------------------------------------- FLORES-200
def test_flores200_splits_ids_domains_and_scripts() -> None:
    corpus = load_corpus(FIXTURES / "flores200")
    assert corpus.layout == "flores200"
    assert corpus.langs == ["en", "fr", "sr-Cyrl", "zh-Hans"]
    assert rows(FIXTURES / "flores200", "zh-Hans")[:2] == [
        ("dev:1", "zho_Hans", "wikivoyage", "dev", "博物馆九点开门。"),
        ("dev:2", "zho_Hans", "wikinews", "dev", "北方预计有雨。"),
    ]
    test = corpus.filter(splits="test").frame
    assert sorted(set(test["id"])) == ["devtest:1", "devtest:2", "devtest:3", "devtest:4"]
    assert set(test["domain"]) == {"general"}  # no metadata_devtest.tsv beside the files
    dev = corpus.filter(splits="dev").frame
    assert dev.filter(pl.col("id") == "dev:3")["topic"].unique().to_list() == ["sports"]
    assert corpus.aligned_ids() == sorted(set(corpus.frame["id"]))


def test_flores200_split_folder_and_file(tmp_path: Path) -> None:
    devtest = load_corpus(FIXTURES / "flores200" / "devtest")
    assert set(devtest.frame["split"]) == {"test"} and len(devtest) == 16
    one_file = load_corpus(FIXTURES / "flores200" / "dev" / "fra_Latn.dev")
    assert len(one_file) == 28  # a file stands for its whole set


def test_flores200_empty_line(tmp_path: Path) -> None:
    folder = copy("flores200", tmp_path)
    path = folder / "devtest" / "fra_Latn.devtest"
    lines = path.read_text().split("\n")
    lines[1] = "  "
    path.write_text("\n".join(lines))
    assert error_of(f"flores200:{folder}") == (
        f"{path}, line 2: empty line; expected one sentence per line, line N of every file a "
        "translation of line N (no blank lines)"
    )


def test_flores200_not_utf8(tmp_path: Path) -> None:
    folder = copy("flores200", tmp_path)
    path = folder / "dev" / "fra_Latn.dev"
    path.write_bytes("Premiere ligne\nLe musée\nLa finale\n".encode("latin-1"))
    assert error_of(folder) == (
        f"{path}, line 2 (byte 21): not valid UTF-8; expected a UTF-8 encoded text file"
    )


def test_flores200_unknown_script(tmp_path: Path) -> None:
    folder = copy("flores200", tmp_path)
    shutil.copy(folder / "dev" / "fra_Latn.dev", folder / "dev" / "fra_Latx.dev")
    assert error_of(folder) == (
        f"{folder / 'dev' / 'fra_Latx.dev'}: unknown language code: 'Latx' in 'fra_Latx' is not "
        "an ISO 15924 script code; expected FLORES-200 files named like dev/eng_Latn.dev and "
        "devtest/eng_Latn.devtest"
    )


def test_flores200_metadata_must_match_the_lines(tmp_path: Path) -> None:
    folder = copy("flores200", tmp_path)
    with (folder / "metadata_dev.tsv").open("a") as fh:
        fh.write("https://en.wikibooks.org/x\twikibooks\tscience\t\t\n")
    assert error_of(folder) == (
        f"{folder / 'metadata_dev.tsv'}: 4 rows, but eng_Latn.dev has 3 lines; expected one "
        "metadata row per sentence, after the header"
    )


def test_scheme_must_match_the_layout() -> None:
    source = f"flores200:{FIXTURES / 'tatoeba'}"
    assert error_of(source) == (
        f"{source}: a tatoeba layout; expected a FLORES-200 folder with dev/eng_Latn.dev or "
        "devtest/eng_Latn.devtest"
    )
    missing = f"ntrex:{FIXTURES / 'nowhere'}"
    assert error_of(missing).startswith(f"{missing}: no such file or directory; expected an NTREX")


# ----------------------------------------------------------------------------- FLORES+
def write_flores_plus(root: Path) -> Path:
    """dev/ and devtest/ Parquet files as openlanguagedata/flores_plus lays them out."""
    texts = {
        "eng_Latn": ["The museum opens at nine.", "Rain is expected.", "The team won."],
        "cmn_Hans": ["博物馆九点开门。", "预计有雨。", "队伍赢了。"],
        "apc_Arab_nort3139": ["المتحف بيفتح الساعة تسعة.", "متوقع مطر.", "الفريق ربح."],
        "apc_Arab_sout3123": ["المتحف بفتح الساعة تسعة.", "في مطر متوقع.", "الفريق فاز."],
    }
    for split, domains in (("dev", None), ("devtest", ["wikinews", "wikivoyage", "wikibooks"])):
        (root / split).mkdir(parents=True)
        for stem, sentences in texts.items():
            iso, script = stem.split("_")[:2]
            glotto = {"apc_Arab_sout3123": "sout3123"}.get(stem, "nort3139")
            columns = {
                "id": pa.array([0, 1, 2], pa.int64()),
                "iso_639_3": [iso] * 3,
                "iso_15924": [script] * 3,
                "glottocode": [glotto] * 3,
                "text": sentences,
            }
            if domains:
                columns |= {"url": ["https://en.wikinews.org/a"] * 3, "domain": domains}
            pq.write_table(pa.table(columns), root / split / f"{stem}.parquet")
    return root


def test_flores_plus_ids_varieties_and_domains(tmp_path: Path) -> None:
    root = write_flores_plus(tmp_path / "flores_plus")
    corpus = load_corpus(root)
    assert corpus.layout == "flores+" and load_corpus(f"flores+:{root}").layout == "flores+"
    assert corpus.langs == ["apc-x-nort3139", "apc-x-sout3123", "en", "zh-Hans"]
    assert rows(root, "zh-Hans")[0] == ("dev:0", "cmn_Hans", "general", "dev", "博物馆九点开门。")
    assert rows(root, "en")[-1][:4] == ("devtest:2", "eng_Latn", "wikibooks", "test")
    assert corpus.aligned_ids() == sorted(set(corpus.frame["id"]))
    assert "glottocode" in corpus.frame.columns
    assert load_corpus(root / "devtest" / "eng_Latn.parquet").layout == "flores+"


def test_flores_plus_code_column_must_match_the_file_name(tmp_path: Path) -> None:
    root = write_flores_plus(tmp_path / "flores_plus")
    path = root / "dev" / "eng_Latn.parquet"
    table = pq.read_table(path)
    codes = pa.array(["eng", "eng", "fra"])
    pq.write_table(table.set_column(1, "iso_639_3", codes), path)
    assert error_of(root) == (
        f"{path}, row 3, column 'iso_639_3': 'fra' in a file named eng_Latn.parquet; expected 'eng'"
    )


def test_a_long_parquet_file_in_a_dev_folder_stays_a_file(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    path = tmp_path / "dev" / "eng_Latn.parquet"
    table = pa.table({"id": ["a", "a"], "lang": ["en", "fr"], "text": ["hi", "salut"]})
    pq.write_table(table, path)
    assert load_corpus(path).layout == "file"


# ----------------------------------------------------------------------------- NTREX-128
def test_ntrex_source_references_and_publishers() -> None:
    corpus = load_corpus(FIXTURES / "ntrex")
    assert corpus.layout == "ntrex"
    # src eng -> en, srp-Latn -> sr-Latn, zho-TW -> zh-TW; NTREX-additional read from the root;
    # the second Spanish reference (newstest2019-ref-2.spa.txt) is not read
    assert corpus.langs == ["en", "fr", "gsw-BE", "sr-Latn", "zh-TW"]
    assert corpus.domains == ["bbc", "dailymail", "rt"]
    assert rows(FIXTURES / "ntrex", "sr-Latn")[0] == (
        "newstest2019:1",
        "srp-Latn",
        "bbc",
        "test",
        "Savet se sastao u ponedeljak.",  # CRLF line ends: no "\r" left in the text
    )
    assert not corpus.frame["text"].str.contains("\r").any()
    assert corpus.frame.filter(pl.col("id") == "newstest2019:3")["doc_id"].unique().to_list() == [
        "dailymail.co.uk.298595"
    ]


def test_ntrex_without_document_ids_is_news(tmp_path: Path) -> None:
    folder = copy("ntrex", tmp_path)
    (folder / "DOCUMENT_IDS.tsv").unlink()
    corpus = load_corpus(f"ntrex:{folder / 'NTREX-128'}")
    assert corpus.domains == ["news"] and "gsw-BE" in corpus.langs


def test_ntrex_reference_shorter_than_the_source(tmp_path: Path) -> None:
    folder = copy("ntrex", tmp_path)
    path = folder / "NTREX-128" / "newstest2019-ref.fra.txt"
    path.write_bytes(b"\r\n".join(path.read_bytes().split(b"\r\n")[:3]))
    assert error_of(folder) == (
        f"{path}: 3 lines, but newstest2019-src.eng.txt has 4; expected line-aligned files of "
        "equal length (one sentence per line, line N of every file a translation of line N)"
    )


def test_ntrex_missing_source_is_not_an_ntrex_folder(tmp_path: Path) -> None:
    folder = copy("ntrex", tmp_path)
    (folder / "NTREX-128" / "newstest2019-src.eng.txt").unlink()
    source = f"ntrex:{folder}"
    assert error_of(source) == (
        f"{source}: not a known test-set layout; expected an NTREX-128 folder of NTREX files "
        "named newstest2019-src.eng.txt and newstest2019-ref.CODE.txt"
    )


def test_ntrex_document_ids_must_cover_every_line(tmp_path: Path) -> None:
    folder = copy("ntrex", tmp_path)
    (folder / "DOCUMENT_IDS.tsv").write_text("bbc.1\nbbc.1\nbbc.2\n")
    assert error_of(folder).startswith(
        f"{folder / 'DOCUMENT_IDS.tsv'}: 3 lines, but newstest2019-src.eng.txt has 4; expected"
    )


# ----------------------------------------------------------------------------- text details
def test_line_breaks_other_than_newline_stay_inside_a_sentence(tmp_path: Path) -> None:
    folder = copy("tatoeba", tmp_path)
    path = folder / "tatoeba.deu-eng.deu"
    path.write_bytes("\ufeffIch habe\u2028Hunger.\r\nDas Wetter\x85ist schön.\n".encode())
    german = rows(folder, "de")
    assert [r[4] for r in german] == ["Ich habe\u2028Hunger.", "Das Wetter\x85ist schön."]


def test_other_corpora_keep_their_layout_names() -> None:
    assert load_corpus("default").describe()["layout"] == "file"


@pytest.mark.parametrize(
    ("name", "layout"), [("tatoeba", "tatoeba"), ("flores200", "flores200"), ("ntrex", "ntrex")]
)
def test_a_sets_design_is_not_reported_as_problems(name: str, layout: str) -> None:
    """No train split, and Tatoeba's per-pair ids, are how the sets are made: `corpus info`
    shows them as tables, not as problems."""
    info = load_corpus(FIXTURES / name).describe()
    assert info["layout"] == layout and info["problems"] == []


def test_a_corpus_file_inside_a_sets_folder_is_read_as_itself(tmp_path: Path) -> None:
    folder = copy("ntrex", tmp_path)
    mine = folder / "NTREX-128" / "mine.csv"
    mine.write_text("id,lang,text\n1,en,Hello\n1,fr,Bonjour\n")
    assert load_corpus(mine).layout == "file" and len(load_corpus(mine)) == 2
