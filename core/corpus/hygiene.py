"""Corpus hygiene: identical texts under different ids, and placeholder rows.

Parallel corpora repeat sentences under several ids (TICO-19: "Wash your hands." in many
documents), so a split derived from the id alone can put the same sentence in train and in
dev/test, and a translation memory can carry placeholders (`{NS}`: no segment) as text. The
derived split keeps every group of ids that share a sentence (in any language) in one split,
and `corpus info` counts both.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import polars as pl

# A whole "sentence" that is one brace-wrapped tag, as translation memories mark a missing
# segment (TICO-19's `{NS}`).
PLACEHOLDER = re.compile(r"^\{[^{}\s]{1,16}\}$")


def text_key(text: str) -> str:
    """The form under which two sentences count as the same text: NFKC, case-folded,
    whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def duplicate_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """Per language, the groups of distinct ids sharing one normalised text: lang, ids."""
    keyed = frame.select(
        "id", "lang", pl.col("text").map_elements(text_key, return_dtype=pl.String).alias("key")
    )
    return (
        keyed.group_by("lang", "key")
        .agg(pl.col("id").unique().sort().alias("ids"))
        .filter(pl.col("ids").list.len() > 1)
        .select("lang", "ids")
        .sort("lang", "ids")
    )


def placeholder_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose text is a placeholder tag rather than a sentence."""
    return frame.filter(pl.col("text").str.contains(PLACEHOLDER.pattern))


def grouped_splits(frame: pl.DataFrame, split_of: Callable[[str], str]) -> dict[str, str]:
    """Split of every id: its own, unless it shares a sentence with other ids, in which case
    the whole connected group takes the split of its smallest id (union-find over groups)."""
    ids = frame["id"].unique().sort().to_list()
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for group in duplicate_groups(frame)["ids"].to_list():
        first = root(group[0])
        for other in group[1:]:
            r = root(other)
            if r != first:
                keep, drop = sorted((first, r))
                parent[drop] = keep
                first = keep
    return {i: split_of(root(i)) for i in ids}
