"""Hugging Face datasets as corpora: `hf:NAME[:CONFIG][@SPLIT]` or `hf:DIR[@SPLIT]`.

NAME is read through `datasets.load_dataset` (from the local cache when HF_DATASETS_OFFLINE=1);
DIR is a `Dataset` or `DatasetDict` written by `save_to_disk`. Without @SPLIT every split is read
and kept in `hf_split`; split names that say train/dev/test (`validation`, `devtest` ...) become
xrdiag's `split`, and ids are scoped by split (`test:17`) because datasets number each split
from the start. Columns map with `id=...,lang=...,text=...,domain=...,split=...,label=...`, given
as `columns` (the CLI's --columns) or after a `?` in the source (`hf:wmt19:de-en?text=translation`).

Three shapes are read:
- long: one row per sentence, with a language column (`lang`, or `lang=` mapped);
- wide: one row per translation group, one column per language (`en`, `fr`, ...), or the columns
  a pattern names (`text=sentence_*` reads `sentence_eng_Latn` as language `eng_Latn`);
- a translation struct column (`translation: {"en": ..., "fr": ...}`, or `text=COLUMN`).
Wide rows are unpivoted to the long format; a missing translation (null) is no sentence.
`datasets` is imported here only, and only for `hf:` sources.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.core.corpus.langcodes import lang_problem
from xrdiag.core.corpus.langtables import DEFAULT_SCRIPT, ISO639_TO_1, MACROLANGUAGE
from xrdiag.core.corpus.raw import ROW, RawTable, err

KEYS = ("id", "lang", "text", "domain", "split", "label")
COLUMNS_HELP = "id=COLUMN,lang=COLUMN,text=COLUMN (also domain=, split=, label=)"
# Hugging Face split names -> xrdiag's splits (FLORES calls its test split devtest).
SPLIT_NAMES = {
    "train": "train",
    "validation": "dev",
    "valid": "dev",
    "dev": "dev",
    "test": "test",
    "devtest": "test",
}
INSTALL = "the datasets library: pip install datasets (or pip install 'xrdiag[hf]')"
_KNOWN_THREE = set(ISO639_TO_1) | set(MACROLANGUAGE) | set(DEFAULT_SCRIPT)


def key_values(spec: str | None, keys: tuple[str, ...]) -> dict[str, str]:
    """`id=sid,text=sentence` -> {"id": "sid", "text": "sentence"}; a part that is not
    KEY=VALUE with a key of `keys` raises ValueError(that part), for the caller's message."""
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or key not in keys or not value:
            raise ValueError(part.strip())
        mapping[key] = value
    return mapping


def parse_columns(spec: str | None, source: str) -> dict[str, str]:
    """A corpus' column mapping (`id=sid,text=sentence`), or a UserError."""
    try:
        return key_values(spec, KEYS)
    except ValueError as exc:
        raise err(source, "columns", f"{str(exc)!r} is not KEY=COLUMN", COLUMNS_HELP) from None


def parse_source(source: str) -> tuple[str, str | None, str | None, str | None]:
    """`hf:NAME:CONFIG@SPLIT?COLUMNS` -> (name or folder, config, split, columns)."""
    body, _, columns = source.removeprefix("hf:").partition("?")
    split = None
    head, at, tail = body.rpartition("@")
    if at and re.fullmatch(r"[\w.\-]+", tail):
        body, split = head, tail
    if not body:
        raise err(source, None, "no dataset named", "hf:NAME[:CONFIG][@SPLIT] or hf:/path/to/dir")
    if body.startswith(("/", ".", "~")) or Path(body).expanduser().exists():
        return str(Path(body).expanduser()), None, split, columns or None
    name, _, config = body.partition(":")
    return name, config or None, split, columns or None


