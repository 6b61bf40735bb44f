"""Training config: defaults, the printed default, round trips, overrides and one-line errors."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from xrdiag.core.corpus import load_corpus
from xrdiag.core.training.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    default_config_text,
    load_config,
    parse_override,
    validate_against_corpus,
)
from xrdiag.errors import UserError

# The defaults agreed in the issue-4 interface, written out independently of the schema.
EXPECTED_DEFAULTS = {
    "model": {
        "name": "default",
        "pooling": "mean",
        "max_length": 128,
        "freeze_embeddings": True,
        "freeze_layers": 0,
        "reuse_frozen_prefix": True,
    },
    "corpus": {"path": "default", "max_per_domain": None},
    "protocol": {
        "train_langs": ["en", "fr", "es-419", "ru", "zh"],
        "train_domains": ["medical", "encyclopedia"],
        "pivot": "en",
        "dev_max_per_domain": 50,
    },
    "objective": {
        "kind": "contrastive",
        "temperature": 0.05,
        "margin": 0.0,
        "num_labels": 2,
        "pairs_file": None,
        "train_lang_pairs": ["*-*"],
        "dev_max_per_lang_pair": 32,
    },
    "robust": {
        "rs_rp": {"enabled": False, "distribution": "gaussian", "sigma": 0.01},
        "rs_da": {
            "enabled": False,
            "mode": "on_the_fly",
            "p": 0.5,
            "copies": 1,
            "lexicon": "default",
        },
        "adversarial": {
            "enabled": False,
            "method": "fgsm",
            "epsilon": 1e-2,
            "step_size": 4e-3,
            "steps": 3,
            "norm": "l2",
        },
    },
    "dann": {
        "enabled": False,
        "target": "domain",
        "lambda_max": 0.1,
        "schedule": "ganin",
        "hidden": 256,
        "loss_weight": 1.0,
    },
    "batches": {"batch_size": 32, "alpha": 1.0, "beta": 1.0},
    "optim": {
        "lr": 2e-5,
        "weight_decay": 0.01,
        "warmup_steps": 10,
        "max_steps": 100,
        "grad_clip": 1.0,
        "grad_accum": 1,
        "schedule": "linear",
    },
    "run": {
        "seed": 0,
        "checkpoint_every": 50,
        "keep_last": 2,
        "eval_every": 25,
        "eval_at_start": True,
        "eval_at_end": True,
        "device": "auto",
        "log_every": 1,
        "mixed_precision": "no",
    },
}


def _write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _leaves(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def test_defaults_match_the_agreed_interface(tmp_path: Path) -> None:
    assert config_to_dict(TrainConfig()) == EXPECTED_DEFAULTS
    assert load_config(None) == TrainConfig()
    assert load_config(_write(tmp_path, "")) == TrainConfig()
    cfg = load_config(None)
    assert cfg.dann.lambda_max == 0.1 and cfg.robust.adversarial.norm == "l2"
    assert isinstance(cfg.batches.alpha, float) and isinstance(cfg.optim.max_steps, int)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().optim.lr = 1.0  # type: ignore[misc]


def test_default_text_is_complete_commented_and_loads_back(tmp_path: Path) -> None:
    text = default_config_text()
    assert load_config(_write(tmp_path, text)) == TrainConfig()
    lines = text.splitlines()
    leaves = _leaves(EXPECTED_DEFAULTS)
    for dotted, value in leaves.items():
        key = dotted.rsplit(".", 1)[-1]
        # every key is present (commented out when it has no value) with a comment line above
        hits = [i for i, line in enumerate(lines) if line.startswith((f"{key} = ", f"# {key} = "))]
        assert hits, dotted
        assert lines[hits[0] - 1].startswith("# ") and len(lines[hits[0] - 1]) > 4, dotted
        assert lines[hits[0]].startswith("#") == (value is None), dotted
    assert {line for line in lines if line.startswith("[")} == {
        "[model]", "[corpus]", "[protocol]", "[objective]", "[robust.rs_rp]", "[robust.rs_da]",
        "[robust.adversarial]", "[dann]", "[batches]", "[optim]", "[run]",
    }  # fmt: skip
    # uncommenting the examples of the unset keys still gives a valid config
    uncommented = text.replace("# max_per_domain = ", "max_per_domain = ")
    assert load_config(_write(tmp_path, uncommented, "u.toml")).corpus.max_per_domain == 200


def _custom(tmp_path: Path) -> TrainConfig:
    pairs = _write(tmp_path, "sentence1,sentence2,label,lang1,lang2\n", "pairs.csv")
    d = config_to_dict(TrainConfig())
    d["model"].update(name='odd "name" \\ with\ttab é 中', pooling="cls", freeze_layers=3)
    d["corpus"].update(path=str(tmp_path / "c.csv"), max_per_domain=7)
    d["protocol"].update(train_langs=["fr", "zh", "sw"], train_domains=["news"], pivot="ru")
    d["objective"].update(kind="pair_classification", pairs_file=str(pairs), num_labels=3)
    d["objective"].update(temperature=0.1234567890123, margin=0.35)
    d["robust"]["rs_rp"].update(enabled=True, distribution="uniform", sigma=1e-7)
    d["robust"]["adversarial"].update(enabled=True, method="pgd", steps=5, norm="linf")
    d["dann"].update(enabled=True, target="language", schedule="constant", lambda_max=0.0)
    d["batches"].update(alpha=0.0, beta=0.3)
    d["optim"].update(lr=3.3e-4, warmup_steps=0, schedule="cosine", grad_clip=0.0)
    d["run"].update(seed=4294967295, device="cuda:1")  # the largest seed numpy takes
    return config_from_dict(d)


def test_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = _custom(tmp_path)
    assert cfg != TrainConfig()
    text = config_to_toml(cfg)
    again = load_config(_write(tmp_path, text, "resolved.toml"))
    assert again == cfg
    assert config_to_toml(again) == text
    # the TOML holds exactly the dict's values, unset (None) keys omitted
    expected = {k: v for k, v in _leaves(config_to_dict(cfg)).items() if v is not None}
    assert _leaves(tomllib.loads(text)) == expected
    assert "max_per_domain = 7" in text and "seed = 4294967295" in text


def test_round_trip_of_defaults_omits_unset_keys(tmp_path: Path) -> None:
    text = config_to_toml(TrainConfig())
    assert "\nmax_per_domain" not in text and "pairs_file" not in text
    assert load_config(_write(tmp_path, text)) == TrainConfig()


def test_file_values_and_overrides(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[dann]\nenabled = true\nlambda_max = 0.2\n[run]\ndevice = "cpu"\n'
        '[robust.adversarial]\nepsilon = 0.5\n[protocol]\ntrain_langs = ["en", "es-LA"]\n',
    )
    cfg = load_config(
        path,
        [
            "dann.lambda_max=0.5",  # override beats file
            "robust.adversarial.epsilon=1",  # nested; an integer widens to a float
            "robust.adversarial.enabled=true",  # bool
            "protocol.train_domains=news,travel",  # comma list
            'protocol.train_langs=["ru", "zh"]',  # TOML list
            "objective.kind=contrastive",  # bare string
            'model.name="intfloat/multilingual-e5-small"',  # quoted string
            "run.device=cuda:0",
            "batches.alpha=0.25",
            "batches.alpha=0.75",  # the last one wins
        ],
    )
    assert cfg.dann.enabled is True and cfg.dann.lambda_max == 0.5
    assert cfg.robust.adversarial.epsilon == 1.0
    assert isinstance(cfg.robust.adversarial.epsilon, float)
    assert cfg.robust.adversarial.enabled is True
    assert cfg.protocol.train_domains == ["news", "travel"]
    assert cfg.protocol.train_langs == ["ru", "zh"]
    assert cfg.model.name == "intfloat/multilingual-e5-small"
    assert cfg.run.device == "cuda:0" and cfg.batches.alpha == 0.75
    # keys neither the file nor an override touched keep their defaults
    assert cfg.optim == TrainConfig().optim and cfg.dann.hidden == 256


def test_languages_are_normalised_to_bcp47(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, '[protocol]\ntrain_langs = ["eng", "es_LA", "pt_br"]\n'))
    assert cfg.protocol.train_langs == ["en", "es-419", "pt-BR"]
    assert load_config(None, ["protocol.pivot=fra"]).protocol.pivot == "fr"


def test_override_can_replace_a_bad_file_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "[batches]\nalpha = 7\n")
    assert load_config(path, ["batches.alpha=1"]).batches.alpha == 1.0


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "pairs.csv").write_text("x\n")
    path = _write(
        sub, '[corpus]\npath = "data/c.csv"\n[objective]\nkind = "pair_classification"\n'
        'pairs_file = "pairs.csv"\n',
    )  # fmt: skip
    cfg = load_config(path)
    assert cfg.corpus.path == str(sub.resolve() / "data" / "c.csv")
    assert cfg.objective.pairs_file == str(sub.resolve() / "pairs.csv")
    assert load_config(path, ["corpus.path=rel.csv"]).corpus.path == "rel.csv"  # from --set: as is
    assert load_config(None).corpus.path == "default"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dann.lambda_max=0.5", ("dann.lambda_max", 0.5)),
        (" robust.rs_rp.enabled = true ", ("robust.rs_rp.enabled", True)),
        ("optim.max_steps=30", ("optim.max_steps", 30)),
        ('protocol.train_langs=["en", "ru"]', ("protocol.train_langs", ["en", "ru"])),
        ("protocol.train_langs=en,ru", ("protocol.train_langs", "en,ru")),
        ("objective.kind=pair_classification", ("objective.kind", "pair_classification")),
        ('model.name="a = b"', ("model.name", "a = b")),
        ("run.device=cuda:0", ("run.device", "cuda:0")),
    ],
)
def test_parse_override(text: str, expected: tuple[str, object]) -> None:
    assert parse_override(text) == expected


DANN_KEYS = "enabled, target, lambda_max, schedule, hidden, loss_weight"
TOP_KEYS = "model, corpus, protocol, objective, robust, dann, batches, optim, run"

# (file content, expected message after "<file>: ")
FILE_ERRORS = [
    (
        "[dann]\nlamda_max = 0.5\n",
        "unknown key 'dann.lamda_max' (did you mean 'dann.lambda_max'?); "
        f"valid keys in [dann]: {DANN_KEYS}",
    ),
    ("seed = 1\n", f"unknown key 'seed'; valid keys in the top level: {TOP_KEYS}"),
    (
        "[robust.rs_rp]\nsgima = 1.0\n",
        "unknown key 'robust.rs_rp.sgima' (did you mean 'robust.rs_rp.sigma'?); "
        "valid keys in [robust.rs_rp]: enabled, distribution, sigma",
    ),
    (
        "[robust.rsrp]\nenabled = true\n",
        "unknown key 'robust.rsrp' (did you mean 'robust.rs_rp'?); "
        "valid keys in [robust]: rs_rp, rs_da, adversarial",
    ),
    ('[dann]\nlambda_max = "high"\n', "dann.lambda_max: 'high' is a string; expected a number"),
    ("[dann]\nenabled = 1\n", "dann.enabled: 1 is an integer; expected true or false"),
    ("[optim]\nmax_steps = 10.5\n", "optim.max_steps: 10.5 is a number; expected an integer"),
    ("[optim]\nmax_steps = true\n", "optim.max_steps: True is a boolean; expected an integer"),
    (
        '[protocol]\ntrain_langs = "en"\n',
        "protocol.train_langs: 'en' is a string; "
        'expected a list of non-empty strings such as ["a", "b"]',
    ),
    ("dann = 3\n", "dann: 3 is an integer; expected a table [dann]"),
    ("[batches]\nalpha = 1.5\n", "batches.alpha: 1.5 is out of range; expected a number in [0, 1]"),
    (
        "[batches]\nbeta = -0.01\n",
        "batches.beta: -0.01 is out of range; expected a number in [0, 1]",
    ),
    (
        "[robust.rs_rp]\nsigma = -0.1\n",
        "robust.rs_rp.sigma: -0.1 is out of range; expected a number >= 0",
    ),
    (
        "[robust.adversarial]\nsteps = 0\n",
        "robust.adversarial.steps: 0 is out of range; expected an integer in [1, 1,000]",
    ),
    (
        "[objective]\ntemperature = 0.0\n",
        "objective.temperature: 0.0 is out of range; expected a number > 0",
    ),
    ("[optim]\nlr = nan\n", "optim.lr: nan is not finite; expected a finite number"),
    (
        '[objective]\nkind = "triplet"\n',
        "objective.kind: 'triplet' is not a choice; "
        "expected one of contrastive, pair_classification",
    ),
    (
        '[run]\ndevice = "gpu"\n',
        "run.device: 'gpu' is not valid; expected auto, cpu, cuda, cuda:N or mps",
    ),
    ('[model]\nname = ""\n', "model.name: an empty string; expected a non-empty string"),
    (
        "[protocol]\ntrain_domains = []\n",
        "protocol.train_domains: an empty list; expected at least one value",
    ),
    (
        '[protocol]\ntrain_langs = ["en", "fr", "fr"]\n',
        "protocol.train_langs: 'fr' is listed twice; expected each value once",
    ),
    (
        '[protocol]\ntrain_langs = ["en", "english"]\n',
        "protocol.train_langs: 'english' is not a language code (primary subtag 'english' is 7 "
        "letters long, not 2 or 3); expected 'en', 'pt-BR', 'zh-Hans' or 'ckb'",
    ),
    (
        '[protocol]\ntrain_langs = ["en"]\n',
        "protocol.train_langs: only the pivot 'en'; expected another language",
    ),
    (
        "[optim]\nwarmup_steps = 200\n",
        "optim.warmup_steps: 200 is more than optim.max_steps (100); expected at most that",
    ),
    (
        '[objective]\nkind = "pair_classification"\n',
        "objective.pairs_file: not set; expected a labelled pairs file for "
        "objective.kind = 'pair_classification'",
    ),
    (
        '[protocol]\npivot = "fr"\ntrain_langs = ["ru"]\n[robust.rs_da]\nenabled = true\n',
        "robust.rs_da.enabled: RS-DA substitutes English words; "
        "expected 'en' in protocol.train_langs or as protocol.pivot",
    ),
    (
        '[protocol]\ntrain_domains = ["medical"]\n[dann]\nenabled = true\n',
        "dann.target: 'domain' needs two classes; "
        "expected at least 2 protocol.train_domains, or dann.target = 'language'",
    ),
    (
        "[run]\nseed = -1\n",
        "run.seed: -1 is out of range; expected an integer in [0, 4,294,967,295]",
    ),
    (
        "[dann\nenabled = true\n",
        "invalid TOML (Expected ']' at the end of a table declaration (at line 1, column 6)); "
        "expected a TOML config file",
    ),
]


@pytest.mark.parametrize(("text", "expected"), FILE_ERRORS)
def test_bad_config_file(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {expected}"
    assert "\n" not in str(info.value)


def test_missing_paths_and_encoding(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(UserError, match=r"nope\.toml: no such file; expected a TOML config file$"):
        load_config(missing)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[model]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(UserError) as info:
        load_config(bad)
    assert str(info.value) == f"{bad} (byte 19): not valid UTF-8; expected a UTF-8 TOML file"
    pairs = _write(tmp_path, '[objective]\nkind = "pair_classification"\npairs_file = "x.csv"\n')
    with pytest.raises(UserError) as info:
        load_config(pairs)
    assert str(info.value) == (
        f"{pairs}: objective.pairs_file: {tmp_path.resolve() / 'x.csv'} does not exist; "
        "expected a file"
    )


EXAMPLE = "expected section.key=value, e.g. dann.lambda_max=0.5"
SET_ERRORS = [
    (["dann.lambda_max"], f"--set 'dann.lambda_max': no '='; {EXAMPLE}"),
    (["=3"], f"--set '=3': '' is not a dotted key; {EXAMPLE}"),
    (["dann..x=1"], f"--set 'dann..x=1': 'dann..x' is not a dotted key; {EXAMPLE}"),
    (["dann.lambda_max="], f"--set 'dann.lambda_max=': no value after '='; {EXAMPLE}"),
    (["dann=1"], "--set dann: a section, not a value; expected a key in it, e.g. dann.enabled"),
    (
        ["dann.enabled.x=1"],
        "--set dann.enabled.x: 'dann.enabled' is a value, not a section; "
        "expected dann.enabled=value",
    ),
    (
        ["dann.lamda=1"],
        "--set: unknown key 'dann.lamda' (did you mean 'dann.lambda_max'?); "
        f"valid keys in [dann]: {DANN_KEYS}",
    ),
    (
        ["protocol.train_langs=[en,fr]"],
        "--set protocol.train_langs: malformed TOML value '[en,fr]'; "
        'expected a TOML value such as 0.5, true, "text" or ["en", "fr"]',
    ),
    (["batches.alpha=2"], "--set: batches.alpha: 2 is out of range; expected a number in [0, 1]"),
    (["a=1\nb=2"], f"--set a: '1\\nb=2' is more than one value; {EXAMPLE}"),
    (["dann.enabled=yes"], "--set: dann.enabled: 'yes' is a string; expected true or false"),
    (
        ["robust.adversarial.steps=0"],
        "--set: robust.adversarial.steps: 0 is out of range; expected an integer in [1, 1,000]",
    ),
    (
        ["optim.max_steps=5"],  # the warm-up default (10) is now too long: names the key to change
        "config: optim.warmup_steps: 10 is more than optim.max_steps (5); expected at most that",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), SET_ERRORS)
def test_bad_override(overrides: list[str], expected: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(None, overrides)
    assert str(info.value) == expected


def test_override_error_names_set_even_with_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[batches]\nalpha = 0.5\n")
    with pytest.raises(UserError, match=r"^--set: batches\.beta: 3 is out of range"):
        load_config(path, ["batches.beta=3"])
    with pytest.raises(UserError, match=rf"^{path}: batches\.alpha: "):
        load_config(_write(tmp_path, "[batches]\nalpha = 3\n"), ["batches.beta=0"])


@pytest.mark.parametrize(
    ("key", "ok", "bad"),
    [
        ("batches.alpha", [0, 0.5, 1], [-0.001, 1.001]),
        ("robust.rs_da.p", [0, 1], [-1, 1.5]),
        ("robust.rs_rp.sigma", [0, 10], [-1e-9]),
        ("objective.temperature", [1e-9, 2], [0, -1]),
        ("robust.adversarial.epsilon", [1e-6], [0]),
        ("robust.adversarial.steps", [1, 20], [0, -3]),
        ("batches.batch_size", [2, 512], [1, 0]),
        ("optim.grad_accum", [1], [0]),
        ("objective.num_labels", [2, 5], [1]),
        ("run.keep_last", [1], [0]),
        ("model.freeze_layers", [0, 12], [-1]),
        ("corpus.max_per_domain", [1], [0]),
    ],
)
def test_range_boundaries(key: str, ok: list[float], bad: list[float]) -> None:
    section, _, name = key.rpartition(".")
    for value in ok:
        cfg = config_to_dict(load_config(None, [f"{key}={value}"]))
        node = cfg
        for part in section.split("."):
            node = node[part]
        assert node[name] == value
    for value in bad:
        with pytest.raises(UserError, match=rf"^--set: {key}: {value} is out of range; expected"):
            load_config(None, [f"{key}={value}"])


def test_validate_against_corpus() -> None:
    corpus = load_corpus("default")
    validate_against_corpus(TrainConfig(), corpus)  # the defaults fit the bundled corpus
    langs = ", ".join(sorted(corpus.frame["lang"].unique().to_list()))
    domains = ", ".join(sorted(corpus.frame["domain"].unique().to_list()))
    cases = [
        (["protocol.train_langs=en,de"], f"protocol.train_langs: 'de' is not a language of "
         f"corpus default; expected one of: {langs}"),
        (["protocol.pivot=ja"], f"protocol.pivot: 'ja' is not a language of corpus default; "
         f"expected one of: {langs}"),
        (["protocol.train_domains=medical,sports"], "protocol.train_domains: 'sports' is not a "
         f"domain of corpus default; expected one of: {domains}"),
    ]  # fmt: skip
    for overrides, expected in cases:
        cfg = load_config(None, overrides)
        with pytest.raises(UserError) as info:
            validate_against_corpus(cfg, corpus, source="run.toml")
        assert str(info.value) == f"run.toml: {expected}"
    small = corpus.filter(langs=["en", "fr"], domains=["medical"])
    with pytest.raises(UserError, match="'es-419' is not a language of corpus default"):
        validate_against_corpus(TrainConfig(), small)


def test_method_prefix_is_an_alias_in_overrides() -> None:
    """The issue writes `--set method.dann.lambda_max=0.5`; the sections are top-level."""
    cfg = load_config(None, ["method.dann.lambda_max=0.5", "method.robust.adversarial.steps=5"])
    assert cfg.dann.lambda_max == 0.5 and cfg.robust.adversarial.steps == 5
    assert cfg == load_config(None, ["dann.lambda_max=0.5", "robust.adversarial.steps=5"])
    with pytest.raises(UserError, match=r"^--set: unknown key 'dann.lambda_maxx'"):
        load_config(None, ["method.dann.lambda_maxx=0.5"])


def test_mixed_precision_choices_and_cpu_rule() -> None:
    assert load_config(None, ["run.mixed_precision=bf16"]).run.mixed_precision == "bf16"
    with pytest.raises(UserError) as info:
        load_config(None, ["run.mixed_precision=fp8"])
    assert str(info.value) == (
        "--set: run.mixed_precision: 'fp8' is not a choice; expected one of no, fp16, bf16"
    )
    with pytest.raises(UserError) as info:
        load_config(None, ["run.device=cpu", "run.mixed_precision=fp16"])
    msg = str(info.value)
    assert msg.startswith("--set: run.mixed_precision: fp16 needs a GPU") and "\n" not in msg
    assert load_config(None, ["run.device=cpu", "run.mixed_precision=bf16"])


def test_fp16_on_a_cpu_only_machine_is_refused_before_training() -> None:
    """`run.device = auto` resolves to the CPU here (no GPU in the test machine)."""
    import torch

    from xrdiag.core.training.model_setup import make_accelerator

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: fp16 is valid")
    with pytest.raises(UserError, match="run.mixed_precision: fp16 needs a GPU"):
        make_accelerator(load_config(None, ["run.mixed_precision=fp16"]).run)
