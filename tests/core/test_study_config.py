"""Study configs: presets, variants as overrides, validation, round trip through study.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.study.config import (
    default_study_text,
    load_study_config,
    study_from_dict,
    study_to_toml,
)
from xrdiag.core.study.presets import BUILTIN_VARIANTS, DEFAULT_GRID, GRID_2X2
from xrdiag.errors import UserError


def test_default_grid_and_builtin_variants() -> None:
    cfg = study_from_dict({})
    assert list(cfg.variants) == DEFAULT_GRID and cfg.baseline == "baseline"
    assert len(cfg.seeds) >= 3
    assert GRID_2X2 == ["baseline", "dann_domain", "hybrid", "dann_hybrid"]
    base = cfg.cell_config("baseline", 0)
    dh = cfg.cell_config("dann_hybrid", 2)
    assert not base.dann.enabled and (base.batches.alpha, base.batches.beta) == (1.0, 1.0)
    assert dh.dann.enabled and dh.dann.target == "domain"
    assert (dh.batches.alpha, dh.batches.beta) == (0.5, 0.5) and dh.run.seed == 2
    assert cfg.cell_config("pgd", 0).robust.adversarial.method == "pgd"
    assert cfg.cell_config("rs_rp", 0).robust.rs_rp.enabled
    assert cfg.cell_config("rs_da", 0).robust.rs_da.enabled
    every = study_from_dict({"study": {"variants": list(BUILTIN_VARIANTS)}})
    assert every.cell_config("dann_lang", 0).dann.target == "language"
    # everything else is the base config
    assert dh.optim == base.optim and dh.model == base.model
    assert set(BUILTIN_VARIANTS) >= set(DEFAULT_GRID)


def test_user_variant_joins_grid_and_set_overrides(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        '[study]\npreset = "quick"\n\n[train.optim]\nmax_steps = 7\nwarmup_steps = 2\n\n'
        "[variants.strong]\ndann.enabled = true\ndann.lambda_max = 0.5\n",
        encoding="utf-8",
    )
    cfg = load_study_config(path, ["study.seeds=[4,5]", "eval.max_per_domain=9"])
    assert list(cfg.variants) == [*GRID_2X2, "strong"]
    assert cfg.seeds == [4, 5] and cfg.eval.max_per_domain == 9
    strong = cfg.cell_config("strong", 5)
    assert strong.dann.enabled and strong.dann.lambda_max == 0.5 and strong.optim.max_steps == 7
    assert cfg.cell_config("baseline", 4).optim.max_steps == 7


def test_round_trip_and_print_config() -> None:
    for preset in ("quick", "full"):
        cfg = study_from_dict({"study": {"preset": preset}})
        text = study_to_toml(cfg)
        assert study_to_toml(study_from_dict(tomllib.loads(text))) == text
        printed = tomllib.loads(default_study_text(preset))
        assert study_to_toml(study_from_dict(printed)) == text


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"study": {"seeds": []}}, "study.seeds"),
        ({"study": {"seeds": [1, 1]}}, "study.seeds"),
        ({"study": {"variants": ["baseline", "nope"]}}, "'nope' is not a variant"),
        ({"study": {"variants": ["hybrid"]}}, "study.baseline"),
        ({"study": {"preset": "huge"}}, "study.preset"),
        ({"eval": {"max_per_domian": 3}}, "eval.max_per_domian"),
        ({"eval": {"splits": ["holdout"]}}, "eval.splits"),
        ({"stats": {"alpha": 2.0}}, "[stats]"),
        ({"variants": {"bad": {"dann": {"target": "x"}}}}, "dann.target"),
        ({"variants": {"base": {}}}, "[variants.base]"),
        ({"bogus": {}}, "[bogus]"),
    ],
)
def test_user_errors_name_the_key(doc: dict, needle: str) -> None:
    with pytest.raises(UserError) as err:
        study_from_dict(doc, "s.toml")
    assert needle in str(err.value) and "s.toml" in str(err.value)
    assert "\n" not in str(err.value)


def test_set_outside_tables_is_an_error() -> None:
    with pytest.raises(UserError, match="--set"):
        load_study_config(None, ["optim.max_steps=3"])


def test_held_out_evaluation_rows_are_exactly_what_training_never_saw() -> None:
    from xrdiag.core.study.runner import eval_rows

    cfg = load_study_config(None, [], preset="quick")
    rows = eval_rows(cfg)
    protocol = cfg.base_config().protocol
    assert set(rows["lang"]) == {"en", *cfg.eval.langs}
    seen = rows.filter(pl.col("domain").is_in(protocol.train_domains))
    assert set(seen["split"]) == {"dev", "test"}  # the training split of seen domains is out
    unseen = rows.filter(~pl.col("domain").is_in(protocol.train_domains))
    assert set(unseen["split"]) == {"train", "dev", "test"}  # never trained on: all of it
    plain = load_study_config(None, ["eval.held_out=false"], preset="quick")
    assert set(eval_rows(plain)["split"]) == {"dev", "test"}
