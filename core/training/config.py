"""Training configs: load TOML plus `--set` overrides, validate, print the default, write run.toml.

Every key has a default, so an empty file is a valid config. The schema (types, ranges, choices,
one comment per key) lives in the dataclasses of `config_schema` (`TrainConfig` is re-exported
here): validation, `--print-config` and the resolved run.toml are all generated from it. Every
mistake a user can make raises `UserError`: one line naming the file (or `--set`) and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from xrdiag.core.training.config_schema import TrainConfig
from xrdiag.errors import UserError

SET = "--set"


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _kind(value: Any) -> str:
    """What a TOML value is, in words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _unknown(src: str, key: str, cls: type, prefix: str) -> UserError:
    valid = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=1)
    hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
    where = f"[{prefix[:-1]}]" if prefix else "the top level"
    return UserError(f"{src}: unknown key {key!r}{hint}; valid keys in {where}: {', '.join(valid)}")


def _value(src: str, key: str, raw: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Check one value against its type, choices and range; return it (ints widened to floats)."""

    def bad(expected: str, what: str | None = None) -> UserError:
        what = what or f"{raw!r} is {_kind(raw)}"
        return UserError(f"{src}: {key}: {what}; expected {expected}")

    args = get_args(tp)
    if get_origin(tp) is not None and type(None) in args:  # X | None
        return None if raw is None else _value(src, key, raw, args[0], meta)
    if tp is bool:
        if not isinstance(raw, bool):
            raise bad("true or false")
        return raw
    if get_origin(tp) is Literal:
        if raw not in args:
            choices = ", ".join(args)
            raise bad(
                f"one of {choices}", f"{raw!r} is not a choice" if isinstance(raw, str) else None
            )
        return raw
    if tp is str:
        if not isinstance(raw, str) or not raw.strip():
            raise bad("a non-empty string", "an empty string" if raw == "" else None)
        if "pattern" in meta and not re.fullmatch(meta["pattern"], raw):
            raise bad(meta["doc"], f"{raw!r} is not valid")
        return raw
    if get_origin(tp) is list:
        if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
            raise bad('a list of non-empty strings such as ["a", "b"]')
        if not raw:
            raise bad("at least one value", "an empty list")
        dupes = sorted({x for x in raw if raw.count(x) > 1})
        if dupes:
            raise bad("each value once", f"{dupes[0]!r} is listed twice")
        return list(raw)
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise bad("an integer")
    elif tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise bad("a number")
        if not math.isfinite(raw):
            raise bad("a finite number", f"{raw!r} is not finite")
    lo, hi, lo_open = meta.get("lo"), meta.get("hi"), meta.get("lo_open", False)
    if (lo is not None and (raw <= lo if lo_open else raw < lo)) or (hi is not None and raw > hi):
        word = "an integer" if tp is int else "a number"

        def num(x: float) -> str:
            return f"{x:,}" if isinstance(x, int) else f"{x:g}"

        if hi is not None:
            rng = f"in ({num(lo)}, {num(hi)}]" if lo_open else f"in [{num(lo)}, {num(hi)}]"
        else:
            rng = f"> {num(lo)}" if lo_open else f">= {num(lo)}"
        raise bad(f"{word} {rng}", f"{raw!r} is out of range")
    return float(raw) if tp is float else raw


def _build(
    cls: type, data: Any, prefix: str, origins: Mapping[str, str], src: str, base: Path | None
) -> Any:
    """One section from its table, checking every key; missing keys take their defaults."""
    name = prefix[:-1]
    if not isinstance(data, dict):
        raise UserError(
            f"{origins.get(name, src)}: {name}: {data!r} is {_kind(data)}; "
            f"expected a table [{name}]"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            dotted = prefix + key
            raise _unknown(origins.get(dotted, src), dotted, cls, prefix)
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        dotted, tp, meta = prefix + key, _hints(cls)[key], fields[key].metadata
        where = origins.get(dotted, src)
        if _is_section(tp):
            kwargs[key] = _build(tp, raw, dotted + ".", origins, src, base)
            continue
        value = _value(where, dotted, raw, tp, meta)
        if (meta.get("path") and value not in (None, "default") and base and where == src
                and not str(value).startswith("hf:")):  # fmt: skip
            value = str(base / Path(value).expanduser())  # relative to the config file
        kwargs[key] = value
    return cls(**kwargs)


def _cross_checks(cfg: TrainConfig, origins: Mapping[str, str], src: str) -> None:
    """Rules that involve several keys; the error names the key to change."""

    def fail(key: str, msg: str) -> None:
        raise UserError(f"{origins.get(key, src)}: {key}: {msg}")

    p, obj, rb = cfg.protocol, cfg.objective, cfg.robust
    if not set(p.train_langs) - {p.pivot}:
        fail("protocol.train_langs", f"only the pivot {p.pivot!r}; expected another language")
    if cfg.optim.warmup_steps > cfg.optim.max_steps:
        fail(
            "optim.warmup_steps",
            f"{cfg.optim.warmup_steps} is more than optim.max_steps "
            f"({cfg.optim.max_steps}); expected at most that",
        )
    if obj.kind == "pair_classification":
        if obj.pairs_file is None:
            fail(
                "objective.pairs_file",
                "not set; expected a labelled pairs file for "
                "objective.kind = 'pair_classification'",
            )
        elif not (obj.pairs_file.startswith("hf:") or Path(obj.pairs_file).expanduser().exists()):
            # a file, or a PAWS-X/XNLI folder (hf: datasets are checked when read)
            fail("objective.pairs_file", f"{obj.pairs_file} does not exist; expected a file")
    if rb.rs_da.enabled:
        if "en" not in p.train_langs and p.pivot != "en":
            fail(
                "robust.rs_da.enabled",
                "RS-DA substitutes English words; expected 'en' in "
                "protocol.train_langs or as protocol.pivot",
            )
        if rb.rs_da.lexicon != "default" and not Path(rb.rs_da.lexicon).expanduser().is_file():
            fail("robust.rs_da.lexicon", f"{rb.rs_da.lexicon} does not exist; expected a file")
    if cfg.run.device == "cpu" and cfg.run.mixed_precision == "fp16":
        fail(
            "run.mixed_precision",
            "fp16 needs a GPU and run.device is 'cpu'; expected no or bf16 on the CPU",
        )
    if cfg.dann.enabled and cfg.dann.target != "language" and len(p.train_domains) < 2:
        fail(
            "dann.target",
            f"{cfg.dann.target!r} needs two classes; expected at least 2 "
            "protocol.train_domains, or dann.target = 'language'",
        )


def _normalise_langs(data: dict[str, Any], origins: Mapping[str, str], src: str) -> None:
    """Spell protocol languages in BCP-47 as the corpus does (`es-LA` -> `es-419`)."""
    from xrdiag.core.corpus.langcodes import normalize_lang

    proto = data.get("protocol")
    if not isinstance(proto, dict):
        return
    for key in ("train_langs", "pivot"):
        value = proto.get(key)
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(x, str) and x.strip() for x in items):
            continue  # type errors are reported by _build
        try:
            done = [normalize_lang(x) for x in items]
        except UserError as exc:
            where = origins.get(f"protocol.{key}", src)
            raise UserError(f"{where}: protocol.{key}: {exc}") from None
        proto[key] = done if isinstance(value, list) else done[0]


def config_from_dict(
    data: Mapping[str, Any],
    source: str = "config",
    origins: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> TrainConfig:
    """Validate a nested mapping (a parsed TOML document) into a TrainConfig."""
    origins = dict(origins or {})
    data = _deep_copy(data)
    _normalise_langs(data, origins, source)
    cfg = _build(TrainConfig, data, "", origins, source, base)
    _cross_checks(cfg, origins, source)
    return cfg


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    return list(data) if isinstance(data, list) else data


_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# `--set method.dann.lambda_max=0.5` (the spelling): the method sections (robust.*,
# dann) live at the top level, so a leading `method.` is dropped.
METHOD_PREFIX = "method."


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value` -> ("section.key", value); the value is TOML, or else a bare string."""
    example = "expected section.key=value, e.g. dann.lambda_max=0.5"
    if "=" not in text:
        raise UserError(f"{SET} {text!r}: no '='; {example}")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not _KEY.fullmatch(key):
        raise UserError(f"{SET} {text!r}: {key!r} is not a dotted key; {example}")
    if not raw:
        raise UserError(f"{SET} {text!r}: no value after '='; {example}")
    if key.startswith(METHOD_PREFIX):
        key = key[len(METHOD_PREFIX) :]
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        if raw[0] in "[{\"'":
            raise UserError(
                f"{SET} {key}: malformed TOML value {raw!r}; "
                'expected a TOML value such as 0.5, true, "text" or ["en", "fr"]'
            ) from None
        return key, raw  # a bare word such as pair_classification or cuda:0
    if list(parsed) != ["v"]:
        raise UserError(f"{SET} {key}: {raw!r} is more than one value; {example}")
    return key, parsed["v"]


def _apply(data: dict[str, Any], key: str, value: Any) -> None:
    """Put one override into the raw document, checking its path against the schema."""
    cls: Any = TrainConfig
    node, parts = data, key.split(".")
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i]) + "." if i else ""
        if not _is_section(cls) or part not in _hints(cls):
            if not _is_section(cls):
                raise UserError(
                    f"{SET} {key}: {prefix[:-1]!r} is a value, not a section; "
                    f"expected {prefix[:-1]}=value"
                )
            raise _unknown(SET, key, cls, prefix)
        cls = _hints(cls)[part]
        if i < len(parts) - 1:
            if not isinstance(node.get(part, {}), dict):
                node[part] = {}  # the file has a non-table here; the override replaces it
            node = node.setdefault(part, {})
    if _is_section(cls):
        first = dataclasses.fields(cls)[0].name
        raise UserError(
            f"{SET} {key}: a section, not a value; expected a key in it, e.g. {key}.{first}"
        )
    if get_origin(cls) is list and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]  # --set x.langs=en,fr
    node[parts[-1]] = value


