"""Text rewrites for the built task: a meaning-changing word swap and a synonym paraphrase.

- `swap_words` (the PAWS negative; Zhang et al. 2019, "PAWS: Paraphrase Adversaries from Word
  Scrambling"): two content words of a sentence trade places, so the bag of words is unchanged
  and the meaning is not ("flights from New York to Florida" / "... from Florida to New York").
  Words are `analyses.perturb.word_spans` (letters, marks and digits; Devanagari vowel signs
  stay in their word). The first word never moves (its capital would give the swap away), nor
  do function words: the language's most frequent words (`function_words`, by document
  frequency in the corpus, so no per-language stop list is needed). Scripts written without
  spaces (Han, kana: every character its own word) swap two 2-character chunks of a run instead.
- `synonym_rewrite` (the English paraphrase): a few content words replaced by neighbours from the
  counter-fitted lexicon RS-DA uses (Huang et al. 2021, `core/training/robust.py`). RS-DA's own
  sampler resamples *every* listed word, function words included ("how long have these
  symptoms..." -> "why long have..."); a positive must keep the meaning, so only content words
  change, only about one in five of them (at least one), each to one of its two nearest
  neighbours. The lexicon is noisy all the same (chest -> torso is fine, fever -> classical is
  not), so a few positives are looser paraphrases than a human would write.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from xrdiag.analyses.perturb import (
    NO_SPACE_SCRIPTS,
    is_letter,
    match_case,
    script_of,
    synonym_units,
    word_spans,
)

# Function words: the most frequent words of a language, by the share of sentences holding them.
FUNCTION_WORDS_TOP = 100
FUNCTION_WORDS_MIN_SHARE = 0.01
CHUNK = 2  # characters per chunk in scripts without spaces
REWRITE_SHARE = 0.2  # share of a sentence's words a synonym rewrite changes (at least one)
# The lexicon lists neighbours nearest first; farther ones drift (fever -> classical, your -> ton).
REWRITE_NEAREST = 2


def function_words(texts: Iterable[str]) -> frozenset[str]:
    """The `FUNCTION_WORDS_TOP` most frequent lower-cased words held by >= 1% of the texts."""
    df: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        df.update({text[a:b].lower() for a, b in word_spans(text)})
    floor = max(2.0, FUNCTION_WORDS_MIN_SHARE * n)
    ranked = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))
    return frozenset(w for w, c in ranked[:FUNCTION_WORDS_TOP] if c >= floor)


def _solo(text: str, span: tuple[int, int]) -> bool:
    """A one-character word of a script written without spaces."""
    a, b = span
    return b - a == 1 and is_letter(text[a]) and script_of(text[a]) in NO_SPACE_SCRIPTS


def _chunks(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Aligned 2-character chunks of each run of adjacent no-space characters."""
    runs: list[list[int]] = []
    for span in spans:
        if not _solo(text, span):
            runs.append([])
        elif runs and runs[-1] and span[0] == runs[-1][-1] + 1:
            runs[-1].append(span[0])
        else:
            runs.append([span[0]])
    return [(r[i], r[i] + CHUNK) for r in runs for i in range(0, len(r) - CHUNK + 1, CHUNK)]


def swappable_units(text: str, function: frozenset[str]) -> list[tuple[int, int]]:
    """Spans that may trade places: content words after the first, or chunks without spaces."""
    spans = word_spans(text)
    solo = sum(_solo(text, s) for s in spans)
    if solo > len(spans) - solo:  # mostly a script without spaces
        return _chunks(text, spans)
    words = [
        (a, b)
        for a, b in spans[1:]
        if b - a >= 2
        and any(is_letter(c) for c in text[a:b])
        and text[a:b].lower() not in function
        and not _solo(text, (a, b))
    ]
    return words


def swap_words(text: str, function: frozenset[str], rng: random.Random) -> str | None:
    """`text` with two different content words (or chunks) swapped; None when none can be."""
    units = swappable_units(text, function)
    options = [
        (i, j)
        for i in range(len(units))
        for j in range(i + 1, len(units))
        if text[slice(*units[i])].lower() != text[slice(*units[j])].lower()
    ]
    if not options:
        return None
    (a0, a1), (b0, b1) = (units[k] for k in rng.choice(options))
    out = text[:a0] + text[b0:b1] + text[a1:b0] + text[a0:a1] + text[b1:]
    return out if out != text else None


def synonym_rewrite(
    text: str,
    lexicon: Mapping[str, Sequence[str]],
    function: frozenset[str],
    rng: random.Random,
) -> str | None:
    """A paraphrase: about `REWRITE_SHARE` of the words, content words only, each replaced by
    one of its `REWRITE_NEAREST` nearest lexicon neighbours (case kept); None when no content
    word has a neighbour."""
    units = [m for m in synonym_units(text, lexicon) if m.group(0).lower() not in function]
    if not units:
        return None
    k = min(len(units), max(1, round(REWRITE_SHARE * len(word_spans(text)))))
    chosen = sorted(rng.sample(range(len(units)), k))
    pieces, last = [], 0
    for m in (units[i] for i in chosen):
        key = m.group(0).lower().replace("\u2019", "'")
        pick = rng.choice([n for n in lexicon[key] if n != key][:REWRITE_NEAREST])
        pieces += [text[last : m.start()], match_case(pick, m.group(0))]
        last = m.end()
    out = "".join([*pieces, text[last:]])
    return out if out != text else None
