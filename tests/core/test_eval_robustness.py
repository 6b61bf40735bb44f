"""`xrdiag eval --analyses robustness` end to end on the tiny encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.perturb import DEFAULT_KINDS, perturb_texts
from xrdiag.analyses.registry import default_names, parse_analyses
from xrdiag.analyses.robustness import perturbed_queries
from xrdiag.analyses.schema import validate_results
from xrdiag.cache.store import ArrayStore
from xrdiag.cli import main
from xrdiag.core.corpus import load_corpus
from xrdiag.core.data.synonyms import load_lexicon
from xrdiag.core.encoding.encoder import Encoder
from xrdiag.core.evaluate import EvalOptions, run_eval
from xrdiag.errors import UserError

LANGS = "en,fr,zh"
RATE = 0.3


def options(**kw: object) -> EvalOptions:
    base: dict[str, object] = {
        "analyses": ("robustness",),
        "langs": LANGS,
        "max_per_domain": 6,
        "layers": "1,2",
        "bootstrap": 20,
        "device": "cpu",
        "noise_kinds": ("char", "synonym"),
        "noise_rate": RATE,
    }
    base.update(kw)
    return EvalOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def outcome(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_eval(str(tiny_model_dir), "default", tmp_path_factory.mktemp("rob"), options())


def test_results_cover_every_pair_domain_noise_and_layer(outcome) -> None:  # type: ignore[no-untyped-def]
    results = validate_results(pl.read_parquet(outcome.out_dir / "results.parquet"))
    assert set(results["analysis"]) == {"robustness"}
    assert set(results["layer"]) == {1, 2}
    assert set(results["metric"]) == {
        "recall@1|clean",
        "recall@1|char@0.3",
        "recall@1_drop|char@0.3",
        "recall@1|synonym@0.3",
        "recall@1_drop|synonym@0.3",
    }
    pairs = set(zip(results["src_lang"], results["tgt_lang"], strict=True))
    assert pairs == {(s, t) for s in LANGS.split(",") for t in LANGS.split(",") if s != t}
    assert results["domain"].n_unique() == 7  # six domains and "all"
    # One row per (metric, pair, domain, layer): the clean reference is not repeated per noise.
    assert (
        results.group_by("metric", "src_lang", "tgt_lang", "domain", "layer").len()["len"].max()
        == 1
    )
    assert (results.filter(pl.col("domain") == "all")["n"] == 36).all()
    manifest = json.loads((outcome.out_dir / "manifest.json").read_text())
    assert manifest["options"]["noise_kinds"] == ["char", "synonym"]
    assert manifest["options"]["noise_rate"] == RATE


def test_values_match_direct_encoding_and_argmax(outcome, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Perturb, encode and rank independently of the pipeline: same numbers to 1e-12."""
    corpus = load_corpus("default").filter(langs=LANGS, max_per_domain=6, seed=0)
    frame = corpus.frame
    keys = (frame["id"] + "\x1f" + frame["lang"]).to_list()
    noisy = perturb_texts(frame["text"].to_list(), "char", RATE, seed=0, keys=keys)
    encoder = Encoder(str(tiny_model_dir), device="cpu")
    clean = encoder.encode(frame["text"].to_list(), layers=[2])[0]
    pert = encoder.encode(noisy, layers=[2])[0]

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    results = outcome.results.filter((pl.col("layer") == 2) & (pl.col("domain") == "all"))
    checked = 0
    for src, tgt in (("fr", "en"), ("zh", "fr"), ("en", "zh")):
        s = frame.with_row_index().filter(pl.col("lang") == src)
        t = frame.with_row_index().filter(pl.col("lang") == tgt)
        assert s["id"].to_list() == t["id"].to_list()  # complete translations, same order
        gold = np.arange(s.height)
        docs = unit(clean[t["index"].to_numpy()])
        hc = np.argmax(unit(clean[s["index"].to_numpy()]) @ docs.T, axis=1) == gold
        hn = np.argmax(unit(pert[s["index"].to_numpy()]) @ docs.T, axis=1) == gold
        for metric, expected in (
            ("recall@1|clean", hc.mean()),
            ("recall@1|char@0.3", hn.mean()),
            ("recall@1_drop|char@0.3", hc.mean() - hn.mean()),
        ):
            row = results.filter(
                (pl.col("metric") == metric)
                & (pl.col("src_lang") == src)
                & (pl.col("tgt_lang") == tgt)
            )
            assert abs(row["value"][0] - expected) < 1e-12, (metric, src, tgt)
            checked += 1
    assert checked == 9


