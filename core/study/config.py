"""Study configs: one base training config, named variants that override it, seeds, evaluation.

A study TOML has four tables: `[study]` (preset, seeds, variants run, baseline), `[train]` (a
base training config, the same keys as `xrdiag train --print-config` under `train.`),
`[eval]` (the final evaluation of every checkpoint) and `[stats]`, plus one `[variants.NAME]`
table per user variant: a partial training config merged over the base (dotted keys work,
`dann.enabled = true`). Values come from the preset (`quick`, `full` or `task`), then the file, then
each `--set` (`--set train.optim.max_steps=50`, `--set study.seeds=[0,1]`).

The built-in variants and the presets are in core/study/presets.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrdiag.core.layout import names
from xrdiag.core.layout.dirs import StudyDir
from xrdiag.core.study.presets import BUILTIN_VARIANTS, PRESETS
from xrdiag.core.training.config import (
    TrainConfig,
    config_from_dict,
    config_to_toml,
    parse_override,
)
from xrdiag.errors import UserError


@dataclass(frozen=True)
class EvalSpec:
    """The final evaluation of the base model and of every cell's last checkpoint.

    `held_out`: evaluate on every sentence training never saw (all splits of the unseen
    domains, dev and test of the seen ones) instead of `splits`: more ids, a smaller minimum
    detectable effect, and still no sentence the model was trained on. `langs`: the languages
    evaluated (the pivot is always in); empty: all of the corpus.
    """

    splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    held_out: bool = False
    langs: list[str] = field(default_factory=list)
    max_per_domain: int | None = 200
    seed: int = 0
    bootstrap: int = 1000
    probe_max_rows: int | None = 4000
    max_length: int = 128
    device: str = "auto"
    # "retrieval" (recall@1 against the pivot) or "task": every cell trains a pair classifier
    # (objective.kind = pair_classification) and the outcome is its zero-shot task accuracy on
    # the held-out pairs (core/task). The pairs: train.objective.pairs_file, or, when unset, a
    # paraphrase task built from the corpus once per study (`task.parquet`: the `task_pairs`
    # patterns over eval.langs and the pivot, lexical hard negatives, task_max_per_domain ids
    # per domain).
    outcome: str = "retrieval"
    task_pairs: list[str] = field(default_factory=lambda: ["en-en", "en-*", "*-en"])
    task_max_per_domain: int | None = 100


OUTCOMES = ("retrieval", "task")


@dataclass(frozen=True)
class StatsSpec:
    """The statistics of the comparison with the baseline (analyses/study_figures.py).

    `primary` is the one question of the study, `figure:lang:domain` (the default: recall@1
    on the unseen languages x unseen domains); every other comparison is exploratory. `power`
    sets the minimum detectable effect each comparison reports. `draws`, `bootstrap` and `seed`
    belonged to the resampling tests of xrdiag 0.1; they are read from older study files and
    no longer used (the calibrated two-way test needs no resampling).
    """

    primary: str = "quadrant_recall@1:unseen:unseen"
    alpha: float = 0.05
    power: float = 0.8
    draws: int = 10_000
    bootstrap: int = 2000
    seed: int = 0

    def primary_key(self) -> tuple[str, str, str]:
        parts = self.primary.split(":")
        figure, lang, domain = (parts + ["all", "all"])[:3]
        return figure, lang, domain


@dataclass(frozen=True)
class StudyConfig:
    """A resolved study: cell configs are built from `train` + each variant's overrides."""

    preset: str
    seeds: list[int]
    variants: dict[str, dict[str, Any]]
    baseline: str
    train: dict[str, Any]
    eval: EvalSpec
    stats: StatsSpec
    source: str = "study config"
    # False: a cell's checkpoints are deleted once its diagnostics are written (events, config
    # and diagnostics stay; the cell can no longer be re-evaluated or compared on new rows).
    keep_checkpoints: bool = True

    def base_config(self) -> TrainConfig:
        return config_from_dict(self.train, f"{self.source} [train]")

    def cell_config(self, variant: str, seed: int, pairs_file: str | None = None) -> TrainConfig:
        """The training config of one cell: base, the variant's overrides, `run.seed = seed`;
        in a task study, the pair-classification objective on `pairs_file` (the study's task)."""
        doc = merge(self.train, self.variants[variant])
        doc = merge(doc, {"run": {"seed": seed}})
        if self.eval.outcome == "task" and pairs_file is not None:
            doc = merge(doc, {"objective": {"kind": "pair_classification",
                                            "pairs_file": pairs_file}})  # fmt: skip
        return config_from_dict(doc, f"{self.source} [variants.{variant}]")

    def cells(self) -> list[tuple[str, int]]:
        return [(v, s) for v in self.variants for s in self.seeds]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two TOML documents (tables merge, anything else is replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# The eval's probes cross-validate over ids in 5 folds: each domain needs that many ids.
EVAL_PROBE_FOLDS = 5
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TABLES = ("study", "train", "eval", "stats", "variants")


def _section(cls: type, data: Any, name: str, src: str) -> Any:
    """A dataclass section from its table: unknown keys and wrong types are user errors."""
    if not isinstance(data, dict):
        raise UserError(f"{src}: [{name}] is not a table; expected [{name}] with keys")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    for key, value in data.items():
        if key not in fields:
            raise UserError(
                f"{src}: {name}.{key}: unknown key; expected one of {', '.join(fields)}"
            )
        want = getattr(defaults, key)
        ok = (
            (isinstance(want, list) and isinstance(value, list))
            or (isinstance(want, bool) and isinstance(value, bool))
            or (isinstance(want, int | float) and not isinstance(want, bool) and
                isinstance(value, int | float) and not isinstance(value, bool))
            or (isinstance(want, str) and isinstance(value, str))
            or (want is None and isinstance(value, int) and not isinstance(value, bool))
            or (value is None and "None" in str(fields[key].type))
        )  # fmt: skip
        if not ok:
            raise UserError(f"{src}: {name}.{key}: {value!r} is not like {want!r}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise UserError(f"{src}: {name}.{key}: {value!r} is negative; expected >= 0")
    return cls(**data)


def study_from_dict(data: Mapping[str, Any], source: str = "study config") -> StudyConfig:
    """Validate a study document (preset applied here) and every cell config it implies."""
    for key in data:
        if key not in _TABLES:
            raise UserError(f"{source}: [{key}]: unknown table; expected one of {_TABLES}")
    study = data.get("study", {})
    preset = study.get("preset", "full") if isinstance(study, dict) else "full"
    if preset not in PRESETS:
        raise UserError(f"{source}: study.preset: {preset!r}; expected one of {list(PRESETS)}")
    doc = merge(PRESETS[preset], data)
    st = doc["study"]
    for key in st:
        if key not in ("preset", "seeds", "variants", "baseline", "keep_checkpoints"):
            raise UserError(
                f"{source}: study.{key}: unknown key; expected preset, seeds, variants, baseline, "
                "keep_checkpoints"
            )
    keep = st.get("keep_checkpoints", True)
    if not isinstance(keep, bool):
        raise UserError(f"{source}: study.keep_checkpoints: {keep!r}; expected true or false")
    seeds = st.get("seeds")
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise UserError(f"{source}: study.seeds: {seeds!r}; expected distinct integers >= 0")
    user = doc.get("variants", {})
    if not isinstance(user, dict) or not all(isinstance(v, dict) for v in user.values()):
        raise UserError(f"{source}: [variants]: expected one table [variants.NAME] per variant")
    for name in user:
        if not _NAME.fullmatch(name) or name == "base":
            raise UserError(
                f"{source}: [variants.{name}]: expected a name of letters, digits, _ or - "
                "(not 'base', the untouched model)"
            )
    names = st.get("variants")
    if "variants" not in data.get("study", {}) and user:
        names = [*names, *[n for n in user if n not in names]]  # user variants join the grid
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{source}: study.variants: {names!r}; expected a list of variant names")
    known = {**BUILTIN_VARIANTS, **user}
    for name in names:
        if name not in known:
            raise UserError(
                f"{source}: study.variants: {name!r} is not a variant; expected one of "
                f"{', '.join(known)} or a [variants.{name}] table"
            )
    baseline = st.get("baseline", "baseline")
    if baseline not in names:
        raise UserError(f"{source}: study.baseline: {baseline!r} is not in study.variants")
    train = doc.get("train", {})
    if not isinstance(train, dict):
        raise UserError(f"{source}: [train] is not a table; expected a training config")
    cfg = StudyConfig(
        preset=preset,
        seeds=list(seeds),
        variants={n: known[n] for n in names},
        baseline=baseline,
        train=train,
        eval=_section(EvalSpec, doc.get("eval", {}), "eval", source),
        stats=_section(StatsSpec, doc.get("stats", {}), "stats", source),
        source=source,
        keep_checkpoints=keep,
    )
    for split in cfg.eval.splits:
        if split not in ("train", "dev", "test"):
            raise UserError(f"{source}: eval.splits: {split!r}; expected train, dev or test")
    if cfg.eval.max_per_domain is not None and cfg.eval.max_per_domain < EVAL_PROBE_FOLDS:
        raise UserError(
            f"{source}: eval.max_per_domain: {cfg.eval.max_per_domain} is too few for the "
            f"{EVAL_PROBE_FOLDS}-fold probes; expected at least {EVAL_PROBE_FOLDS}"
        )
    if cfg.eval.outcome not in OUTCOMES:
        raise UserError(
            f"{source}: eval.outcome: {cfg.eval.outcome!r}; expected one of {', '.join(OUTCOMES)}"
        )
    if cfg.eval.outcome == "task" and cfg.stats.primary == StatsSpec().primary:
        # The retrieval question does not exist in a task study: ask the task's own.
        cfg = dataclasses.replace(
            cfg, stats=dataclasses.replace(cfg.stats, primary="accuracy:unseen:all")
        )
    if not 0 < cfg.stats.alpha < 1 or not 0 < cfg.stats.power < 1:
        raise UserError(f"{source}: [stats]: expected 0 < alpha < 1 and 0 < power < 1")
    for name in names:  # every cell config is valid before anything runs
        cfg.cell_config(name, seeds[0])
    return cfg


def _set(doc: dict[str, Any], key: str, value: Any) -> None:
    node = doc
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def load_study_config(
    path: Path | None, overrides: Sequence[str] = (), preset: str | None = None
) -> StudyConfig:
    """Preset, then the TOML file (if any), then each `--set key=value` (keys with a table)."""
    data: dict[str, Any] = {}
    src = "study config"
    if path is not None:
        src = str(path)
        try:
            data = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{src}: no such file; expected a study TOML file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{src}: invalid TOML ({exc}); expected a study TOML file") from None
    if preset is not None:
        _set(data, "study.preset", preset)
    for text in overrides:
        key, value = parse_override(text)
        if key.split(".")[0] not in _TABLES or "." not in key:
            raise UserError(
                f"--set {text}: expected a key under one of {', '.join(_TABLES)}, "
                "e.g. train.optim.max_steps=50"
            )
        if key.startswith("study.seeds") and isinstance(value, str):
            value = [int(s) for s in value.split(",") if s.strip().isdigit()]
        _set(data, key, value)
    return study_from_dict(data, src)


def _flat(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if isinstance(value, Mapping):
            out += _flat(value, f"{prefix}{key}.")
        elif value is not None:
            out.append((prefix + key, value))
    return out


def study_to_toml(cfg: StudyConfig) -> str:
    """The resolved study (train config complete); `load_study_config` reads it back equal."""
    lines = ["[study]", f"preset = {json.dumps(cfg.preset)}"]
    lines += [f"seeds = {json.dumps(cfg.seeds)}", f"variants = {json.dumps(list(cfg.variants))}"]
    lines += [f"baseline = {json.dumps(cfg.baseline)}"]
    lines += [f"keep_checkpoints = {json.dumps(cfg.keep_checkpoints)}", ""]
    for name, spec in (("eval", cfg.eval), ("stats", cfg.stats)):
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in _flat(dataclasses.asdict(spec))]
        lines.append("")
    for line in config_to_toml(cfg.base_config()).splitlines():
        lines.append(f"[train.{line[1:]}" if line.startswith("[") else line)
    for name, over in cfg.variants.items():
        lines += ["", f"[variants.{name}]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in _flat(over)]
    return "\n".join(lines) + "\n"


def default_study_text(preset: str = "full") -> str:
    """The default study config of a preset, commented: what `--print-config` shows."""
    cfg = study_from_dict({"study": {"preset": preset}})
    head = [
        "# xrdiag study configuration (TOML). Every table is optional; these are the values of",
        f'# preset {preset!r} (study.preset = "quick" | "full" | "task"). [train] takes every',
        "# key of `xrdiag train --print-config` under train.; each [variants.NAME] overrides it.",
        "# Built-in variants: " + ", ".join(BUILTIN_VARIANTS) + ".",
        "# Add your own, e.g.:",
        "#   [variants.strong_dann]",
        "#   dann.enabled = true",
        "#   dann.lambda_max = 0.5",
        "",
    ]
    return "\n".join(head) + study_to_toml(cfg)


def read_study_config(out: Path) -> StudyConfig:
    """The config a study directory was started with."""
    path = StudyDir(out).config_file
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--out {out}: no {names.STUDY_FILE}; expected a study directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML ({exc})") from None
    return study_from_dict(data, str(path))
