"""Validated embedding rows and the language pairs a retrieval-style analysis scores.

Shared by retrieval, xSIM, language bias and robustness, so every one of them reads its inputs,
reports a bad row and resolves `--pivot` or explicit pairs the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from xrdiag.errors import UserError


def check_inputs(embeddings: np.ndarray, meta: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame]:
    """Validate shapes and metadata; float32 embeddings and meta (id, lang, domain, code, row).

    `code` is an integer per distinct id (translations share it), `row` the embedding row.
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != meta.height:
        raise UserError(f"embeddings: expected shape [{meta.height}, dim], got {emb.shape}")
    if not np.isfinite(emb).all():
        raise UserError("embeddings: contain NaN or infinite values (expected finite floats)")
    for col in ("id", "lang", "domain"):
        if col not in meta.columns:
            raise UserError(f"metadata: column {col!r} is missing (expected id, lang, domain)")
        if meta[col].null_count():
            raise UserError(f"metadata: column {col!r} has empty values (expected no nulls)")
    ids, codes = np.unique(meta["id"].cast(pl.String).to_numpy(), return_inverse=True)
    meta = meta.select(
        pl.col("id").cast(pl.String), pl.col("lang").cast(pl.String),
        pl.col("domain").cast(pl.String),
    ).with_columns(
        code=pl.Series(codes.astype(np.int64)), row=pl.int_range(pl.len(), dtype=pl.Int64)
    )  # fmt: skip
    dup = meta.filter(pl.int_range(pl.len()).over("lang", "code") == 1)
    if dup.height:
        lang, code, row = dup.sort("row").select("lang", "code", "row").row(0)
        first = meta.filter((pl.col("lang") == lang) & (pl.col("code") == code))["row"][0]
        raise UserError(
            f"metadata: row {row + 1}, column 'id': id {str(ids[code])!r} already appears in "
            f"row {first + 1} for language {lang!r} (expected one row per id and language)"
        )
    return emb.astype(np.float32, copy=False), meta


def check_choice(values: Sequence[str] | str, allowed: Sequence[str], flag: str) -> list[str]:
    """Validate a subset of named options; keep order, drop duplicates."""
    chosen = list(dict.fromkeys([values] if isinstance(values, str) else values))
    bad = [v for v in chosen if v not in allowed]
    if bad or not chosen:
        raise UserError(
            f"{flag}: unknown or empty choice {bad or chosen}; expected some of {list(allowed)}"
        )
    return chosen


def resolve_pairs(
    present: list[str], pairs: str | Sequence[tuple[str, str]], pivot: str | None
) -> list[tuple[str, str]]:
    """The ordered (query, document) language pairs to evaluate."""
    known = set(present)
    if pivot is not None:
        if not isinstance(pairs, str):
            raise UserError("--pivot: give either a pivot language or explicit pairs, not both")
        if pivot not in known:
            raise UserError(f"--pivot: language {pivot!r} not in the data (have {present})")
        return [p for lang in present if lang != pivot for p in ((lang, pivot), (pivot, lang))]
    if isinstance(pairs, str):
        if pairs != "all":
            raise UserError(f"pairs: expected 'all' or a list of (src, tgt) pairs, got {pairs!r}")
        return [(s, t) for s in present for t in present if s != t]
    out = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise UserError(f"pairs: {pair!r} is not a pair of two different languages")
        for lang in pair:
            if lang not in known:
                raise UserError(f"pairs: language {lang!r} not in the data (have {present})")
        out.append((pair[0], pair[1]))
    return list(dict.fromkeys(out))


def pair_groups(ordered: list[tuple[str, str]]) -> list[tuple[str, str, bool]]:
    """Unordered groups (s, t, also_reverse): one similarity pass serves both directions."""
    wanted, seen, groups = set(ordered), set(), []
    for s, t in ordered:
        if frozenset((s, t)) not in seen:
            seen.add(frozenset((s, t)))
            groups.append((s, t, (t, s) in wanted))
    return groups


def shared_rows(meta: pl.DataFrame, s: str, t: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of `s` and of `t` whose id both languages have, each sorted by id.

    This is the common candidate pool of the pair: the i-th row of one side is the translation
    of the i-th row of the other, on a fully parallel corpus and on one whose pairs are
    separate (Tatoeba) alike.
    """
    src = meta.filter(pl.col("lang") == s)
    tgt = meta.filter(pl.col("lang") == t)
    shared = np.intersect1d(src["code"].to_numpy(), tgt["code"].to_numpy())
    return (
        src.filter(pl.col("code").is_in(shared)).sort("code"),
        tgt.filter(pl.col("code").is_in(shared)).sort("code"),
    )
