"""FLORES-200 (line-aligned text) and FLORES+ (Parquet) as distributed, in long format.

FLORES-200 (facebookresearch/flores, the flores200_dataset archive): `dev/eng_Latn.dev` and
`devtest/eng_Latn.devtest`, one file per language and script, 997 and 1,012 lines, plus
`metadata_dev.tsv` / `metadata_devtest.tsv` beside them (a header `URL domain topic has_image
has_hyperlink`, then one row per sentence). FLORES-101's `dev/eng.dev` naming reads the same way.
FLORES+ (openlanguagedata/flores_plus): `dev/eng_Latn.parquet`, `devtest/eng_Latn.parquet`, with
columns `id`, `iso_639_3`, `iso_15924`, `glottocode`, `text` and, in later releases, `url`,
`domain`, `topic`; a variety that shares a code with another carries its glottocode in the file
name (`apc_Arab_nort3139`, `apc_Arab_sout3123`), kept as a private-use subtag (`apc-x-nort3139`).

Both map dev -> split `dev`, devtest -> split `test`; ids are `dev:17` (line or `id` 17); the
domain is the source wiki (`wikinews`, `wikivoyage`, `wikibooks`) where known, else `general`.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from xrdiag.core.corpus.raw import RawTable, decode_utf8, err
from xrdiag.core.corpus.testset_files import (
    Block,
    check_same_length,
    located_table,
    read_lines,
    testset_lang,
)
from xrdiag.core.layout.frames import load_parquet
from xrdiag.errors import library_failure

SPLITS = {"dev": "dev", "devtest": "test"}  # the FLORES split -> xrdiag's
DEFAULT_DOMAIN = "general"
EXPECTED_TEXT = "FLORES-200 files named like dev/eng_Latn.dev and devtest/eng_Latn.devtest"
EXPECTED_PARQUET = "FLORES+ files named like devtest/eng_Latn.parquet"
_VARIANT = re.compile(r"[A-Za-z0-9]{1,8}")


def _files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))


def find_flores(path: Path) -> tuple[str, Path, list[str]] | None:
    """(layout, root, FLORES splits) when `path` is a FLORES root, split folder or file."""
    if path.is_file():  # a file stands for its whole set, not for its split
        path = path.parent.parent if path.parent.name in SPLITS else path.parent
    if path.name in SPLITS and not any((path / s).is_dir() for s in SPLITS):
        root, splits = path.parent, [path.name]
    else:
        root, splits = path, list(SPLITS)
    for layout, ext in (("flores200", None), ("flores+", ".parquet")):
        present = [s for s in splits if _files(root / s, ext or f".{s}")]
        if present:
            return layout, root, present
    return None


def _metadata(root: Path, split: str, n_lines: int, reference: Path) -> pl.DataFrame | None:
    """`metadata_<split>.tsv` as columns domain, topic, url (one row per line), if present."""
    path = root / f"metadata_{split}.tsv"
    if not path.is_file():
        return None
    rows = [
        line.removesuffix("\r").split("\t")
        for line in decode_utf8(path.read_bytes(), str(path)).split("\n")
    ]
    if rows and rows[-1] == [""]:
        rows.pop()
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "domain" not in header:
        found = ", ".join(header) or "nothing"
        expected = "a header line with a domain column (URL, domain, topic, ...)"
        raise err(str(path), "line 1", f"no 'domain' column (found {found})", expected)
    if len(rows) - 1 != n_lines:
        problem = f"{len(rows) - 1} rows, but {reference.name} has {n_lines} lines"
        raise err(str(path), None, problem, "one metadata row per sentence, after the header")
    data: dict[str, list[str]] = {}
    for column in ("domain", "topic", "url"):  # the header says URL, domain, topic, ...
        if column in header:
            k = header.index(column)
            data[column] = [row[k].strip() if k < len(row) else "" for row in rows[1:]]
    data["domain"] = [d or DEFAULT_DOMAIN for d in data["domain"]]
    return pl.DataFrame(data)


def read_flores200(root: Path, splits: list[str], source: str) -> RawTable:
    """Every language file of the splits, line-aligned within a split, metadata when present."""
    blocks = []
    for split in splits:
        files = _files(root / split, f".{split}")
        english = [p for p in files if p.name.startswith("eng_Latn.") or p.name == f"eng.{split}"]
        reference = (english or files)[0]
        n_lines = len(read_lines(reference))
        meta = _metadata(root, split, n_lines, reference)
        ids = [f"{split}:{n}" for n in range(1, n_lines + 1)]
        for path in files:
            code = path.name.removesuffix(f".{split}")
            lang = testset_lang(code, path, EXPECTED_TEXT)
            lines = read_lines(path)
            check_same_length(lines, path, reference, n_lines)
            frame = pl.DataFrame(
                {"id": ids, "lang": lang, "lang_code": code, "split": SPLITS[split], "text": lines}
            )
            if meta is not None:
                frame = pl.concat([frame, meta], how="horizontal")
            else:
                frame = frame.with_columns(pl.lit(DEFAULT_DOMAIN).alias("domain"))
            blocks.append(Block(f"{split}/{path.name}", frame))
    return located_table(blocks, source)


def _parquet_lang(path: Path) -> tuple[str, str]:
    """(BCP-47 tag, stem) of a FLORES+ file name: `eng_Latn`, or `apc_Arab_nort3139`."""
    stem = path.name.removesuffix(".parquet")
    parts = stem.split("_")
    if len(parts) not in (2, 3) or (len(parts) == 3 and not _VARIANT.fullmatch(parts[2])):
        problem = f"unknown language code: {stem!r} is not LANG_Script[_variety]"
        raise err(str(path), None, problem, EXPECTED_PARQUET)
    lang = testset_lang("_".join(parts[:2]), path, EXPECTED_PARQUET)
    return (f"{lang}-x-{parts[2].lower()}" if len(parts) == 3 else lang), stem


def _check_codes(frame: pl.DataFrame, stem: str, path: Path) -> None:
    """A file's iso_639_3 / iso_15924 columns must name the language its file name does."""
    for column, value in zip(("iso_639_3", "iso_15924"), stem.split("_")[:2], strict=True):
        if column in frame.columns:
            wrong = frame.with_row_index("n").filter(pl.col(column).cast(pl.String) != value)
            if wrong.height:
                n, found = wrong["n"][0] + 1, wrong[column][0]
                where = f"row {n}, column {column!r}"
                raise err(str(path), where, f"{found!r} in a file named {path.name}", repr(value))