def load_config(path: Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults, then the TOML file (if any), then each `--set key=value` in order."""
    data: dict[str, Any] = {}
    src, base = "config", None
    if path is not None:
        path, src = Path(path), str(path)
        base = path.expanduser().resolve().parent
        try:
            text = path.expanduser().read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise UserError(f"{src}: no such file; expected a TOML config file") from None
        except IsADirectoryError:
            raise UserError(f"{src}: is a directory; expected a TOML config file") from None
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{src} (byte {exc.start}): not valid UTF-8; expected a UTF-8 TOML file"
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{src}: invalid TOML ({exc}); expected a TOML config file") from None
    origins: dict[str, str] = {}
    for text in overrides:
        key, value = parse_override(text)
        _apply(data, key, value)
        parts = key.split(".")
        origins.update({".".join(parts[: i + 1]): SET for i in range(len(parts))})
    return config_from_dict(data, src, origins, base)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as nested plain dicts (unset optional keys are None)."""
    return dataclasses.asdict(cfg)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_ESCAPES.update({chr(i): f"\\u{i:04x}" for i in range(32) if chr(i) not in _ESCAPES})
_ESCAPES["\x7f"] = "\\u007f"


def _emit(obj: Any, prefix: str, comments: bool) -> list[str]:
    """TOML lines of one section and its subsections, with the schema's comments if asked."""
    lines: list[str] = []
    if comments:
        lines.append(f"# {(type(obj).__doc__ or '').strip()}")
    scalars = [f for f in dataclasses.fields(obj) if not _is_section(_hints(type(obj))[f.name])]
    if scalars:
        lines.append(f"[{prefix}]")
    for f in scalars:
        value = getattr(obj, f.name)
        if comments:
            lines.append(f"# {f.metadata['doc']}")
        if value is not None:
            lines.append(f"{f.name} = {_toml_value(value)}")
        elif comments:
            lines.append(f"# {f.name} = {_toml_value(f.metadata['example'])}")
    for f in dataclasses.fields(obj):
        if _is_section(_hints(type(obj))[f.name]):
            lines += [""] * bool(lines) + [
                *_emit(getattr(obj, f.name), f"{prefix}.{f.name}", comments)
            ]
    return lines


def _document(cfg: TrainConfig, comments: bool) -> str:
    lines: list[str] = []
    for f in dataclasses.fields(cfg):
        lines += [*_emit(getattr(cfg, f.name), f.name, comments), ""]
    return "\n".join(lines)


def config_to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML (unset optional keys omitted); it loads back equal."""
    return _document(cfg, comments=False)


def default_config_text() -> str:
    """The complete default config, a comment per key: what `xrdiag train --print-config` shows."""
    head = [
        "# xrdiag train configuration (TOML). Every key is optional; the values below are the",
        "# defaults. Relative paths are relative to this file. Override any key on the command",
        "# line: --set section.key=value (e.g. --set dann.lambda_max=0.5).",
        "",
    ]
    return "\n".join(head) + _document(TrainConfig(), comments=True)


def validate_against_corpus(cfg: TrainConfig, corpus: Any, source: str = "config") -> None:
    """The protocol's languages and domains must exist in the corpus (`Corpus.langs/.domains`)."""
    from xrdiag.core.corpus.langcodes import normalize_lang

    p = cfg.protocol
    checks = [("protocol.pivot", [p.pivot], corpus.langs, "language")]
    checks.append(("protocol.train_langs", p.train_langs, corpus.langs, "language"))
    checks.append(("protocol.train_domains", p.train_domains, corpus.domains, "domain"))
    for key, wanted, available, noun in checks:
        for value in wanted:
            v = normalize_lang(value) if noun == "language" else value
            if v not in available:
                raise UserError(
                    f"{source}: {key}: {value!r} is not a {noun} of corpus "
                    f"{corpus.source}; expected one of: {', '.join(available)}"
                )
