"""xSIM against a naive computation of LASER's definition (full matrices, explicit loops)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from xrdiag.analyses.xsim import xsim_results


def naive_xsim(src: np.ndarray, tgt: np.ndarray, k: int = 4) -> tuple[float, np.ndarray]:
    """LASER's xsim with the ratio margin, written out: (percent, per-query error flags)."""
    x = src / np.linalg.norm(src, axis=1, keepdims=True)
    y = tgt / np.linalg.norm(tgt, axis=1, keepdims=True)
    sim = x.astype(np.float64) @ y.T.astype(np.float64)
    mx = np.array([np.sort(row)[-k:].mean() for row in sim])  # x's k nearest targets
    my = np.array([np.sort(col)[-k:].mean() for col in sim.T])  # y's k nearest sources
    errors = []
    for i in range(len(x)):
        margin = sim[i] / (mx[i] / 2 + my / 2)
        best = margin.max()
        winners = np.flatnonzero(margin >= best - 1e-6)  # a tie with the gold is an error
        errors.append(not (winners.size == 1 and winners[0] == i))
    flags = np.array(errors)
    return 100.0 * flags.mean(), flags


def _data(n: int, dim: int, noise: float, seed: int) -> tuple[np.ndarray, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim))
    langs = ["en", "fr", "sw"]
    rows = [base + noise * rng.normal(size=(n, dim)) for _ in langs]
    meta = pl.DataFrame(
        {
            "id": [f"s{i}" for _ in langs for i in range(n)],
            "lang": [lang for lang in langs for _ in range(n)],
            "domain": [("news", "travel")[i % 2] for _ in langs for i in range(n)],
        }
    )
    return np.concatenate(rows).astype(np.float32), meta


@pytest.mark.parametrize("noise", [0.8, 1.5])
def test_xsim_equals_the_naive_laser_definition(noise: float) -> None:
    emb, meta = _data(60, 16, noise, seed=3)
    res = xsim_results(emb, meta, layer=0, bootstrap=0)
    langs = ["en", "fr", "sw"]
    for a in langs:
        for b in langs:
            if a == b:
                continue
            want, flags = naive_xsim(emb[meta["lang"] == a], emb[meta["lang"] == b])
            row = res.filter(
                (pl.col("src_lang") == a) & (pl.col("tgt_lang") == b) & (pl.col("domain") == "all")
            )
            assert row["value"][0] == pytest.approx(want, abs=1e-9)
            assert row["n"][0] == 60
            news = res.filter(
                (pl.col("src_lang") == a) & (pl.col("tgt_lang") == b) & (pl.col("domain") == "news")
            )
            assert news["value"][0] == pytest.approx(100.0 * flags[0::2].mean(), abs=1e-9)
    assert 0 < res["value"].max() < 100  # the noise makes some, not all, errors


def test_pivot_and_partial_overlap() -> None:
    """With a pivot only pairs with it are scored; ids missing on one side leave the pool."""
    emb, meta = _data(30, 8, 0.5, seed=1)
    keep = ~((meta["lang"] == "sw") & pl.Series(np.arange(90) % 30 >= 20)).to_numpy()
    res = xsim_results(emb[keep], meta.filter(pl.Series(keep)), layer=0, pivot="en", bootstrap=20)
    pairs = set(zip(res["src_lang"], res["tgt_lang"], strict=True))
    assert pairs == {("fr", "en"), ("en", "fr"), ("sw", "en"), ("en", "sw")}
    sw = res.filter((pl.col("src_lang") == "sw") & (pl.col("domain") == "all"))
    assert sw["n"][0] == 20
    assert (res["ci_low"] <= res["value"]).all() and (res["value"] <= res["ci_high"]).all()
