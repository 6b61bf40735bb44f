"""Every sentence-pair file in one validated frame: PAWS-X, XNLI and the generic pairs schema.

The generic schema is a CSV, TSV, JSONL or Parquet table with columns `sentence1, sentence2,
label, lang1, lang2` and optional `domain, id, split, pair_id, kind` (what `xrdiag task build`
writes); PAWS-X and XNLI are read as distributed (`pairs_formats.py`), and Hugging Face
datasets as `hf:NAME[:CONFIG][@SPLIT]` (`pairs_hf.py`). Whatever the input, the
result has the columns `PAIRS_COLUMNS` (plus `kind` when the file has it):

- `pair_id`: unique per row (given, or `<row>` for generic files);
- `id`: the cluster unit for intervals and the unit of splits (given, else the pair_id);
- `label`: Int64 in 0..num_labels-1; `lang1`, `lang2`: BCP-47, normalised;
- `domain`: given, else "pairs"; `split`: train/dev/test, or null when the file has none.

The first problem found is a `UserError` of one line: file, row, column, what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.core.corpus import SPLITS
from xrdiag.core.corpus.langcodes import lang_problem, normalize_lang
from xrdiag.core.task import pairs_formats as fmt
from xrdiag.core.task.pairs_hf import is_hf, read_hf_pairs
from xrdiag.errors import UserError

REQUIRED = ("sentence1", "sentence2", "label", "lang1", "lang2")
PAIRS_COLUMNS = ("pair_id", "id", "sentence1", "sentence2", "label", "lang1", "lang2", "domain",
                 "split")  # fmt: skip
DEFAULT_DOMAIN = "pairs"


@dataclass(frozen=True)
class PairsSet:
    """A validated pairs frame and what it came from."""

    frame: pl.DataFrame
    source: str
    format: str  # "pawsx", "xnli" or "pairs"
    label_names: tuple[str, ...]

    @property
    def has_split(self) -> bool:
        return self.frame["split"].null_count() < self.frame.height

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def read_pairs(path: Path | str, num_labels: int | None = None) -> PairsSet:
    """Read and validate a pairs file or a PAWS-X / XNLI directory (module docstring).

    `num_labels`: labels must lie in 0..num_labels-1 (default: any non-negative integer, and
    the label set is 0..max, at least two labels).
    """
    parts: list[tuple[Any, pl.DataFrame]]
    if is_hf(str(path)):  # a Hugging Face dataset (pairs_hf.py)
        kind, parts = "pairs", read_hf_pairs(str(path))
        return _pairs_set(parts, str(path), kind, num_labels)
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or directory; expected a pairs file")
    if path.is_dir():
        xnli = fmt.xnli_files(path)
        pawsx = fmt.pawsx_files(path)
        if xnli:
            kind, parts = "xnli", [(p, fmt.read_xnli(p)) for p in xnli]
        elif pawsx:
            kind, parts = "pawsx", [(p, fmt.read_pawsx(p)) for p in pawsx]
        else:
            raise UserError(
                f"{path}: a directory without PAWS-X (<lang>/train.tsv, dev_2k.tsv, "
                "test_2k.tsv) or XNLI (xnli.dev.tsv, xnli.test.tsv) files"
            )
    elif fmt.is_xnli_file(path):
        kind, parts = "xnli", [(path, fmt.read_xnli(path))]
    elif fmt.is_pawsx_file(path):
        kind, parts = "pawsx", [(path, fmt.read_pawsx(path))]
    else:
        kind, parts = "pairs", [(path, fmt.read_table(path))]
    return _pairs_set(parts, str(path), kind, num_labels)


def _pairs_set(
    parts: list[tuple[Any, pl.DataFrame]], path: str, kind: str, num_labels: int | None
) -> PairsSet:
    """The validated parts of one source as one frame, with its label names."""
    fixed = {"xnli": len(fmt.XNLI_LABELS), "pawsx": len(fmt.PAWSX_LABELS)}.get(kind)
    if fixed is not None and num_labels is not None and num_labels != fixed:
        raise UserError(
            f"{path}: {kind.upper()} has {fixed} labels; expected num_labels = {fixed}, "
            f"got {num_labels}"
        )
    limit = num_labels or fixed
    frames = [_validate(frame, str(p), limit) for p, frame in parts]
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    _check_across_rows(frame, str(path))
    names = {"xnli": fmt.XNLI_LABELS, "pawsx": fmt.PAWSX_LABELS}.get(kind)
    if names is None:
        count = max(limit or 0, int(frame["label"].max()) + 1, 2)  # type: ignore[arg-type]
        names = tuple(str(i) for i in range(count))
    return PairsSet(frame, path, kind, names)


def _empty_problem(frame: pl.DataFrame, src: str, columns: tuple[str, ...]) -> str | None:
    for col in columns:
        bad = frame.filter(pl.col(col).is_null() | (pl.col(col).str.strip_chars() == ""))
        if bad.height:
            return f"{src}, row {bad[fmt.ROW][0]}, column {col!r}: empty value; expected text"
    return None


def _validate(frame: pl.DataFrame, src: str, num_labels: int | None) -> pl.DataFrame:
    """One file's raw string table -> the validated columns (module docstring)."""
    data = [c for c in frame.columns if c != fmt.ROW]
    missing = [c for c in REQUIRED if c not in data]
    if missing:
        raise UserError(
            f"{src}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)} "
            f"(optional: domain, id, split); found {', '.join(data) or 'none'}"
        )
    if frame.height == 0:
        raise UserError(f"{src}: no rows; expected labelled sentence pairs")
    optional = [c for c in ("domain", "id", "split", "pair_id") if c in data]
    problem = _empty_problem(frame, src, ("sentence1", "sentence2", "lang1", "lang2", *optional))
    if problem:
        raise UserError(problem)
    labels = frame["label"].cast(pl.Int64, strict=False)
    upper = f"0..{num_labels - 1}" if num_labels else "0 or more"
    bad = frame.filter(
        labels.is_null() | (labels < 0) | (labels >= (num_labels or 2**62))
    )  # fmt: skip
    if bad.height:
        raise UserError(
            f"{src}, row {bad[fmt.ROW][0]}, column 'label': {bad['label'][0]!r}; "
            f"expected an integer in {upper}"
        )
    norm = {}
    for col in ("lang1", "lang2"):
        for code in frame[col].unique().to_list():
            why = lang_problem(code)
            if why:
                row = frame.filter(pl.col(col) == code)[fmt.ROW][0]
                raise UserError(f"{src}, row {row}, column {col!r}: {why}")
            norm[code] = normalize_lang(code)
    if "split" in data:
        bad = frame.filter(~pl.col("split").is_in(list(SPLITS)))
        if bad.height:
            raise UserError(
                f"{src}, row {bad[fmt.ROW][0]}, column 'split': {bad['split'][0]!r}; "
                "expected train, dev or test"
            )
    pair_id = pl.col("pair_id") if "pair_id" in data else pl.col(fmt.ROW).cast(pl.String)
    out = frame.with_columns(label=labels).select(
        pair_id=pair_id,
        id=pl.col("id") if "id" in data else pair_id,
        sentence1="sentence1",
        sentence2="sentence2",
        label="label",
        lang1=pl.col("lang1").replace_strict(norm),
        lang2=pl.col("lang2").replace_strict(norm),
        domain=pl.col("domain") if "domain" in data else pl.lit(DEFAULT_DOMAIN),
        split=pl.col("split") if "split" in data else pl.lit(None, pl.String),
        **({"kind": "kind"} if "kind" in data else {}),
        **{fmt.ROW: fmt.ROW},
    )
    dup = out.filter(pl.col("pair_id").is_duplicated())
    if dup.height:
        rows = dup.filter(pl.col("pair_id") == dup["pair_id"][0])[fmt.ROW]
        raise UserError(
            f"{src}, row {rows[1]}, column 'pair_id': {dup['pair_id'][0]!r} repeats row "
            f"{rows[0]}; expected one row per pair_id"
        )
    return out.drop(fmt.ROW)


def _check_across_rows(frame: pl.DataFrame, src: str) -> None:
    """Unique pair_ids across files, and no id in two splits (a split is a set of ids)."""
    dup = frame.filter(pl.col("pair_id").is_duplicated())
    if dup.height:
        raise UserError(f"{src}: pair_id {dup['pair_id'][0]!r} appears twice; expected unique")
    if frame["split"].null_count() not in (0, frame.height):
        raise UserError(f"{src}, column 'split': some rows have none; expected one per row")
    mixed = frame.filter(pl.col("split").n_unique().over("id") > 1)
    if mixed.height:
        id_ = mixed["id"][0]
        found = sorted(mixed.filter(pl.col("id") == id_)["split"].unique().to_list())
        raise UserError(
            f"{src}, column 'split': id {id_!r} is in splits {', '.join(found)}; expected one "
            "split per id (its pairs are one cluster)"
        )
