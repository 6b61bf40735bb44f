"""Sentence-pair datasets from Hugging Face: `hf:NAME[:CONFIG][@SPLIT][?KEY=COLUMN,...]`.

The same sources as the corpus reader (`core/corpus/hf_source.py`: a hub name read through
`datasets.load_dataset`, offline from the local cache with HF_DATASETS_OFFLINE=1, or a folder
written by `save_to_disk`), read as labelled pairs for `pairs_io.read_pairs`:

- `sentence1`, `sentence2`, `label` columns by those names (PAWS-X's `paws-x` configs), or
  `premise`, `hypothesis`, `label` (XNLI's per-language `xnli` configs);
- other names mapped with `?sentence1=COL,sentence2=COL,label=COL,id=COL,domain=COL`;
- the languages: `lang1=COL,lang2=COL` columns; else `lang=CODE` for both sentences; else the
  config's name when it is a language code (`hf:paws-x:de`, `hf:xnli:sw`).

Every split is read (or the one after @); split names become train/dev/test as for corpora
(`validation` is dev) and ids are scoped by split (`test:17`). The cluster id: the `id` column
(a PAWS-X id names the source pair), else the premise for premise/hypothesis data (an XNLI
premise has three hypotheses, one cluster), else the row. A labelled row with label -1 (the
hub's "no gold label") is an error like any other bad label.
"""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl

from xrdiag.core.corpus.hf_source import SPLIT_NAMES, _load, key_values, parse_source
from xrdiag.core.corpus.langcodes import lang_problem
from xrdiag.core.task import pairs_formats as fmt
from xrdiag.errors import UserError

KEYS = ("sentence1", "sentence2", "label", "lang1", "lang2", "lang", "id", "domain")
NLI = {"premise": "sentence1", "hypothesis": "sentence2"}


def is_hf(source: str) -> bool:
    return str(source).startswith("hf:")


def _mapping(spec: str | None, source: str) -> dict[str, str]:
    try:
        return key_values(spec, KEYS)
    except ValueError as exc:
        raise UserError(
            f"{source}: {str(exc)!r} is not KEY=COLUMN; expected keys "
            f"{', '.join(KEYS)} (lang=CODE names both sentences' language)"
        ) from None


def _languages(mapping: dict[str, str], config: str | None, source: str) -> str | None:
    """The one language of both sentences (lang=, or the config's name), when no columns say."""
    if "lang1" in mapping and "lang2" in mapping:
        return None
    code = mapping.get("lang") or config
    if code is None or lang_problem(code) is not None:
        raise UserError(
            f"{source}: no language for the sentences; expected lang1=COLUMN,lang2=COLUMN, "
            "lang=CODE, or a config named by a language code (hf:paws-x:de)"
        )
    return code


def _part(frame: pl.DataFrame, split: str, mapping: dict[str, str], lang: str | None,
          source: str) -> pl.DataFrame:  # fmt: skip
    """One split as the raw string table `pairs_io` validates (columns, `__row`)."""
    columns = dict(mapping)
    for name, key in NLI.items():
        if key not in columns and key not in frame.columns and name in frame.columns:
            columns[key] = name
    for key in ("sentence1", "sentence2", "label", "lang1", "lang2", "id", "domain"):
        columns.setdefault(key, key)
    for key in ("sentence1", "sentence2", "label"):
        if columns[key] not in frame.columns:
            raise UserError(
                f"{source} ({split}): no column {columns[key]!r} for {key}; found "
                f"{', '.join(frame.columns) or 'none'} (map one with ?{key}=COLUMN)"
            )
    out: dict[str, Any] = {
        key: pl.col(columns[key]).cast(pl.String)
        for key in ("sentence1", "sentence2", "label", "domain")
        if columns[key] in frame.columns
    }
    if lang is not None:
        out["lang1"] = out["lang2"] = pl.lit(lang)
    else:
        out |= {key: pl.col(columns[key]).cast(pl.String) for key in ("lang1", "lang2")}
    if columns["id"] in frame.columns:
        cluster = pl.col(columns["id"]).cast(pl.String)
    elif columns["sentence1"] == "premise":  # NLI: a premise's hypotheses are one cluster
        cluster = pl.col("premise").map_elements(
            lambda t: hashlib.sha1(str(t).encode()).hexdigest()[:16], return_dtype=pl.String
        )
    else:
        cluster = pl.int_range(pl.len()).cast(pl.String)
    table = frame.select(
        **out,
        id=pl.lit(f"{split}:") + cluster,
        pair_id=pl.lit(f"{split}:") + pl.int_range(pl.len()).cast(pl.String),
        split=pl.lit(SPLIT_NAMES.get(split), pl.String),
    )
    if table["split"].null_count():
        table = table.drop("split")
    return table.with_columns((pl.int_range(pl.len()) + 1).alias(fmt.ROW))


def read_hf_pairs(source: str) -> list[tuple[str, pl.DataFrame]]:
    """[(where, raw table)] per split of an hf: pairs source; unreadable: one-line UserError."""
    name, config, _split, spec = parse_source(source)
    parts, _ = _load(source)
    mapping = _mapping(spec, source)
    lang = _languages(mapping, config, source)
    out = []
    for split, dataset in parts:
        frame = pl.from_arrow(dataset.with_format("arrow")[:])
        assert isinstance(frame, pl.DataFrame)
        out.append((f"{source} ({split})", _part(frame, split, mapping, lang, source)))
    if not out:
        raise UserError(f"{source}: no split to read; expected labelled sentence pairs")
    return out
