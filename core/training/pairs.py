"""Training and dev data under the zero-shot protocol: which pairs training may see.

Training sees translation pairs pivot<->X, for X among the protocol's training languages, from
the training split of the training domains only; evaluation covers every language and domain of
the dev split, so what the model was never shown (languages, domains) shows up as a gap.
Labelled sentence pairs (PAWS-X/XNLI style) for the pair-classification objective load here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from xrdiag.core.corpus import Corpus, split_of
from xrdiag.core.task.pairs_io import PairsSet, read_pairs
from xrdiag.errors import UserError

if TYPE_CHECKING:
    from xrdiag.core.training.robust import SynonymSubstituter

PAIR_COLUMNS = ("id", "src_lang", "tgt_lang", "domain", "src_text", "tgt_text")


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


def labelled_pairs(path: Path | str, num_labels: int) -> pl.DataFrame:
    """Labelled sentence pairs for pair classification, validated, in the sampler's columns.

    Any file `core/task/pairs_io.py` reads (PAWS-X, XNLI, the generic sentence1, sentence2,
    label (0..num_labels-1), lang1, lang2 schema); the two languages may differ (the
    generalised cross-lingual setting of Huang et al. 2021). Every row, in the columns id,
    src_lang, tgt_lang, domain (the file's, else "pairs"), src_text, tgt_text, label.
    """
    return _sampler_columns(_read_labelled(path, num_labels).frame)


def _read_labelled(path: Path | str, num_labels: int) -> PairsSet:
    path = Path(path)
    if not path.exists():
        raise UserError(f"objective.pairs_file {path}: no such file")
    return read_pairs(path, num_labels)


def _sampler_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        id=pl.col("pair_id"),
        src_lang="lang1",
        tgt_lang="lang2",
        domain="domain",
        src_text="sentence1",
        tgt_text="sentence2",
        label="label",
    )


def pair_classification_data(
    path: Path | str, num_labels: int, train_lang_pairs: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame, tuple[str, ...]]:
    """(training pairs in the sampler's columns, held-out dev pairs, label names).

    With a `split` column, training takes the `train` rows and the live task accuracy the
    `dev` rows; without one, the ids whose corpus split rule (`split_of`, the rule for corpora
    without splits) says `dev` are held out for it, about a tenth, and training takes the rest.
    Training keeps the language pairs `objective.train_lang_pairs` names (e.g. `en-en` to
    fine-tune on English only and watch the other pairs zero-shot); the dev pairs keep all.
    """
    from xrdiag.core.task.lang_pairs import matches, parse_patterns

    data = _read_labelled(path, num_labels)
    frame = data.frame
    if data.has_split:
        train, dev = (
            frame.filter(pl.col("split") == "train"),
            frame.filter(pl.col("split") == "dev"),
        )
    else:
        held = pl.Series([split_of(i) == "dev" for i in frame["id"].to_list()], dtype=pl.Boolean)
        train, dev = frame.filter(~held), frame.filter(held)
    langs = sorted(set(frame["lang1"].to_list()) | set(frame["lang2"].to_list()))
    patterns = parse_patterns(train_lang_pairs, langs, "objective.train_lang_pairs")
    chosen = [
        any(matches(p, a, b) for p in patterns)
        for a, b in train.select("lang1", "lang2").iter_rows()
    ]
    train = train.filter(pl.Series(chosen, dtype=pl.Boolean))
    if train.height == 0:
        where = "split 'train'" if data.has_split else "the rows not held out"
        raise UserError(
            f"objective.pairs_file {path}: no training pairs in {where} for "
            f"objective.train_lang_pairs {list(train_lang_pairs)}; expected at least one"
        )
    return _sampler_columns(train), dev, data.label_names


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
