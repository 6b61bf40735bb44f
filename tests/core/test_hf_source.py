"""Hugging Face datasets as corpora: save_to_disk folders and the offline hub cache.

Datasets are built in memory with `datasets.Dataset.from_dict`, saved to tmp and read back; the
hub path reads a real cache entry written by the datasets Parquet builder (no network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.corpus import check_corpus, load_corpus
from xrdiag.errors import UserError

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

WIDE = {
    "id": ["s1", "s2", "s3"],
    "domain": ["news", "news", "travel"],
    "en": ["Good morning.", "The bus is late.", "Where is the beach?"],
    "fr": ["Bonjour.", "Le bus est en retard.", None],  # no French for s3
    "de": ["Guten Morgen.", "Der Bus hat Verspätung.", "Wo ist der Strand?"],
    "url": ["a", "b", "c"],  # three letters, but not a language: kept as a column
}


def save(tmp_path: Path, data: dict[str, object] | None = None, **splits: dict) -> Path:
    """A DatasetDict of `splits` (or one Dataset of `data`) written by save_to_disk."""
    folder = tmp_path / "saved"
    if data is not None:
        datasets.Dataset.from_dict(data).save_to_disk(str(folder))
    else:
        parts = {name: datasets.Dataset.from_dict(d) for name, d in splits.items()}
        datasets.DatasetDict(parts).save_to_disk(str(folder))
    return folder


def error_of(source: str, columns: str | None = None) -> str:
    with pytest.raises(UserError) as info:
        load_corpus(source, columns=columns)
    assert check_corpus(source, columns=columns)[0] == str(info.value)
    return str(info.value)


def test_wide_dataset_dict_unpivots_every_split(tmp_path: Path) -> None:
    folder = save(tmp_path, train=WIDE, validation=WIDE, test=WIDE)
    corpus = load_corpus(f"hf:{folder}")
    assert corpus.layout == "hf" and corpus.describe()["layout"] == "hf"
    assert corpus.langs == ["de", "en", "fr"]
    frame = corpus.frame
    assert frame.height == 3 * 8  # 9 cells per split, less the missing French one
    assert sorted(set(frame["hf_split"])) == ["test", "train", "validation"]
    dev = frame.filter(pl.col("hf_split") == "validation")
    assert set(dev["split"]) == {"dev"} and set(dev["id"]) == {
        "validation:s1",
        "validation:s2",
        "validation:s3",
    }
    row = frame.filter((pl.col("id") == "train:s2") & (pl.col("lang") == "fr"))
    assert row.select("domain", "text", "url", "lang_code").row(0) == (
        "news",
        "Le bus est en retard.",
        "b",
        "fr",
    )


def test_one_split_by_name_keeps_its_ids(tmp_path: Path) -> None:
    folder = save(tmp_path, train=WIDE, test=WIDE)
    corpus = load_corpus(f"hf:{folder}@test")
    assert sorted(set(corpus.frame["id"])) == ["s1", "s2", "s3"]
    assert set(corpus.frame["split"]) == {"test"}
    assert error_of(f"hf:{folder}@dev") == (
        f"hf:{folder}@dev: no split 'dev' (available: train, test); expected @SPLIT"
    )


def test_single_dataset_without_ids_numbers_rows_and_hashes_splits(tmp_path: Path) -> None:
    data = {k: v for k, v in WIDE.items() if k != "id"}
    corpus = load_corpus(f"hf:{save(tmp_path, data)}")
    assert sorted(set(corpus.frame["id"])) == ["1", "2", "3"]
    assert set(corpus.frame["hf_split"]) == {"data"}
    assert set(corpus.frame["split"]) <= {"train", "dev", "test"}  # from the id, as for files


def test_translation_struct_column(tmp_path: Path) -> None:
    pairs = [{"de": "Hallo Welt", "en": "Hello world"}, {"de": "Danke", "en": "Thanks"}]
    folder = save(tmp_path, train={"translation": pairs})
    auto = load_corpus(f"hf:{folder}")
    named = load_corpus(f"hf:{folder}?text=translation")
    assert auto.fingerprint() == named.fingerprint()
    assert auto.langs == ["de", "en"]
    assert auto.frame.filter(pl.col("id") == "2")["text"].to_list() == ["Danke", "Thanks"]


def test_long_dataset_with_mapped_columns(tmp_path: Path) -> None:
    data = {
        "sid": ["a", "a", "b", "b"],
        "language": ["eng_Latn", "zho_Hans", "eng_Latn", "zho_Hans"],
        "sentence": ["Hi", "你好", "Tea", "茶"],
        "id": [0, 1, 2, 3],  # a row number: the mapped sid replaces it
    }
    folder = save(tmp_path, test=data)
    corpus = load_corpus(f"hf:{folder}", columns="id=sid,lang=language,text=sentence")
    assert corpus.langs == ["en", "zh-Hans"]
    assert corpus.frame.select("id", "lang", "text").rows()[:2] == [
        ("a", "en", "Hi"),
        ("a", "zh-Hans", "你好"),
    ]
    same = load_corpus(f"hf:{folder}?id=sid,lang=language,text=sentence")
    assert same.fingerprint() == corpus.fingerprint()


def test_columns_named_by_a_pattern(tmp_path: Path) -> None:
    data = {
        "id": [1, 2],
        "sentence_eng_Latn": ["One.", "Two."],
        "sentence_fra_Latn": ["Un.", "Deux."],
        "sentence_srp_Cyrl": ["Један.", "Два."],
    }
    corpus = load_corpus(f"hf:{save(tmp_path, dev=data)}", columns="text=sentence_*")
    assert corpus.langs == ["en", "fr", "sr-Cyrl"]
    assert set(corpus.frame["lang_code"]) == {"eng_Latn", "fra_Latn", "srp_Cyrl"}
    assert set(corpus.frame["split"]) == {"dev"}


def test_empty_sentence_is_located_by_split_row_and_column(tmp_path: Path) -> None:
    bad = dict(WIDE, de=["Guten Morgen.", " ", "Wo ist der Strand?"])
    folder = save(tmp_path, train=WIDE, test=bad)
    assert error_of(f"hf:{folder}") == (
        f"hf:{folder}, test row 2 (column 'de'), column 'text': empty value; "
        "expected a non-empty sentence"
    )


def test_column_spec_errors(tmp_path: Path) -> None:
    folder = save(tmp_path, train=WIDE)
    source = f"hf:{folder}"
    assert error_of(source, "txt=en") == (
        f"{source}, columns: 'txt=en' is not KEY=COLUMN; expected id=COLUMN,lang=COLUMN,"
        "text=COLUMN (also domain=, split=, label=)"
    )
    assert error_of(source, "text=sentence,lang=language").startswith(
        f"{source}, column 'sentence': not in the dataset (found: id, domain, en, fr, de, url);"
    )
    no_langs = save(tmp_path / "x", train={"id": ["1"], "url": ["u"]})
    assert error_of(f"hf:{no_langs}").startswith(
        f"hf:{no_langs}: no language column and no column per language (found: id, url)"
    )


def test_not_a_saved_dataset(tmp_path: Path) -> None:
    assert error_of(f"hf:{tmp_path}") == (
        f"hf:{tmp_path}: cannot be loaded (Directory {tmp_path} is neither a `Dataset` directory "
        "nor a `DatasetDict` directory.); expected a folder written by Dataset.save_to_disk or "
        "DatasetDict.save_to_disk"
    )


def test_columns_only_for_hf_sources() -> None:
    assert error_of("default", "text=en") == (
        "default: --columns is given; expected an hf: dataset for it to map"
    )


def test_missing_datasets_library_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails
    assert error_of(f"hf:{tmp_path}") == (
        f"hf:{tmp_path}: the Hugging Face datasets library is not installed; expected the "
        "datasets library: pip install datasets (or pip install 'xrdiag[hf]')"
    )


MAKE_CACHE = """
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
import datasets
from datasets.packaged_modules.parquet.parquet import Parquet
cache, data = sys.argv[1], sys.argv[2]
pq.write_table(pa.table({"en": ["Hello", "Bye"], "fr": ["Bonjour", "Salut"]}), data)
builder = Parquet(cache_dir=cache, dataset_name="tiny", data_files={"test": data}, hash="0a1b2c3d")
builder.download_and_prepare()
"""

READ = """
import json, sys
from xrdiag.core.corpus import load_corpus
from xrdiag.errors import UserError
try:
    print(json.dumps(load_corpus(sys.argv[1]).describe()))
