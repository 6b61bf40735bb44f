"""The eval pipeline end to end on the tiny encoder: files, manifest, cache reuse, wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.registry import parse_analyses
from xrdiag.analyses.retrieval import retrieval_results
from xrdiag.analyses.schema import PRIMARY_RECALL as PRIMARY
from xrdiag.analyses.schema import validate_results
from xrdiag.core.corpus import load_corpus
from xrdiag.core.encoding.encoder import Encoder
from xrdiag.core.evaluate import EvalOptions, run_eval
from xrdiag.errors import UserError
from xrdiag.report.tables import summary_frame

LANGS = "en,fr,zh"


def options(**kw: object) -> EvalOptions:
    base: dict[str, object] = {
        "langs": LANGS,
        "max_per_domain": 12,
        "layers": "1,2",
        "bootstrap": 50,
        "device": "cpu",
    }
    base.update(kw)
    return EvalOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def first_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("eval")
    steps: list[str] = []
    outcome = run_eval(
        str(tiny_model_dir), "default", out, options(), progress=lambda n, d, t: steps.append(n)
    )
    return outcome, steps


def test_writes_results_and_manifest(first_run) -> None:  # type: ignore[no-untyped-def]
    outcome, steps = first_run
    out = outcome.out_dir
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "projection.parquet",
        "queries.parquet",
        "results.parquet",
        "rows.parquet",
    ]
    results = validate_results(pl.read_parquet(out / "results.parquet"))
    assert set(results["analysis"].unique()) == {"retrieval", "xsim", "cka", "probe", "geometry"}
    assert set(results["layer"].unique()) == {1, 2}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["n"] == 6 * 12 * 3
    assert manifest["layers"] == [1, 2]
    assert manifest["embeddings_from_cache"] == []
    assert manifest["analyses_from_cache"] == []
    assert set(manifest["timings_s"]) >= {"encode", "retrieval", "cka", "probe", "total"}
    assert manifest["corpus"]["fingerprint"] == (
        load_corpus("default").filter(langs=LANGS, max_per_domain=12).fingerprint()
    )
    assert "encode" in steps and "projection" in steps
    projection = pl.read_parquet(out / "projection.parquet")
    assert projection.height == 2 * manifest["rows"]["n"]  # every point, both layers


def test_results_equal_the_analyses_on_fresh_embeddings(first_run, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The pipeline feeds the analyses exactly the rows and vectors it claims to."""
    outcome, _ = first_run
    rows = pl.read_parquet(outcome.out_dir / "rows.parquet")
    corpus = load_corpus("default").filter(langs=LANGS, max_per_domain=12)
    assert rows["id"].to_list() == corpus.frame["id"].to_list()
    vectors = Encoder(str(tiny_model_dir), device="cpu").encode(corpus.frame["text"].to_list(), [2])
    direct = retrieval_results(vectors[0], rows, layer=2, bootstrap=50, seed=0)
    piped = outcome.results.filter(
        (pl.col("analysis") == "retrieval")
        & (pl.col("layer") == 2)
        & ~pl.col("metric").str.starts_with("lang_bias")
    ).drop("checkpoint")
    bias = outcome.results.filter(pl.col("metric").str.starts_with("lang_bias_rank_spread"))
    assert set(bias["src_lang"]) == {"en", "fr", "zh"}
    key = ["metric", "src_lang", "tgt_lang", "domain"]
    joined = direct.drop("checkpoint").join(piped, on=key, suffix="_p")
    assert joined.height == direct.height == piped.height
    np.testing.assert_allclose(joined["value"], joined["value_p"], atol=1e-6)


def test_second_run_reuses_cache_and_agrees(first_run, tiny_model_dir, tmp_path):  # type: ignore[no-untyped-def]
    outcome, _ = first_run
    again = run_eval(str(tiny_model_dir), "default", tmp_path, options())
    assert again.manifest["embeddings_from_cache"] == [1, 2]
    # Every analysis is served from the cache (the projection was before too, but unlisted).
    assert again.manifest["analyses_from_cache"] == [
        "retrieval", "xsim", "cka", "probe", "geometry", "projection"
    ]  # fmt: skip
    # A changed option is a different question: recomputed, not served stale.
    other = run_eval(str(tiny_model_dir), "default", tmp_path / "b", options(bootstrap=20))
    assert "retrieval" not in other.manifest["analyses_from_cache"]
    cols = ["analysis", "metric", "layer", "src_lang", "tgt_lang", "domain"]
    a = outcome.results.sort(cols, nulls_last=True)
    b = again.results.sort(cols, nulls_last=True)
    assert a.equals(b)
    pa = pl.read_parquet(outcome.out_dir / "projection.parquet")
    pb = pl.read_parquet(tmp_path / "projection.parquet")
    assert pa.equals(pb)


def test_summary_picks_pivot_rows(first_run) -> None:  # type: ignore[no-untyped-def]
    outcome, _ = first_run
    summary = summary_frame(outcome.results, "en")
    assert summary["lang"].to_list() == ["fr", "zh"]
    want = outcome.results.filter(
        (pl.col("metric") == "recall@1|cos|none")
        & (pl.col("layer") == 2)
        & (pl.col("domain") == "all")
        & (pl.col("src_lang") == "zh")
        & (pl.col("tgt_lang") == "en")
    )["value"][0]
    assert summary.filter(pl.col("lang") == "zh")["R@1 ->en"][0] == want


def test_bad_requests(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--analyses retrieval,nope: unknown nope"):
        parse_analyses("retrieval,nope")
    assert parse_analyses("all")[0] == "retrieval"
    with pytest.raises(UserError, match="--pivot de: not a language of the corpus"):
        run_eval(str(tiny_model_dir), "default", tmp_path, options(pivot="de"))
    with pytest.raises(UserError, match="--langs"):
        run_eval(str(tiny_model_dir), "default", tmp_path, options(langs="en,xx"))
    with pytest.raises(UserError, match="--layers 9"):
        run_eval(str(tiny_model_dir), "default", tmp_path, options(layers="9"))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_bundled_corpus_has_one_pool_per_pair_for_every_domain(tiny_model_dir, tmp_path):  # type: ignore[no-untyped-def]
    """Every domain's queries are ranked among the same candidates: the pair's dev+test rows."""
    opts = EvalOptions(
        analyses=("retrieval",), langs="en,fr,ha", splits="dev,test", bootstrap=0, ks=(1,),
        device="cpu", bias_queries_per_lang=20,
    )  # fmt: skip
    out = run_eval(str(tiny_model_dir), "default", tmp_path / "ev", opts)
    rows = load_corpus("default").filter(langs="en,fr,ha", splits="dev,test").frame
    retrieval = out.results.filter(
        (pl.col("analysis") == "retrieval") & pl.col("tgt_lang").is_not_null()
    )
    for (src, tgt), group in retrieval.group_by("src_lang", "tgt_lang"):
        shared = set(rows.filter(pl.col("lang") == src)["id"]) & set(
            rows.filter(pl.col("lang") == tgt)["id"]
        )
        assert set(group["pool"]) == {len(shared)}, (src, tgt)
        per_domain = group.filter(pl.col("domain") != "all", pl.col("metric") == PRIMARY)
        assert per_domain["n"].sum() == len(shared)  # the domains' queries add up to all
    queries = pl.read_parquet(tmp_path / "ev" / "queries.parquet")
    assert set(queries["pool"]) == set(retrieval["pool"])
