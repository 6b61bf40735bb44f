"""Pair files as distributed, read into raw string tables for `pairs_io` to validate.

- PAWS-X (Yang et al. 2019; github.com/google-research-datasets/paws, `pawsx/README.md`):
  `x-final/<lang>/{train,translated_train,dev_2k,test_2k}.tsv`, tab-separated with the header
  `id, sentence1, sentence2, label` (label 1 = paraphrase); the language is the directory's
  name, the split the file's. Both sentences are in that language. A PAWS-X id names the source
  pair in its PAWS-Wiki split file, so ids are made unique as `<split>:<id>`. A directory is
  read for `train.tsv`, `dev_2k.tsv` and `test_2k.tsv` of every language (the zero-shot
  protocol); `translated_train.tsv` (machine-translated training data, the translate-train
  baseline) only when named as a file.
- XNLI (Conneau et al. 2018; the XNLI-1.0 zip): `xnli.{dev,test}.tsv` (columns `language`,
  `gold_label`, `sentence1`, `sentence2`, `promptID`, `pairID`, `genre`, among others) and
  `xnli.{dev,test}.jsonl` (the same keys). gold_label entailment/neutral/contradiction is
  0/1/2; `genre` is the domain; the cluster id is the premise (`promptID`: its three hypotheses
  share it), `<split>:<promptID>`.
- The generic pairs schema (`pairs_io.py`): CSV, TSV, JSONL or Parquet.

TSV files are read without quote handling: neither PAWS-X nor XNLI quotes its fields, and
their sentences contain quote characters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from xrdiag.errors import UserError

ROW = "__row"  # the row's number in its file, as an editor counts lines (JSONL) or rows (tables)
PAWSX_FILES = {"train.tsv": "train", "translated_train.tsv": "train", "dev_2k.tsv": "dev",
               "test_2k.tsv": "test"}  # fmt: skip
PAWSX_ZERO_SHOT = ("train.tsv", "dev_2k.tsv", "test_2k.tsv")
PAWSX_COLUMNS = ("id", "sentence1", "sentence2", "label")
PAWSX_LABELS = ("different", "paraphrase")
XNLI_FILE = re.compile(r"xnli\.(dev|test)\.(tsv|jsonl)")
XNLI_LABELS = ("entailment", "neutral", "contradiction")
XNLI_COLUMNS = ("language", "gold_label", "sentence1", "sentence2", "promptID", "pairID")


def read_table(path: Path) -> pl.DataFrame:
    """A CSV, TSV, JSONL or Parquet file as string columns plus `__row`; unreadable: UserError."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            rows, numbers = [], []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                if not isinstance(row, dict):
                    raise UserError(f"{path}, row {number}: not a JSON object")
                rows.append({k: v if v is None else _text(v) for k, v in row.items()})
                numbers.append(number)
            frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
            return frame.with_columns(pl.Series(ROW, numbers, dtype=pl.Int64))
        if suffix in (".csv", ".tsv"):
            frame = pl.read_csv(
                path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=0,
                quote_char=None if suffix == ".tsv" else '"',
            )  # fmt: skip
            return frame.with_columns((pl.int_range(pl.len()) + 2).alias(ROW))  # header: row 1
        if suffix == ".parquet":
            frame = pl.read_parquet(path)
            frame = frame.with_columns(pl.col(c).cast(pl.String) for c in frame.columns)
            return frame.with_columns((pl.int_range(pl.len()) + 1).alias(ROW))
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot read: {first}") from None
    raise UserError(f"{path}: expected a .csv, .tsv, .jsonl or .parquet pairs file")


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def is_pawsx_file(path: Path) -> bool:
    return path.name in PAWSX_FILES


def pawsx_files(root: Path) -> list[Path]:
    """The zero-shot PAWS-X files under a directory (x-final/ or one language's folder)."""
    return sorted(p for p in root.rglob("*.tsv") if p.name in PAWSX_ZERO_SHOT)


def read_pawsx(path: Path) -> pl.DataFrame:
    """One PAWS-X file in the generic columns (strings; lang from the directory name)."""
    frame = read_table(path)
    found = [c for c in frame.columns if c != ROW]
    if tuple(found) != PAWSX_COLUMNS:
        raise UserError(
            f"{path}: columns {', '.join(found) or 'none'}; expected the PAWS-X header "
            f"{', '.join(PAWSX_COLUMNS)}"
        )
    lang, split = path.parent.name, PAWSX_FILES[path.name]
    return frame.select(
        pair_id=pl.lit(f"{lang}:{split}:") + pl.col("id"),
        id=pl.lit(f"{split}:") + pl.col("id"),
        sentence1="sentence1",
        sentence2="sentence2",
        label="label",
        lang1=pl.lit(lang),
        lang2=pl.lit(lang),
        domain=pl.lit("wiki"),
        split=pl.lit(split),
        **{ROW: ROW},
    )


def xnli_files(root: Path) -> list[Path]:
    """The XNLI files in a directory: the .tsv ones, or the .jsonl ones when there is no .tsv."""
    found = sorted(p for p in root.iterdir() if XNLI_FILE.fullmatch(p.name))
    tsv = [p for p in found if p.suffix == ".tsv"]
    return tsv or found


def is_xnli_file(path: Path) -> bool:
    return XNLI_FILE.fullmatch(path.name) is not None


def read_xnli(path: Path) -> pl.DataFrame:
    """One XNLI file (TSV or JSONL) in the generic columns; gold_label -> 0/1/2."""
    frame = read_table(path)
    missing = [c for c in XNLI_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the XNLI columns "
            f"{', '.join(XNLI_COLUMNS)}"
        )
    match = XNLI_FILE.fullmatch(path.name)
    split = match.group(1) if match else "test"
    bad = frame.filter(~pl.col("gold_label").is_in(list(XNLI_LABELS)))
    if bad.height:
        row, value = bad[ROW][0], bad["gold_label"][0]
        raise UserError(
            f"{path}, row {row}, column 'gold_label': {value!r}; expected one of "
            f"{', '.join(XNLI_LABELS)}"
        )
    codes = {name: str(i) for i, name in enumerate(XNLI_LABELS)}
    domain = pl.col("genre") if "genre" in frame.columns else pl.lit("xnli")
    return frame.select(
        pair_id=pl.concat_str([pl.lit(split), "language", "pairID"], separator=":"),
        id=pl.lit(f"{split}:") + pl.col("promptID"),
        sentence1="sentence1",
        sentence2="sentence2",
        label=pl.col("gold_label").replace_strict(codes),
        lang1="language",
        lang2="language",
        domain=domain,
        split=pl.lit(split),
        **{ROW: ROW},
    )
