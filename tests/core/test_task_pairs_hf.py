"""Sentence pairs from Hugging Face datasets (save_to_disk folders in the hub's layouts)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.task.pairs_io import read_pairs
from xrdiag.errors import UserError

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

# PAWS-X as the hub's `paws-x` configs have it: id, sentence1, sentence2, label.
PAWSX = {
    "id": [1, 2, 3],
    "sentence1": ["Der Hund schläft.", "Es regnet.", "Sie liest ein Buch."],
    "sentence2": ["Der Hund schläft tief.", "Regnet es?", "Ein Buch liest sie."],
    "label": [1, 0, 1],
}
# XNLI as the per-language `xnli` configs have it: a premise with its three hypotheses.
XNLI = {
    "premise": ["Il pleut.", "Il pleut.", "Il pleut.", "Le chat dort."],
    "hypothesis": ["Il fait mauvais.", "Il fait beau.", "Il neige.", "Un animal dort."],
    "label": [0, 2, 1, 0],
}


def save(tmp_path: Path, name: str, **splits: dict) -> Path:
    folder = tmp_path / name
    parts = {split: datasets.Dataset.from_dict(d) for split, d in splits.items()}
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    return folder


def test_pawsx_layout_every_split(tmp_path: Path) -> None:
    folder = save(tmp_path, "pawsx", train=PAWSX, validation=PAWSX, test=PAWSX)
    pairs = read_pairs(f"hf:{folder}?lang=de")
    frame = pairs.frame
    assert frame.height == 9 and pairs.has_split and pairs.num_labels == 2
    assert sorted(set(frame["split"])) == ["dev", "test", "train"]
    assert set(frame["lang1"]) == set(frame["lang2"]) == {"de"}
    dev = frame.filter(pl.col("split") == "dev").sort("pair_id")
    assert dev["id"].to_list() == ["validation:1", "validation:2", "validation:3"]
    assert dev["sentence2"].to_list() == PAWSX["sentence2"]
    assert dev["label"].to_list() == PAWSX["label"]


def test_xnli_layout_premise_is_the_cluster(tmp_path: Path) -> None:
    folder = save(tmp_path, "xnli", validation=XNLI, test=XNLI)
    pairs = read_pairs(f"hf:{folder}@test?lang=sw", num_labels=3)
    frame = pairs.frame
    assert frame.height == 4 and set(frame["split"]) == {"test"}
    assert frame["sentence1"].to_list() == XNLI["premise"]
    assert frame["sentence2"].to_list() == XNLI["hypothesis"]
    ids = frame["id"].to_list()
    assert ids[0] == ids[1] == ids[2] != ids[3]  # three hypotheses of one premise: one cluster


def test_columns_mapped_and_languages_from_columns(tmp_path: Path) -> None:
    data = {"a": ["Hello.", "Bye."], "b": ["Bonjour.", "Merci."], "y": [1, 0],
            "l1": ["en", "en"], "l2": ["fr", "fr"]}  # fmt: skip
    folder = save(tmp_path, "mapped", train=data)
    frame = read_pairs(f"hf:{folder}?sentence1=a,sentence2=b,label=y,lang1=l1,lang2=l2").frame
    assert frame["lang2"].to_list() == ["fr", "fr"] and frame["label"].to_list() == [1, 0]


def test_bad_hf_pairs_are_one_line(tmp_path: Path) -> None:
    folder = save(tmp_path, "pawsx", train=PAWSX)
    with pytest.raises(UserError, match="no language for the sentences"):
        read_pairs(f"hf:{folder}")
    with pytest.raises(UserError, match=r"no column 'sentence1'"):
        read_pairs(f"hf:{save(tmp_path, 'other', train={'x': ['a'], 'label': [1]})}?lang=de")
    unlabelled = {**PAWSX, "label": [1, -1, 0]}  # the hub's "no gold label"
    with pytest.raises(UserError, match=r"row 2, column 'label': '-1'") as info:
        read_pairs(f"hf:{save(tmp_path, 'minus', test=unlabelled)}?lang=de")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="not KEY=COLUMN"):
        read_pairs(f"hf:{folder}?lang=de,premise")


def test_a_training_config_accepts_an_hf_pairs_source(tmp_path: Path) -> None:
    from xrdiag.core.training.config import load_config

    source = f"hf:{save(tmp_path, 'pawsx', train=PAWSX)}?lang=de"
    cfg = load_config(None, ["objective.kind=pair_classification",
                             f"objective.pairs_file={source}"])  # fmt: skip
    assert cfg.objective.pairs_file == source