def _datasets(source: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise err(
            source, None, "the Hugging Face datasets library is not installed", INSTALL
        ) from None
    return datasets


def _load(source: str) -> tuple[list[tuple[str, Any]], str | None]:
    """([(split name, Dataset)], columns in the source) of an hf: source."""
    name, config, split, columns = parse_source(source)
    datasets = _datasets(source)
    local = Path(name).is_dir() or name.startswith(("/", ".", "~"))
    try:
        if local:
            loaded = datasets.load_from_disk(name)
        else:
            loaded = datasets.load_dataset(name, config)
    except Exception as exc:  # datasets raises many types (FileNotFound, ConnectionError, ...)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if local:
            expected = "a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk"
        elif datasets.config.HF_DATASETS_OFFLINE:
            expected = "a dataset in the local Hugging Face cache (HF_DATASETS_OFFLINE=1)"
        else:
            expected = "a Hugging Face dataset name (and config) that datasets.load_dataset reads"
        raise err(source, None, f"cannot be loaded ({reason})", expected) from None
    if isinstance(loaded, datasets.Dataset):
        parts = [(split or "data", loaded)]
        if split is not None and local:
            raise err(
                source, None, f"@{split} given, but the folder holds one Dataset", "no @SPLIT"
            )
    else:
        if split is not None and split not in loaded:
            available = ", ".join(loaded) or "none"
            raise err(source, None, f"no split {split!r} (available: {available})", "@SPLIT")
        parts = [(s, loaded[s]) for s in ([split] if split else list(loaded))]
    return parts, columns


def _is_language_column(name: str, dtype: pl.DataType) -> bool:
    """A wide layout's language column: text, named by a known code (`en`, `fra`, `pt-BR`)."""
    if dtype != pl.String or name in KEYS or lang_problem(name) is not None:
        return False
    primary = re.split(r"[-_]", name)[0].lower()
    return len(primary) == 2 or primary in _KNOWN_THREE


def _long_or_wide(frame: pl.DataFrame, mapping: dict[str, str], source: str) -> pl.DataFrame:
    """The split's rows in long format, with `__hf_row` (1-based) and `lang_code`."""
    frame = frame.with_row_index("__hf_row", offset=1)
    for key, column in mapping.items():
        if "*" in column or (
            key == "text" and column in frame.columns and _is_struct(frame, column)
        ):
            continue
        if column not in frame.columns:
            found = ", ".join(c for c in frame.columns if c != "__hf_row")
            raise err(
                source, f"column {column!r}", f"not in the dataset (found: {found})", COLUMNS_HELP
            )
    text = mapping.get("text")
    if text is None and "lang" not in mapping and "lang" not in frame.columns:
        if "translation" in frame.columns and _is_struct(frame, "translation"):
            text = "translation"
    text = text or ""
    glob = "*" in text
    struct = bool(text) and not glob and _is_struct(frame, text)
    renames = {c: k for k, c in mapping.items() if "*" not in c and not (struct and c == text)}
    # A mapped column replaces a column already named like its key (`id=sid` over an `id`).
    frame = frame.drop([k for k in renames.values() if k in frame.columns and k not in renames])
    if struct:
        fields = frame[text].struct.fields
        return _unpivot(frame.unnest(text).rename(renames), {f: f for f in fields}, source)
    if glob:
        pattern = re.compile(fnmatch.translate(text).replace(".*", "(.+)", 1))
        wide = {c: m.group(1) for c in frame.columns if (m := pattern.fullmatch(c))}
        if not wide:
            expected = "columns such as sentence_eng_Latn"
            raise err(source, None, f"no column matches text={text}", expected)
        return _unpivot(frame.rename(renames), wide, source)
    frame = frame.rename(renames)
    if "lang" in frame.columns:  # long: one row per sentence already
        return frame.with_columns(
            pl.col("lang").cast(pl.String).alias("lang_code"),
            pl.lit(None, pl.String).alias("__column"),
        )
    wide = {c: c for c, t in frame.schema.items() if _is_language_column(c, t)}
    if not wide:
        found = ", ".join(c for c in frame.columns if c != "__hf_row")
        problem = f"no language column and no column per language (found: {found})"
        raise err(source, None, problem, f"columns mapped with {COLUMNS_HELP}")
    return _unpivot(frame, wide, source)


def _is_struct(frame: pl.DataFrame, column: str) -> bool:
    return isinstance(frame.schema[column], pl.Struct)


def _unpivot(frame: pl.DataFrame, wide: dict[str, str], source: str) -> pl.DataFrame:
    """One row per (row, language column) with a text; the language is the column's code."""
    if "id" not in frame.columns:
        frame = frame.with_columns(pl.col("__hf_row").cast(pl.String).alias("id"))
    index = [c for c in frame.columns if c not in wide]
    long = frame.unpivot(on=list(wide), index=index, variable_name="lang_code", value_name="text")
    long = long.filter(pl.col("text").is_not_null()).with_columns(
        pl.col("lang_code").alias("__column"),
        pl.col("lang_code").replace_strict(wide, return_dtype=pl.String),
    )
    return long.with_columns(pl.col("lang_code").alias("lang")).sort(
        "__hf_row", maintain_order=True
    )


def read_hf(source: str, columns: str | None = None) -> RawTable:
    """A Hugging Face dataset as a raw long table; rows located as `train row 17 (fr)`."""
    parts, in_source = _load(source)
    mapping = parse_columns(in_source, source) | parse_columns(columns, source)
    several = len(parts) > 1
    frames = []
    for name, dataset in parts:
        frame = pl.from_arrow(dataset.with_format("arrow")[:])
        assert isinstance(frame, pl.DataFrame)
        long = _long_or_wide(frame, mapping, source).with_columns(pl.lit(name).alias("hf_split"))
        if several and "id" in long.columns:
            long = long.with_columns(
                (pl.lit(f"{name}:") + pl.col("id").cast(pl.String)).alias("id")
            )
        frames.append(long)
    frame = pl.concat(frames, how="diagonal_relaxed")
    if "split" not in frame.columns and set(frame["hf_split"].unique()) <= set(SPLIT_NAMES):
        frame = frame.with_columns(pl.col("hf_split").replace_strict(SPLIT_NAMES).alias("split"))
    rows, splits = frame["__hf_row"].to_list(), frame["hf_split"].to_list()
    cells = frame["__column"].to_list()  # the language column of a wide row, else None

    def locate(i: int) -> str:
        where = f"{splits[i]} row {rows[i]}" if splits[i] != "data" else f"row {rows[i]}"
        return f"{where} (column {cells[i]!r})" if cells[i] is not None else where

    return RawTable(frame.drop("__hf_row", "__column").with_row_index(ROW), source, locate)