except UserError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def test_offline_hub_cache(tmp_path: Path) -> None:
    """`hf:owner/name` from the datasets cache with HF_DATASETS_OFFLINE=1 and no network.

    The entry is written by the datasets Parquet builder, then moved where load_dataset files a
    hub dataset (`owner___name/default/<version>/<hash>`), as a download would have left it.
    (The hash stands for the hub revision a download would record.)
    """
    cache = tmp_path / "cache"
    env = dict(
        os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(cache)
    )
    subprocess.run(
        [sys.executable, "-c", MAKE_CACHE, str(cache), str(tmp_path / "t.parquet")],
        env=env,
        check=True,
        capture_output=True,
    )
    (built,) = (cache / "tiny").iterdir()
    (cache / "tiny").rename(cache / "xrdiag-test___tiny")
    (cache / "xrdiag-test___tiny" / built.name).rename(cache / "xrdiag-test___tiny" / "default")

    def read(source: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", READ, source],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    info = read("hf:xrdiag-test/tiny@test")
    assert info["layout"] == "hf" and info["langs"] == ["en", "fr"] and info["n_rows"] == 4
    assert info["split_ids"] == {"train": 0, "dev": 0, "test": 2}
    missing = read("hf:xrdiag-test/absent")["error"]
    assert missing.startswith("hf:xrdiag-test/absent: cannot be loaded (")
    assert missing.endswith(
        "expected a dataset in the local Hugging Face cache (HF_DATASETS_OFFLINE=1)"
    )
