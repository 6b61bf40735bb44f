"""Training and dev data under the zero-shot protocol: which pairs training may see.

Training sees translation pairs pivot<->X, for X among the protocol's training languages, from
the training split of the training domains only; evaluation covers every language and domain of
the dev split, so what the model was never shown (languages, domains) shows up as a gap.
Labelled sentence pairs (PAWS-X/XNLI style) for the pair-classification objective load here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from xrdiag.core.corpus import Corpus
from xrdiag.core.corpus.langcodes import lang_problem, normalize_lang
from xrdiag.errors import UserError

if TYPE_CHECKING:
    from xrdiag.core.training.robust import SynonymSubstituter

PAIR_COLUMNS = ("id", "src_lang", "tgt_lang", "domain", "src_text", "tgt_text")
LABELLED_COLUMNS = ("sentence1", "sentence2", "label", "lang1", "lang2")
LABELLED_DOMAIN = "pairs"


def translation_pairs(
    corpus: Corpus,
    langs: Sequence[str],
    domains: Sequence[str],
    pivot: str,
    max_per_domain: int | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per (id, X): the pivot sentence and its translation into X, training split only.

    Columns id, src_lang (the pivot), tgt_lang, domain, src_text, tgt_text; sorted by
    (domain, id, tgt_lang) so the frame, and hence the sampler's batches, never depend on the
    corpus file's row order.
    """
    targets = [x for x in dict.fromkeys(langs) if x != pivot]
    if not targets:
        raise UserError(
            f"protocol.train_langs {list(langs)}: expected at least one language besides the "
            f"pivot {pivot!r}"
        )
    part = corpus.filter(
        langs=[pivot, *targets], domains=list(domains), splits="train",
        max_per_domain=max_per_domain, seed=seed,
    ).frame  # fmt: skip
    src = part.filter(pl.col("lang") == pivot).select("id", "domain", src_text="text")
    tgt = part.filter(pl.col("lang") != pivot).select("id", tgt_lang="lang", tgt_text="text")
    pairs = (
        src.join(tgt, on="id", how="inner")
        .with_columns(src_lang=pl.lit(pivot))
        .select(PAIR_COLUMNS)
        .sort("domain", "id", "tgt_lang")
    )
    if pairs.height == 0:
        raise UserError(
            f"protocol: no training pairs for pivot {pivot!r} and languages {targets} in domains "
            f"{list(domains)} (the corpus has no translations there in its train split)"
        )
    return pairs


def dev_subset(corpus: Corpus, max_per_domain: int, seed: int = 0) -> pl.DataFrame:
    """The fixed dev sentences for live evaluation: every language and domain, capped per domain.

    Columns id, lang, domain, text, sorted by (id, lang); the same seed gives the same rows.
    """
    try:
        dev = corpus.filter(splits="dev", max_per_domain=max_per_domain, seed=seed)
    except UserError as exc:
        raise UserError(f"protocol.dev_max_per_domain: {exc}") from None
    return dev.frame.select("id", "lang", "domain", "text").sort("id", "lang")


def _read_table(path: Path) -> pl.DataFrame:
    """A CSV/TSV or JSONL file as strings; unreadable files are the user's error."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise UserError(f"{path}, row {number}: not a JSON object") from None
            return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            return pl.read_csv(path, separator=sep, infer_schema_length=0)
    except (OSError, pl.exceptions.ComputeError) as exc:
        raise UserError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from None
    raise UserError(f"{path}: objective.pairs_file must be .csv, .tsv or .jsonl")


def labelled_pairs(path: Path | str, num_labels: int) -> pl.DataFrame:
    """Labelled sentence pairs for pair classification, validated, in the sampler's columns.

    Input columns sentence1, sentence2, label (0..num_labels-1), lang1, lang2; the two languages
    may differ (the generalised cross-lingual setting of Huang et al. 2021). Output columns id,
    src_lang, tgt_lang, domain ("pairs"), src_text, tgt_text, label.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"objective.pairs_file {path}: no such file")
    frame = _read_table(path)
    missing = [c for c in LABELLED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(LABELLED_COLUMNS)}"
        )
    if frame.height == 0:
        raise UserError(f"{path}: no rows; expected labelled sentence pairs")
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in LABELLED_COLUMNS)
    labels = []
    for row, value in enumerate(
        frame["label"].to_list(), start=2 if path.suffix != ".jsonl" else 1
    ):
        try:
            label = int(str(value))
        except ValueError:
            label = -1
        if not 0 <= label < num_labels:
            raise UserError(
                f"{path}, row {row}, column 'label': {value!r}; expected an integer in "
                f"0..{num_labels - 1} (objective.num_labels = {num_labels})"
            )
        labels.append(label)
    for col in ("sentence1", "sentence2", "lang1", "lang2"):
        empty = frame.with_row_index("r").filter(
            pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")
        )
        if empty.height:
            raise UserError(f"{path}, row {empty['r'][0] + 1}, column {col!r}: empty value")
    norm = {}
    for code in set(frame["lang1"].to_list()) | set(frame["lang2"].to_list()):
        problem = lang_problem(code)
        if problem:
            raise UserError(f"{path}, column 'lang1'/'lang2': {problem}")
        norm[code] = normalize_lang(code)
    return frame.select(
        id=pl.int_range(pl.len()).cast(pl.String),
        src_lang=pl.col("lang1").replace_strict(norm),
        tgt_lang=pl.col("lang2").replace_strict(norm),
        domain=pl.lit(LABELLED_DOMAIN),
        src_text=pl.col("sentence1"),
        tgt_text=pl.col("sentence2"),
        label=pl.Series(labels, dtype=pl.Int64),
    )


def augmented_copies(pairs: pl.DataFrame, sub: SynonymSubstituter, n: int) -> pl.DataFrame:
    """RS-DA "copies": n synonym-substituted copies of every pair with an English side."""
    rows = []
    for row in pairs.iter_rows(named=True):
        for side in ("src", "tgt"):
            if row[f"{side}_lang"] == "en":
                for k, text in enumerate(sub.copies(row[f"{side}_text"], n), start=1):
                    rows.append({**row, "id": f"{row['id']}#da{side}{k}", f"{side}_text": text})
    extra = pl.DataFrame(rows, schema=pairs.schema) if rows else pairs.clear()
    return pl.concat([pairs, extra])
