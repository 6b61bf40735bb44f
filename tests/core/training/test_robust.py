"""Robust training: RS-RP noise, RS-DA synonym substitution, FGSM and PGD in embedding space."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch

import xrdiag
from xrdiag.core.data.synonyms import DEFAULT_LEXICON, load_lexicon
from xrdiag.core.training.objectives import info_nce, pool
from xrdiag.core.training.robust import (
    SynonymSubstituter,
    adversarial_perturbation,
    fgsm_perturbation,
    pgd_perturbation,
    project,
    rs_rp_noise,
)
from xrdiag.errors import UserError

BUNDLED = Path(xrdiag.__file__).parent / "core" / "data" / "tico19_subset.parquet"
# The test's own word pattern (Latin letters, inner apostrophes), independent of the module's.
TEST_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:['\u2019][A-Za-z\u00c0-\u024f]+)*")


@pytest.fixture(scope="module")
def lexicon() -> dict[str, list[str]]:
    return load_lexicon("default")


@pytest.fixture(scope="module")
def english() -> list[str]:
    frame = pl.read_parquet(BUNDLED, columns=["lang", "text"]).filter(pl.col("lang") == "en")
    texts = frame["text"].to_list()
    return texts[:: max(1, len(texts) // 150)][:150]


# --- RS-RP -------------------------------------------------------------------------------------


def test_gaussian_noise_has_the_configured_scale() -> None:
    embeds = torch.full((64, 32, 32), 5.0)
    sigma = 0.03
    noise = rs_rp_noise(embeds, "gaussian", sigma, torch.Generator().manual_seed(0))
    assert noise.shape == embeds.shape and noise.dtype == embeds.dtype
    # 65,536 draws: the std of the sample std is sigma / sqrt(2n) ~ 0.3 % of sigma.
    assert float(noise.std()) == pytest.approx(sigma, rel=0.02)
    assert abs(float(noise.mean())) < 4 * sigma / 256


def test_uniform_noise_stays_in_bounds_with_the_right_spread() -> None:
    embeds = torch.zeros(64, 32, 32)
    sigma = 0.05
    noise = rs_rp_noise(embeds, "uniform", sigma, torch.Generator().manual_seed(1))
    assert float(noise.abs().max()) <= sigma
    assert float(noise.max()) > 0.99 * sigma and float(noise.min()) < -0.99 * sigma
    assert float(noise.std()) == pytest.approx(sigma / 3**0.5, rel=0.02)


def test_noise_is_seeded_masked_and_zero_at_sigma_zero() -> None:
    embeds = torch.zeros(3, 4, 8)
    a = rs_rp_noise(embeds, "gaussian", 0.1, torch.Generator().manual_seed(7))
    b = rs_rp_noise(embeds, "gaussian", 0.1, torch.Generator().manual_seed(7))
    c = rs_rp_noise(embeds, "gaussian", 0.1, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    masked = rs_rp_noise(embeds, "uniform", 0.1, torch.Generator().manual_seed(7), mask=mask)
    assert torch.all(masked[mask == 0] == 0) and torch.all(masked[mask == 1] != 0)
    assert torch.all(rs_rp_noise(embeds, "gaussian", 0.0) == 0)
    with pytest.raises(ValueError):
        rs_rp_noise(embeds, "laplace", 0.1)
    with pytest.raises(ValueError):
        rs_rp_noise(embeds, "gaussian", -0.1)


# --- RS-DA -------------------------------------------------------------------------------------


def test_shipped_lexicon_and_license(lexicon: dict[str, list[str]]) -> None:
    assert len(lexicon) == 49975
    assert sum(1 for v in lexicon.values() if v) == 25591
    assert "film" in lexicon["movie"]
    assert (DEFAULT_LEXICON.parent / "LICENSE-Apache-2.0.txt").is_file()
    assert "Apache" in (DEFAULT_LEXICON.parent / "PROVENANCE.md").read_text()


def test_rs_da_only_substitutes_listed_neighbours(
    lexicon: dict[str, list[str]], english: list[str]
) -> None:
    substituted = 0
    for seed in range(4):
        sub = SynonymSubstituter(lexicon, seed=seed)
        for text in english:
            new = sub.substitute(text, p=1.0)
            old_words, new_words = TEST_WORD.findall(text), TEST_WORD.findall(new)
            # Everything between the words (spaces, digits, punctuation) is untouched.
            assert TEST_WORD.split(text) == TEST_WORD.split(new)
            assert len(old_words) == len(new_words)
            for old, replacement in zip(old_words, new_words, strict=True):
                if old == replacement:
                    continue
                key = old.lower().replace("\u2019", "'")
                assert replacement.lower().replace("\u2019", "'") in lexicon[key], (
                    old,
                    replacement,
                )
                substituted += 1
    assert substituted > 500


def test_rs_da_with_p_zero_changes_nothing(
    lexicon: dict[str, list[str]], english: list[str]
) -> None:
    sub = SynonymSubstituter(lexicon, seed=0)
    assert [sub.substitute(t, p=0.0) for t in english] == english


def test_rs_da_sentence_probability(lexicon: dict[str, list[str]]) -> None:
    sub = SynonymSubstituter({"movie": ["film"]}, seed=3)
    # A changed sentence needs the sentence drawn (p) and then "film" drawn (1/2).
    changed = sum(sub.substitute("movie", p=0.4) != "movie" for _ in range(4000))
    assert changed / 4000 == pytest.approx(0.2, abs=0.03)


def test_rs_da_draws_uniformly_over_word_and_neighbours(lexicon: dict[str, list[str]]) -> None:
    sub = SynonymSubstituter(lexicon, seed=11)
    options = ["movie", *lexicon["movie"]]
    draws = Counter(sub.substitute("movie", p=1.0) for _ in range(450 * len(options)))
    assert set(draws) == set(options)
    for option in options:
        assert draws[option] == pytest.approx(450, abs=90)


def test_rs_da_keeps_case_and_apostrophes() -> None:
    sub = SynonymSubstituter({"movie": ["film"], "it's": ["that's"]}, seed=0)
    seen = {sub.substitute("Movie MOVIE movie it\u2019s.", p=1.0) for _ in range(200)}
    assert "Film FILM film that\u2019s." in seen
    for text in seen:
        first, second, third, fourth = text[:-1].split(" ")
        assert first in ("Movie", "Film") and second in ("MOVIE", "FILM")
        assert third in ("movie", "film") and fourth in ("it\u2019s", "that\u2019s")


def test_rs_da_is_seeded_and_resumable(lexicon: dict[str, list[str]], english: list[str]) -> None:
    first = SynonymSubstituter(lexicon, seed=5)
    again = SynonymSubstituter(lexicon, seed=5)
    assert [first.substitute(t) for t in english[:20]] == [
        again.substitute(t) for t in english[:20]
    ]
    state = json.loads(json.dumps(first.state_dict()))
    expected = [first.substitute(t, p=0.5) for t in english[20:40]]
    resumed = SynonymSubstituter(lexicon, seed=999)
    resumed.load_state_dict(state)
    assert [resumed.substitute(t, p=0.5) for t in english[20:40]] == expected
    copies = SynonymSubstituter(lexicon, seed=1).copies("The movie was good", 5)
    assert len(copies) == 5 and len(set(copies)) > 1


def test_load_lexicon_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_lexicon(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="bad.json"):
        load_lexicon(bad)
    bad.write_text('{"movie": "film"}')
    with pytest.raises(UserError, match="'movie'"):
        load_lexicon(bad)
    good = tmp_path / "good.json"
    good.write_text('{"movie": ["film"]}')
    assert load_lexicon(good) == {"movie": ["film"]}


# --- FGSM / PGD on the tiny encoder --------------------------------------------------------------


@pytest.fixture(scope="module")
def contrastive_batch(tiny_model_dir: Path) -> dict[str, Any]:
    """The tiny encoder, 8 real en-fr pairs, and a loss closure over the English embeddings."""
    from transformers import AutoModel, AutoTokenizer

    frame = pl.read_parquet(BUNDLED, columns=["id", "lang", "text"])
    en = frame.filter(pl.col("lang") == "en").select("id", pl.col("text").alias("en"))
    fr = frame.filter(pl.col("lang") == "fr").select("id", pl.col("text").alias("fr"))
    pairs = en.join(fr, on="id").sort("id").head(8)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    src = tok(
        pairs["en"].to_list(), padding=True, truncation=True, max_length=48, return_tensors="pt"
    )
    tgt = tok(
        pairs["fr"].to_list(), padding=True, truncation=True, max_length=48, return_tensors="pt"
    )
    with torch.no_grad():
        target = pool(model(**tgt).last_hidden_state, tgt["attention_mask"])
    mask = src["attention_mask"]

    def loss_fn(inputs_embeds: torch.Tensor) -> torch.Tensor:
        hidden = model(inputs_embeds=inputs_embeds, attention_mask=mask).last_hidden_state
        return info_nce(pool(hidden, mask), target, temperature=0.05)

    embeds = model.get_input_embeddings()(src["input_ids"]).detach()
    return {"model": model, "embeds": embeds, "mask": mask, "loss_fn": loss_fn}


def _check_ball(delta: torch.Tensor, mask: torch.Tensor, epsilon: float, norm: str) -> None:
    assert torch.all(delta[mask == 0] == 0)
    if norm == "l2":
        per_example = delta.reshape(delta.shape[0], -1).norm(dim=1)
        assert float(per_example.max()) <= epsilon * (1 + 1e-5)
    else:
        assert float(delta.abs().max()) <= epsilon * (1 + 1e-6)


@pytest.mark.parametrize(("norm", "epsilon"), [("l2", 0.5), ("linf", 0.02)])
def test_fgsm_respects_epsilon_and_raises_the_loss(
    contrastive_batch: dict[str, Any], norm: str, epsilon: float
) -> None:
    embeds, mask = contrastive_batch["embeds"], contrastive_batch["mask"]
    loss_fn: Callable[[torch.Tensor], torch.Tensor] = contrastive_batch["loss_fn"]
    delta = fgsm_perturbation(embeds, loss_fn, epsilon, norm, mask=mask)
    _check_ball(delta, mask, epsilon, norm)
    if norm == "l2":  # a single full step lands on the sphere
        norms = delta.reshape(delta.shape[0], -1).norm(dim=1)
        assert torch.allclose(norms, torch.full_like(norms, epsilon), rtol=1e-5)
    else:
        real = delta[mask == 1]  # sign steps: every coordinate with a gradient moves by epsilon
        assert (
            torch.all(real[real != 0].abs() == epsilon) and float((real != 0).float().mean()) > 0.9
        )
    with torch.no_grad():
        clean, attacked = float(loss_fn(embeds)), float(loss_fn(embeds + delta))
    assert attacked > clean + 1e-4
    assert all(p.grad is None for p in contrastive_batch["model"].parameters())


@pytest.mark.parametrize(("norm", "epsilon"), [("l2", 0.5), ("linf", 0.02)])
def test_pgd_respects_epsilon_and_raises_the_loss(
    contrastive_batch: dict[str, Any], norm: str, epsilon: float
) -> None:
    embeds, mask = contrastive_batch["embeds"], contrastive_batch["mask"]
    loss_fn = contrastive_batch["loss_fn"]
    # step_size * steps > epsilon, so the projection has to act.
    delta = pgd_perturbation(embeds, loss_fn, epsilon, epsilon / 2, 4, norm, mask=mask)
    _check_ball(delta, mask, epsilon, norm)
    with torch.no_grad():
        clean, attacked = float(loss_fn(embeds)), float(loss_fn(embeds + delta))
    assert attacked > clean + 1e-4
    rand = pgd_perturbation(
        embeds,
        loss_fn,
        epsilon,
        epsilon / 2,
        2,
        norm,
        mask=mask,
        random_start=True,
        generator=torch.Generator().manual_seed(0),
    )
    _check_ball(rand, mask, epsilon, norm)
    same = adversarial_perturbation(
        "pgd",
        embeds,
        loss_fn,
        epsilon=epsilon,
        step_size=epsilon / 2,
        steps=4,
        norm=norm,
        mask=mask,
    )
    assert torch.allclose(same, delta)
    with pytest.raises(ValueError):
        pgd_perturbation(embeds, loss_fn, epsilon, epsilon / 2, 0, norm)


def test_projection_onto_the_balls() -> None:
    delta = torch.tensor([[[3.0, 4.0]], [[0.3, 0.4]]])  # per-example L2 norms 5 and 0.5
    l2 = project(delta, 1.0, "l2")
    assert torch.allclose(l2[0], torch.tensor([[0.6, 0.8]])) and torch.equal(l2[1], delta[1])
    assert torch.equal(project(delta, 0.35, "linf"), torch.tensor([[[0.35, 0.35]], [[0.3, 0.35]]]))
    with pytest.raises(ValueError):
        project(delta, 1.0, "l1")


def _clean_grad(contrastive_batch: dict[str, Any], scale: float) -> torch.Tensor:
    """The gradient at the clean embeddings as a training pass gets it: a full backward that
    also fills the parameters' .grad, of a scaled loss (as 1/grad_accum or loss scaling do)."""
    model = contrastive_batch["model"]
    leaf = contrastive_batch["embeds"].clone().requires_grad_(True)
    (contrastive_batch["loss_fn"](leaf) * scale).backward()
    model.zero_grad(set_to_none=True)
    assert leaf.grad is not None
    return leaf.grad


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
@pytest.mark.parametrize(("norm", "epsilon"), [("l2", 0.5), ("linf", 0.02)])
def test_reused_clean_gradient_gives_the_same_perturbation(
    contrastive_batch: dict[str, Any], method: str, norm: str, epsilon: float
) -> None:
    embeds, mask = contrastive_batch["embeds"], contrastive_batch["mask"]
    calls = {"n": 0}

    def loss_fn(e: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return contrastive_batch["loss_fn"](e)

    kw = {"epsilon": epsilon, "step_size": epsilon / 2, "steps": 3, "norm": norm, "mask": mask}
    recomputed = adversarial_perturbation(method, embeds, loss_fn, **kw)
    passes_recomputed, calls["n"] = calls["n"], 0
    grad = _clean_grad(contrastive_batch, scale=0.25)
    reused = adversarial_perturbation(method, embeds, loss_fn, initial_grad=grad, **kw)
    assert torch.allclose(reused, recomputed, rtol=0, atol=1e-6)
    assert float(recomputed.abs().max()) > 0
    # the reuse saves exactly the first pass: FGSM needs none, PGD-3 two
    assert passes_recomputed == (1 if method == "fgsm" else 3)
    assert calls["n"] == passes_recomputed - 1
    # a gradient taken somewhere else gives another perturbation: the argument is used
    other = adversarial_perturbation(method, embeds, loss_fn, initial_grad=-grad, **kw)
    assert not torch.allclose(other, recomputed, atol=1e-3)


def test_initial_grad_is_checked(contrastive_batch: dict[str, Any]) -> None:
    embeds, loss_fn = contrastive_batch["embeds"], contrastive_batch["loss_fn"]
    with pytest.raises(ValueError, match="shape"):
        fgsm_perturbation(embeds, loss_fn, 0.1, initial_grad=embeds[:1])
    with pytest.raises(ValueError, match="random_start"):
        pgd_perturbation(
            embeds, loss_fn, 0.1, 0.05, 2, random_start=True, initial_grad=torch.ones_like(embeds)
        )
