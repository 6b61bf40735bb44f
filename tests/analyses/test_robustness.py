"""Noise robustness of retrieval against a naive NumPy argmax computation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.retrieval import retrieval_results
from xrdiag.analyses.robustness import parse_metric, query_langs, robustness_results
from xrdiag.analyses.schema import validate_results
from xrdiag.errors import UserError

LANGS = ("de", "en", "fr")
DOMAINS = ("news", "travel")
N_IDS = 24
DIM = 12


def make_data(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], pl.DataFrame]:
    """Translations = a shared vector + language noise; some fr rows missing; two noises."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(N_IDS, DIM))
    rows, vecs = [], []
    for i in range(N_IDS):
        for lang in LANGS:
            if lang == "fr" and i % 7 == 3:
                continue  # queries without a gold document
            rows.append({"id": f"s{i:02d}", "lang": lang, "domain": DOMAINS[i % 2]})
            vecs.append(base[i] + 0.9 * rng.normal(size=DIM))
    clean = np.asarray(vecs)
    noisy = {
        "char@0.1": clean + 0.6 * rng.normal(size=clean.shape),
        "synonym@0.3": clean + 1.5 * rng.normal(size=clean.shape),
    }
    return clean, noisy, pl.DataFrame(rows)


def naive(
    clean: np.ndarray, query: np.ndarray, meta: pl.DataFrame, src: str, tgt: str, domain: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query hits (clean, perturbed) by argmax of float64 cosine, gold by id.

    The pool is the pair's common pool: every target row whose id has a source row, for the
    queries of any domain."""

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    sub = meta.with_row_index("row")
    s = sub.filter(pl.col("lang") == src)
    t = sub.filter((pl.col("lang") == tgt) & pl.col("id").is_in(s["id"].to_list()))
    if domain != "all":
        s = s.filter(pl.col("domain") == domain)
    doc_ids = t["id"].to_list()
    keep = [i for i, x in enumerate(s["id"].to_list()) if x in doc_ids]
    gold = np.array([doc_ids.index(s["id"][i]) for i in keep])
    q_rows = s["row"].to_numpy()[keep]
    docs = unit(clean[t["row"].to_numpy()])
    hit_clean = np.argmax(unit(clean[q_rows]) @ docs.T, axis=1) == gold
    hit_noisy = np.argmax(unit(query[q_rows]) @ docs.T, axis=1) == gold
    return hit_clean.astype(float), hit_noisy.astype(float)


def value(frame: pl.DataFrame, metric: str, src: str, tgt: str, domain: str) -> pl.DataFrame:
    return frame.filter(
        (pl.col("metric") == metric)
        & (pl.col("src_lang") == src)
        & (pl.col("tgt_lang") == tgt)
        & (pl.col("domain") == domain)
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, dict[str, np.ndarray], pl.DataFrame]:
    return make_data()


def test_matches_naive_argmax(data) -> None:  # type: ignore[no-untyped-def]
    clean, noisy, meta = data
    frame = validate_results(robustness_results(clean, noisy, meta, layer=3, bootstrap=0))
    assert set(frame["analysis"]) == {"robustness"}
    assert set(frame["layer"]) == {3}
    pairs = [(s, t) for s in LANGS for t in LANGS if s != t]
    assert frame.height == len(pairs) * (len(DOMAINS) + 1) * (1 + 2 * len(noisy))
    dropped_somewhere = False
    for s, t in pairs:
        for domain in (*DOMAINS, "all"):
            for label, array in noisy.items():
                hc, hn = naive(clean, array, meta, s, t, domain)
                rows = {
                    m: value(frame, m, s, t, domain)
                    for m in ("recall@1|clean", f"recall@1|{label}", f"recall@1_drop|{label}")
                }
                for row in rows.values():
                    assert row.height == 1 and row["n"][0] == hc.size
                    assert row["ci_low"][0] is None
                assert abs(rows["recall@1|clean"]["value"][0] - hc.mean()) < 1e-12
                assert abs(rows[f"recall@1|{label}"]["value"][0] - hn.mean()) < 1e-12
                drop = rows[f"recall@1_drop|{label}"]["value"][0]
                assert abs(drop - (hc.mean() - hn.mean())) < 1e-12
                dropped_somewhere |= drop > 0
    assert dropped_somewhere  # the data are noisy enough for the test to mean something


def test_missing_translations_shrink_n(data) -> None:  # type: ignore[no-untyped-def]
    clean, noisy, meta = data
    frame = robustness_results(clean, noisy, meta, layer=0, bootstrap=0)
    n_en_fr = value(frame, "recall@1|clean", "en", "fr", "all")["n"][0]
    n_fr_en = value(frame, "recall@1|clean", "fr", "en", "all")["n"][0]
    missing = sum(1 for i in range(N_IDS) if i % 7 == 3)
    assert n_en_fr == n_fr_en == N_IDS - missing


def test_clean_recall_equals_retrieval(data) -> None:  # type: ignore[no-untyped-def]
    clean, noisy, meta = data
    ours = robustness_results(clean, noisy, meta, layer=0, bootstrap=0)
    theirs = retrieval_results(
        clean, meta, layer=0, ks=(1,), scorings=("cos",), corrections=("none",), bootstrap=0
    )
    a = ours.filter(pl.col("metric") == "recall@1|clean").select(
        "src_lang", "tgt_lang", "domain", "value", "n"
    )
    b = theirs.filter(pl.col("metric") == "recall@1|cos|none").select(
        "src_lang", "tgt_lang", "domain", "value", "n"
    )
    assert a.sort(pl.all()).equals(b.sort(pl.all()))


def test_identical_queries_drop_nothing(data) -> None:  # type: ignore[no-untyped-def]
    clean, _, meta = data
    frame = robustness_results(clean, {"none@0": clean.copy()}, meta, layer=0, bootstrap=50)
    drops = frame.filter(pl.col("metric").str.starts_with("recall@1_drop"))
    assert drops.height and (drops["value"] == 0).all()
    assert (drops["ci_low"] == 0).all() and (drops["ci_high"] == 0).all()


def test_pivot_queries_only_the_non_pivot_side(data) -> None:  # type: ignore[no-untyped-def]
    clean, noisy, meta = data
    frame = robustness_results(clean, noisy, meta, layer=0, pivot="en", bootstrap=0)
    assert set(zip(frame["src_lang"], frame["tgt_lang"], strict=True)) == {
        ("de", "en"),
        ("fr", "en"),
    }
    assert query_langs(["en", "de", "fr", "de"], "en") == ["de", "fr"]
    assert query_langs(["en", "de"], None) == ["de", "en"]


def test_paired_bootstrap_interval(data) -> None:  # type: ignore[no-untyped-def]
    """CIs follow the documented stream: resample b is the b-th rng.integers(0, n, n)."""
    clean, noisy, meta = data
    b, seed = 200, 5
    frame = robustness_results(clean, noisy, meta, layer=0, bootstrap=b, seed=seed)
    hc, hn = naive(clean, noisy["synonym@0.3"], meta, "de", "fr", "all")
    rng = np.random.default_rng(seed)
    for metric, values in (
        ("recall@1|synonym@0.3", hn),
        ("recall@1_drop|synonym@0.3", hc - hn),
    ):
        rng = np.random.default_rng(seed)
        stats = [values[rng.integers(0, values.size, size=values.size)].mean() for _ in range(b)]
        low, high = np.quantile(stats, [0.025, 0.975])
        row = value(frame, metric, "de", "fr", "all")
        assert abs(row["ci_low"][0] - low) < 1e-12
        assert abs(row["ci_high"][0] - high) < 1e-12


def test_metric_names_parse() -> None:
    assert parse_metric("recall@1_drop|char@0.1") == ("recall@1_drop", "char@0.1")
    assert parse_metric("recall@1|clean") == ("recall@1", "clean")


def test_bad_inputs_are_user_errors(data) -> None:  # type: ignore[no-untyped-def]
    clean, noisy, meta = data
    with pytest.raises(UserError, match="expected shape"):
        robustness_results(clean, {"char@0.1": clean[:-1]}, meta, layer=0)
    with pytest.raises(UserError, match="cannot name a noise"):
        robustness_results(clean, {"a|b": clean}, meta, layer=0)
    with pytest.raises(UserError, match="no perturbed"):
        robustness_results(clean, {}, meta, layer=0)
    bad = clean.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        robustness_results(clean, {"x": bad}, meta, layer=0)
    with pytest.raises(UserError, match="--pivot"):
        robustness_results(clean, noisy, meta, layer=0, pivot="xx")
