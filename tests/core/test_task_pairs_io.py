"""Pair files: PAWS-X and XNLI in their distributed layouts, the generic schema in four formats,
one-line errors, and training reading the same files."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.task.pairs_io import PAIRS_COLUMNS, read_pairs
from xrdiag.core.training.pairs import labelled_pairs, pair_classification_data
from xrdiag.errors import UserError

PAWS_HEADER = "id\tsentence1\tsentence2\tlabel\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pawsx_tree(root: Path) -> Path:
    """x-final/<lang>/{train,dev_2k,test_2k}.tsv as PAWS-X ships them (quotes unescaped)."""
    final = root / "x-final"
    write(final / "en" / "train.tsv", PAWS_HEADER + '1\tHe said "yes" in 1990 .\t'
          'In 1990 he said "yes" .\t1\n2\tA b c .\tC b a .\t0\n')  # fmt: skip
    for lang, s in (("en", "The cat"), ("fr", "Le chat"), ("zh", "猫")):
        write(final / lang / "dev_2k.tsv", PAWS_HEADER + f"1\t{s} 1\t{s} 2\t1\n2\t{s}\tx\t0\n")
        write(final / lang / "test_2k.tsv", PAWS_HEADER + f"1\t{s} 3\t{s} 4\t0\n")
    write(final / "fr" / "translated_train.tsv", PAWS_HEADER + "1\tmachine\ttraduit\t1\n")
    return final


def xnli_tsv(root: Path) -> Path:
    header = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
              "pairID", "genre", "label1", "label2", "label3", "label4", "label5",
              "sentence1_tokenized", "sentence2_tokenized", "match"]  # fmt: skip
    rows = [
        ("en", "contradiction", 'He is "tall".', "He is short.", "1", "1c", "fiction"),
        ("en", "entailment", 'He is "tall".', "He is tall.", "1", "1e", "fiction"),
        ("fr", "neutral", "Il est grand.", "Il joue.", "1", "1n", "fiction"),
        ("fr", "entailment", "Le rapport.", "Un rapport.", "2", "2e", "government"),
    ]
    lines = ["\t".join(header)]
    for lang, gold, s1, s2, prompt, pair, genre in rows:
        cells = {"language": lang, "gold_label": gold, "sentence1": s1, "sentence2": s2,
                 "promptID": prompt, "pairID": pair, "genre": genre}  # fmt: skip
        lines.append("\t".join(cells.get(h, "x") for h in header))
    return write(root / "xnli.test.tsv", "\n".join(lines) + "\n")


def test_pawsx_directory(tmp_path: Path) -> None:
    data = read_pairs(pawsx_tree(tmp_path))
    f = data.frame
    assert data.format == "pawsx" and data.label_names == ("different", "paraphrase")
    assert f.columns == list(PAIRS_COLUMNS)
    # translated_train (translate-train) is not part of the zero-shot directory read
    assert f.height == 2 + 3 * 3 and "machine" not in f["sentence1"].to_list()
    first = f.filter(pl.col("pair_id") == "en:train:1").row(0, named=True)
    assert first["sentence1"] == 'He said "yes" in 1990 .'  # quotes are text in PAWS-X TSV
    assert (first["id"], first["split"], first["lang1"], first["lang2"], first["label"]) == (
        "train:1", "train", "en", "en", 1,
    )  # fmt: skip
    # the same PAWS-Wiki id in dev and test names different pairs: ids are split-qualified
    assert set(f.filter(pl.col("lang1") == "zh")["id"]) == {"dev:1", "dev:2", "test:1"}
    assert dict(f.group_by("split").len().iter_rows()) == {"train": 2, "dev": 6, "test": 3}
    # one file, named: its language from the directory, translated_train included
    one = read_pairs(tmp_path / "x-final" / "fr" / "translated_train.tsv").frame
    assert one["lang1"].to_list() == ["fr"] and one["split"].to_list() == ["train"]


def test_xnli_tsv_and_jsonl(tmp_path: Path) -> None:
    data = read_pairs(xnli_tsv(tmp_path), num_labels=3)
    f = data.frame
    assert data.format == "xnli" and data.label_names == ("entailment", "neutral", "contradiction")
    assert f["label"].to_list() == [2, 0, 1, 0]
    assert f["domain"].to_list() == ["fiction", "fiction", "fiction", "government"]
    assert f["id"].to_list() == ["test:1", "test:1", "test:1", "test:2"]  # the premise
    assert f["sentence1"][0] == 'He is "tall".' and set(f["split"]) == {"test"}
    rows = [{"language": "en", "gold_label": "neutral", "sentence1": "a", "sentence2": "b",
             "promptID": 7, "pairID": "7n", "genre": "travel"}]  # fmt: skip
    jsonl = write(tmp_path / "j" / "xnli.dev.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    j = read_pairs(jsonl).frame
    assert j.select("id", "label", "split", "domain").row(0) == ("dev:7", 1, "dev", "travel")
    assert read_pairs(tmp_path).frame.height == 4  # a directory: its xnli.*.tsv
    with pytest.raises(UserError, match="XNLI has 3 labels; expected num_labels = 3, got 2"):
        read_pairs(tmp_path / "xnli.test.tsv", num_labels=2)
    bad = write(tmp_path / "b" / "xnli.test.tsv", xnli_tsv(tmp_path).read_text().replace(
        "neutral", "maybe"))  # fmt: skip
    with pytest.raises(UserError, match=r"xnli.test.tsv, row 4, column 'gold_label': 'maybe'"):
        read_pairs(bad)


GENERIC = [
    {"sentence1": "A cat.", "sentence2": "Un chat.", "label": 1, "lang1": "en", "lang2": "fr",
     "domain": "pets", "id": "c1", "split": "train"},
    {"sentence1": "A cat.", "sentence2": "Il pleut.", "label": 0, "lang1": "en", "lang2": "fr",
     "domain": "pets", "id": "c1", "split": "train"},
    {"sentence1": "Rain.", "sentence2": "Pluie.", "label": 1, "lang1": "eng", "lang2": "fr_FR",
     "domain": "weather", "id": "c2", "split": "dev"},
]  # fmt: skip


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_generic_formats_agree(tmp_path: Path, suffix: str) -> None:
    frame = pl.DataFrame(GENERIC)
    path = tmp_path / f"pairs.{suffix}"
    if suffix == "csv":
        frame.write_csv(path)
    elif suffix == "tsv":
        frame.write_csv(path, separator="\t", quote_style="never")
    elif suffix == "jsonl":
        frame.write_ndjson(path)
    else:
        frame.write_parquet(path)
    data = read_pairs(path, num_labels=2)
    f = data.frame
    assert data.format == "pairs" and data.has_split and data.label_names == ("0", "1")
    assert f["lang1"].to_list() == ["en", "en", "en"] and f["lang2"][2] == "fr-FR"
    assert f["label"].dtype == pl.Int64 and f["label"].to_list() == [1, 0, 1]
    assert f["id"].to_list() == ["c1", "c1", "c2"] and f["split"].to_list()[2] == "dev"
    assert f["pair_id"].n_unique() == 3


def test_generic_without_optional_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "sentence1,sentence2,label,lang1,lang2\nA,B,1,en,fr\n"
                 "C,D,0,en,en\n")  # fmt: skip
    data = read_pairs(path)
    f = data.frame
    assert not data.has_split and f["split"].null_count() == 2
    assert f["domain"].to_list() == ["pairs", "pairs"]
    assert f["pair_id"].to_list() == ["2", "3"] and f["id"].to_list() == ["2", "3"]  # file rows


ERRORS = [
    ("sentence1,label,lang1,lang2\nA,1,en,fr\n", "p.csv: missing column(s) sentence2"),
    ("sentence1,sentence2,label,lang1,lang2\n", "p.csv: no rows"),
    ("sentence1,sentence2,label,lang1,lang2\nA,B,1,en,fr\nA,B,7,en,fr\n",
     "p.csv, row 3, column 'label': '7'; expected an integer in 0..1"),
    ("sentence1,sentence2,label,lang1,lang2\nA,B,yes,en,fr\n",
     "p.csv, row 2, column 'label': 'yes'"),
    ("sentence1,sentence2,label,lang1,lang2\nA,,1,en,fr\n",
     "p.csv, row 2, column 'sentence2': empty"),
    ("sentence1,sentence2,label,lang1,lang2\nA,B,1,en,x1\n", "p.csv, row 2, column 'lang2': 'x1'"),
    ("sentence1,sentence2,label,lang1,lang2,split\nA,B,1,en,fr,valid\n",
     "p.csv, row 2, column 'split': 'valid'; expected train, dev or test"),
    ("sentence1,sentence2,label,lang1,lang2,pair_id\nA,B,1,en,fr,p\nC,D,1,en,fr,p\n",
     "p.csv, row 3, column 'pair_id': 'p' repeats row 2"),
    ("sentence1,sentence2,label,lang1,lang2,id,split\nA,B,1,en,fr,s,train\nC,D,1,en,fr,s,dev\n",
     "p.csv, column 'split': id 's' is in splits dev, train"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), ERRORS)
def test_bad_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path / "p.csv", content)
    with pytest.raises(UserError) as info:
        read_pairs(path, num_labels=2)
    text = str(info.value)
    assert message in text and "\n" not in text and str(path) in text


def test_more_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or directory"):
        read_pairs(tmp_path / "none.csv")
    with pytest.raises(UserError, match=r"j.jsonl, row 2: not a JSON object"):
        read_pairs(write(tmp_path / "j.jsonl", '{"sentence1": "a"}\n[1]\n'))
    with pytest.raises(UserError, match=r"expected a .csv, .tsv, .jsonl or .parquet"):
        read_pairs(write(tmp_path / "p.xlsx", "x"))
    with pytest.raises(UserError, match="without PAWS-X"):
        read_pairs((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(
        UserError, match=r"dev_2k.tsv: columns id, text; expected the PAWS-X header"
    ):
        read_pairs(write(tmp_path / "en" / "dev_2k.tsv", "id\ttext\n1\tx\n"))


def test_training_reads_the_same_files(tmp_path: Path) -> None:
    """PAWS-X for training: train split only, en-en when asked; the dev split is held out."""
    final = pawsx_tree(tmp_path)
    every = labelled_pairs(final, 2)  # every row, the sampler's columns
    assert every.columns == ["id", "src_lang", "tgt_lang", "domain", "src_text", "tgt_text",
                             "label"]  # fmt: skip
    assert every.height == 11
    train, dev, names = pair_classification_data(final, 2, ["en-en"])
    assert train.height == 2 and set(train["src_lang"]) == {"en"}
    assert (
        dev.height == 6 and set(dev["split"]) == {"dev"} and set(dev["lang1"]) == {"en", "fr", "zh"}
    )
    assert names == ("different", "paraphrase")
    with pytest.raises(UserError, match="no training pairs in split 'train'.*'fr-fr'"):
        pair_classification_data(final, 2, ["fr-fr"])
    with pytest.raises(UserError, match="objective.train_lang_pairs 'en'"):
        pair_classification_data(final, 2, ["en"])


def test_training_holds_out_dev_ids_without_a_split(tmp_path: Path) -> None:
    from xrdiag.core.corpus import split_of

    lines = ["sentence1,sentence2,label,lang1,lang2,id"]
    lines += [f"s{i},t{i},{i % 2},en,fr,g{i // 2}" for i in range(200)]
    path = write(tmp_path / "p.csv", "\n".join(lines) + "\n")
    train, dev, _ = pair_classification_data(path, 2, ["*-*"])
    held = {f"g{k}" for k in range(100) if split_of(f"g{k}") == "dev"}
    assert set(dev["id"]) == held and 0 < dev.height < 60
    assert train.height + dev.height == 200
    train_ids = {f"g{(int(p) - 2) // 2}" for p in train["id"]}  # pair_id = file row
    assert not train_ids & held