def read_flores_plus(root: Path, splits: list[str], source: str) -> RawTable:
    """Every Parquet file of the splits; rows are aligned by the `id` column."""
    blocks = []
    for split in splits:
        for path in _files(root / split, ".parquet"):
            lang, stem = _parquet_lang(path)
            try:
                frame = load_parquet(path)
            except BaseException as exc:  # polars raises several types (a panic too)
                if not library_failure(exc):
                    raise
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise err(
                    str(path), None, f"not a readable Parquet file ({reason})", "Parquet"
                ) from None
            missing = [c for c in ("id", "text") if c not in frame.columns]
            if missing:
                found = ", ".join(frame.columns) or "none"
                problem = f"no column {', '.join(map(repr, missing))} (found {found})"
                raise err(
                    str(path), None, problem, "FLORES+ columns id, iso_639_3, iso_15924, text"
                )
            _check_codes(frame, stem, path)
            if "domain" not in frame.columns:
                frame = frame.with_columns(pl.lit(DEFAULT_DOMAIN).alias("domain"))
            frame = frame.with_columns(
                (pl.lit(f"{split}:") + pl.col("id").cast(pl.String)).alias("id"),
                pl.lit(lang).alias("lang"),
                pl.lit(stem).alias("lang_code"),
                pl.lit(SPLITS[split]).alias("split"),
            )
            blocks.append(Block(f"{split}/{path.name}", frame, unit="row"))
    return located_table(blocks, source)