def test_rerun_encodes_nothing_new_and_new_seed_does(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = str(tiny_model_dir)
    run_eval(model, "default", tmp_path / "a", options(noise_kinds=("strip_punct",)))
    entries = ArrayStore().info()["entries"]
    again = run_eval(model, "default", tmp_path / "b", options(noise_kinds=("strip_punct",)))
    assert ArrayStore().info()["entries"] == entries
    reseeded = run_eval(
        model, "default", tmp_path / "c", options(noise_kinds=("strip_punct",), noise_seed=1)
    )
    # Layers 1 and 2 of the new texts, and the new results frame (cached like every analysis).
    assert ArrayStore().info()["entries"] == entries + 3
    assert again.results.equals(
        run_eval(model, "default", tmp_path / "d", options(noise_kinds=("strip_punct",))).results
    )
    assert reseeded.results.height == again.results.height


def test_pivot_perturbs_and_queries_only_the_other_side(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = run_eval(
        str(tiny_model_dir),
        "default",
        tmp_path,
        options(pivot="en", noise_kinds=("lowercase", "synonym")),
    )
    pairs = set(zip(out.results["src_lang"], out.results["tgt_lang"], strict=True))
    assert pairs == {("fr", "en"), ("zh", "en")}
    # No English query, so the English-only synonym noise is skipped, not reported as no drop.
    assert not out.results["metric"].str.contains("synonym").any()
    assert out.results["metric"].str.contains("lowercase@0.3").any()
    corpus = load_corpus("default").filter(langs=LANGS, max_per_domain=6, seed=0)
    noisy, rows = perturbed_queries(corpus.frame, "char", RATE, seed=0, pivot="en", lexicon=None)
    assert set(noisy["lang"]) == {"fr", "zh"}
    original = corpus.frame["text"].gather(rows).to_list()
    assert noisy["id"].to_list() == corpus.frame["id"].gather(rows).to_list()
    assert noisy["text"].to_list() != original


def test_synonym_noise_touches_english_only() -> None:
    corpus = load_corpus("default").filter(langs=LANGS, max_per_domain=6, seed=0)
    noisy, rows = perturbed_queries(
        corpus.frame, "synonym", 1.0, seed=0, pivot=None, lexicon=load_lexicon()
    )
    before = corpus.frame.with_columns(after=noisy["text"])
    assert rows.tolist() == list(range(corpus.frame.height))
    changed = before.filter(pl.col("text") != pl.col("after"))
    assert changed.height > 0 and set(changed["lang"]) == {"en"}


def test_analyses_selection_and_option_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert "robustness" not in default_names() and "robustness" not in EvalOptions().analyses
    assert "robustness" in parse_analyses("all")
    assert parse_analyses("retrieval,robustness") == ("retrieval", "robustness")
    assert EvalOptions().noise_kinds == DEFAULT_KINDS
    assert EvalOptions(noise_kinds="char,lowercase").noise_kinds == ("char", "lowercase")
    with pytest.raises(UserError, match="--noise-rate"):
        EvalOptions(noise_rate=1.5)
    with pytest.raises(UserError, match="--noise-kinds"):
        EvalOptions(noise_kinds="char,typos")
    with pytest.raises(UserError, match="--noise-seed"):
        EvalOptions(noise_seed=-3)
    for flags, expected in (
        (["--noise-kinds", "typos"], "--noise-kinds typos"),
        (["--noise-rate", "2"], "--noise-rate 2.0"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "--out", "unused", "--analyses", "robustness", *flags])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
