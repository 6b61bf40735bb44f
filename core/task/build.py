"""Build a labelled cross-lingual paraphrase-identification task from a parallel corpus.

A row is a sentence pair (sentence1 in lang1, sentence2 in lang2) and a label: 1 when the two
mean the same, else 0 (the PAWS-X task of Huang et al., EMNLP 2021, in their "generalized"
setting where lang1 and lang2 may differ). For every ordered language pair, every split and
every id the corpus has in both languages, the builder makes one positive and one negative, so
labels are balanced exactly per (lang1, lang2, split):

- positive (`kind` positive): for lang1 != lang2 the sentence and its translation (same id).
  For en-en, the sentence and a synonym paraphrase of it (`rewrites.synonym_rewrite`, the RS-DA
  lexicon), so a classifier can be fine-tuned on English pairs and tested zero-shot on the
  others. Other same-language pairs have no paraphrase source and are not built.
- negative, one of two kinds, `neighbour_share` (default half) of the ids of a
  (lang1, lang2, split) drawing the first, the rest the second:
  - `neighbour`: sentence1 with the nearest non-translation in lang2 of the same split and
    domain (`neighbours.py`: under the given encoder, or the lexical fallback without one);
  - `swap`: sentence1 with the positive's sentence2 after two content words (or, in scripts
    without spaces, two 2-character chunks) trade places (`rewrites.swap_words`, after PAWS).
  When an id cannot have its kind (a sentence with fewer than two movable words; a domain of
  one id) it takes the other; when it can have neither, or (en-en) has no paraphrase, the id
  is left out of that language pair, positive and negative alike. A negative is never equal
  to its positive or to sentence1.

`split` and `domain` are the id's in the corpus, so no id is in two splits and a neighbour
never crosses splits. Every draw is seeded from (seed, what is drawn), so the same seed gives
the same task, and adding a language pair leaves the others' rows unchanged.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.core.corpus import SPLITS, Corpus
from xrdiag.core.task import neighbours, rewrites
from xrdiag.core.task.lang_pairs import ANY, expand_pairs, parse_patterns
from xrdiag.errors import UserError

TASK_COLUMNS = (
    "pair_id", "id", "sentence1", "sentence2", "label", "lang1", "lang2", "domain", "split",
    "kind",
)  # fmt: skip
KINDS = ("positive", "neighbour", "swap")
PARAPHRASE_LANG = "en"  # the one language with a paraphrase source (the English lexicon)


def _rng(seed: int, *parts: object) -> random.Random:
    """A generator seeded by the seed and what it draws for, stable across runs and machines."""
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def build_task(
    corpus: Corpus,
    *,
    langs: Sequence[str] | None = None,
    pairs: str | Sequence[str] | None = None,
    model: str | None = None,
    seed: int = 0,
    neighbour_share: float = 0.5,
    max_per_domain: int | None = None,
    lexicon: str | Path = "default",
    device: str = "auto",
) -> pl.DataFrame:
    """The task frame (columns `TASK_COLUMNS`; module docstring), sorted by
    (lang1, lang2, split, id, kind).

    `langs`: the languages (default: the corpus's); `pairs`: patterns such as `en-*`
    (`lang_pairs.py`; default every ordered pair of `langs`, plus en-en); `model`: the encoder
    for hard neighbours (a name, directory or `default`; None: the lexical fallback);
    `max_per_domain`: a seeded cap on ids per domain (`Corpus.filter`).
    """
    from xrdiag.core.data.synonyms import load_lexicon

    if not 0.0 <= neighbour_share <= 1.0:
        raise UserError(f"--neighbour-share {neighbour_share}: expected a number in [0, 1]")
    part = corpus.filter(langs=langs, max_per_domain=max_per_domain, seed=seed)
    used = part.langs
    mono = [PARAPHRASE_LANG] if PARAPHRASE_LANG in used else []
    patterns = parse_patterns(pairs, used) if pairs is not None else [(ANY, ANY)]
    lang_pairs = expand_pairs(patterns, used, monolingual=mono)
    if not lang_pairs:
        raise UserError(
            f"--pairs: no language pair of {', '.join(used)} matches; expected e.g. en-*"
        )
    wide = part.frame.pivot(on="lang", index=["id", "domain", "split"], values="text").sort("id")
    wanted = sorted({lang for pair in lang_pairs for lang in pair})
    texts = {lang: wide[lang].to_list() for lang in wanted}
    function = {lang: rewrites.function_words(t for t in texts[lang] if t) for lang in wanted}
    if model is not None:
        vectors = neighbours.encoder_vectors(part, wide, wanted, model, device)
    else:
        vectors = neighbours.lexical_vectors(wide, wanted)
    ids, domains, splits = (wide[c].to_list() for c in ("id", "domain", "split"))
    swaps: dict[tuple[int, str, bool], str | None] = {}  # (row, lang2, en-en) -> swapped text
    paraphrases: dict[int, str | None] = {}
    lex = load_lexicon(lexicon) if mono and (PARAPHRASE_LANG, PARAPHRASE_LANG) in lang_pairs else {}
    out: list[dict[str, Any]] = []
    for lang1, lang2 in lang_pairs:
        same = lang1 == lang2
        for split in SPLITS:
            rows = [
                r for r in range(wide.height)
                if splits[r] == split and texts[lang1][r] is not None
                and texts[lang2][r] is not None
            ]  # fmt: skip
            if not rows:
                continue
            near = _neighbours(rows, domains, texts, vectors, lang1, lang2, model is not None)
            order = list(rows)
            _rng(seed, "kinds", lang1, lang2, split).shuffle(order)
            first = set(order[: round(neighbour_share * len(order))])
            for r in rows:
                s1 = texts[lang1][r]
                if same:
                    if r not in paraphrases:
                        rng = _rng(seed, "paraphrase", ids[r])
                        paraphrases[r] = rewrites.synonym_rewrite(s1, lex, function[lang1], rng)
                    s2 = paraphrases[r]
                else:
                    s2 = texts[lang2][r]
                if s2 is None:
                    continue
                key = (r, lang2, same)  # en-en swaps the paraphrase, X-en the sentence
                if key not in swaps:
                    rng = _rng(seed, "swap", ids[r], lang2, "paraphrase" if same else "")
                    swaps[key] = rewrites.swap_words(s2, function[lang2], rng)
                options = {
                    "neighbour": texts[lang2][near[r]] if near.get(r, -1) >= 0 else None,
                    "swap": swaps[key],
                }
                kinds = ("neighbour", "swap") if r in first else ("swap", "neighbour")
                kind = next((k for k in kinds if options[k] not in (None, s1, s2)), None)
                if kind is None:
                    continue
                base = {"id": ids[r], "lang1": lang1, "lang2": lang2, "domain": domains[r],
                        "split": split, "sentence1": s1}  # fmt: skip
                out.append({**base, "sentence2": s2, "label": 1, "kind": "positive"})
                out.append({**base, "sentence2": options[kind], "label": 0, "kind": kind})
    if not out:
        raise UserError("task: no pair could be built (no ids shared by the language pairs)")
    frame = pl.DataFrame(out).with_columns(
        pair_id=pl.concat_str(["id", "lang1", "lang2", "kind"], separator="|"),
        label=pl.col("label").cast(pl.Int64),
    )
    return frame.select(TASK_COLUMNS).sort("lang1", "lang2", "split", "id", "kind")


def _neighbours(
    rows: list[int],
    domains: list[str],
    texts: dict[str, list[str | None]],
    vectors: dict[str, Any],
    lang1: str,
    lang2: str,
    encoder: bool,
) -> dict[int, int]:
    """row -> the row of its hard neighbour (or -1), searched per domain among `rows`."""
    by_domain: dict[str, list[int]] = {}
    for r in rows:
        by_domain.setdefault(domains[r], []).append(r)
    found: dict[int, int] = {}
    for group in by_domain.values():
        # the encoder compares sentence1 with lang2 sentences; the fallback stays inside lang2
        queries = vectors[lang1 if encoder else lang2][group]
        best = neighbours.nearest_others(
            queries,
            vectors[lang2][group],
            [texts[lang1][r] for r in group],
            [texts[lang2][r] for r in group],
        )
        found.update({r: group[b] if b >= 0 else -1 for r, b in zip(group, best, strict=True)})
    return found


def write_task(frame: pl.DataFrame, path: Path | str) -> Path:
    """Write the task as Parquet atomically (a temporary file in the same folder, renamed)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.write_parquet(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def task_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows per (lang1, lang2, split) and kind: what `xrdiag task build` can print."""
    return (
        frame.group_by("lang1", "lang2", "split")
        .agg(
            n=pl.len(),
            positive=(pl.col("kind") == "positive").sum(),
            neighbour=(pl.col("kind") == "neighbour").sum(),
            swap=(pl.col("kind") == "swap").sum(),
        )
        .sort("lang1", "lang2", "split")
    )
