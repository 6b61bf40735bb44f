"""`compare` never re-evaluates on data or weights other than those an eval dir was made with.

A manifest records the corpus by absolute path and fingerprint and the model by fingerprint;
a re-evaluation on the shared rows re-reads both and refuses (exit 2, one line) when either
changed. Nothing of a re-evaluation is left in the temporary directory.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from cli_runner import run_cli as cli

from xrdiag.cli import main
from xrdiag.core.compare import load_comparable

TEXTS = {
    "en": ["the cat sleeps", "a dog runs", "birds sing loudly", "rain falls today",
           "we eat bread", "the sun is hot", "children play outside", "music is loud"],
    "fr": ["le chat dort", "un chien court", "les oiseaux chantent fort", "la pluie tombe",
           "nous mangeons du pain", "le soleil est chaud", "les enfants jouent", "la musique"],
    "de": ["die Katze schläft", "ein Hund rennt", "Vögel singen laut", "Regen fällt heute",
           "wir essen Brot", "die Sonne ist heiß", "Kinder spielen draußen", "Musik ist laut"],
}  # fmt: skip


def write_corpus(path: Path, shift: int = 0) -> Path:
    """A small en/fr/de corpus; `shift` rotates the French texts against their ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "lang", "domain", "text"])
        for i in range(8):
            for lang, texts in TEXTS.items():
                j = (i + shift) % 8 if lang == "fr" else i
                out.writerow([f"s{i}", lang, "news", texts[j]])
    return path


@pytest.fixture
def two_evals(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """Evals of one model on a relative `good.csv`: all languages, and en,fr only."""
    here = tmp_path / "first"
    write_corpus(here / "good.csv")
    monkeypatch.chdir(here)
    base = ["eval", "--model", str(tiny_model_dir), "--corpus", "good.csv", "--ks", "1",
            "--analyses", "retrieval", "--bootstrap", "0", "--device", "cpu"]  # fmt: skip
    for out, langs in (("a", "en,fr,de"), ("b", "en,fr")):
        main_args = [*base, "--out", str(tmp_path / out), "--langs", langs]
        try:
            main(main_args)
        except SystemExit as exc:
            assert not exc.code
    return tmp_path / "a", tmp_path / "b"


def test_manifest_keeps_the_absolute_corpus_path(two_evals: tuple[Path, Path]) -> None:
    manifest = json.loads((two_evals[0] / "manifest.json").read_text())
    assert manifest["corpus"]["source"] == "good.csv"
    assert Path(manifest["corpus"]["path"]).is_absolute()
    assert Path(manifest["corpus"]["path"]) == (two_evals[0].parent / "first" / "good.csv")
    assert Path(manifest["model"]["path"]).is_absolute()


def test_compare_refuses_another_corpus_under_the_same_relative_path(
    two_evals: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = two_evals
    elsewhere = tmp_path / "second"
    write_corpus(elsewhere / "good.csv", shift=3)  # same ids, other French texts
    monkeypatch.chdir(elsewhere)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # From elsewhere, the absolute path still finds the original corpus: no wrong answer.
    code, out, err = cli(["compare", str(a), str(b)], capsys)
    assert code == 0, err
    # The original corpus itself changed: refused, one line, exit 2.
    write_corpus(tmp_path / "first" / "good.csv", shift=3)
    code, out, err = cli(["compare", str(a), str(b), "--fail-if", "recall@1 < -0.5"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert "has changed since it was evaluated" in err and "good.csv" in err
    assert list(scratch.iterdir()) == []  # no xrdiag-compare-* directory left behind


def test_compare_refuses_changed_weights(
    two_evals: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import BertConfig, BertModel

    a, b = two_evals
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    for side in (a, b):
        manifest = json.loads((side / "manifest.json").read_text())
        manifest["model"]["path"] = str(model)
        (side / "manifest.json").write_text(json.dumps(manifest))
    load_comparable([a, b], work_dir=tmp_path / "w1")  # same weights: fine
    torch.manual_seed(7)
    BertModel(BertConfig.from_pretrained(model)).save_pretrained(model, safe_serialization=True)
    with pytest.raises(Exception, match="model .* has changed since it was evaluated"):
        load_comparable([a, b], work_dir=tmp_path / "w2")


def test_fail_if_on_a_metric_that_matches_nothing_exits_2(
    two_evals: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a = str(two_evals[0])
    code, out, err = cli(["compare", a, a, "--fail-if", "recal@1 < -0.02"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert "'recal@1'" in err and "recall@1" in err and "mrr" in err
    code, _, err = cli(["compare", a, a, "--fail-if", "recall@1|cos|none < -0.02"], capsys)
    assert code == 0, err  # a full metric name matches
