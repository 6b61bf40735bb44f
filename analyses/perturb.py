"""Seeded query-side text perturbations for the noise-robustness analysis.

Every kind perturbs each *eligible unit* of a text independently with probability `rate`, so
the expected share of units changed is `rate` whatever the language:

| kind | unit | what happens to a chosen unit |
| --- | --- | --- |
| `char_swap` | letter pair (0,1), (2,3)... of a run of letters, if they differ | swapped |
| `char_drop` | letter | deleted |
| `char_insert` | letter | a letter of the same script and category is inserted after it |
| `char_replace` | letter | replaced by another letter of the same script and category |
| `char` | letter | one of the four above, drawn uniformly (a swap takes the next letter along) |
| `word_dropout` | word | deleted, with one adjacent space |
| `synonym` | English word listed in the lexicon | replaced by one of its listed neighbours |
| `strip_punct` | punctuation character (Unicode category P*) | deleted |
| `lowercase` | word containing an upper-case letter | lower-cased |

"Letter" means Unicode category L* or M* (so Devanagari vowel signs count). The *script* of a
character is the first word of its Unicode name (`DEVANAGARI`, `LATIN`, `ETHIOPIC`; `CJK ...`
ideographs are `HAN`); replacements and insertions come from the characters of the same script
and general category in the same 128-code-point block, widened to the whole Basic Multilingual
Plane for that script when the block holds no alternative. So Devanagari stays Devanagari and
Han stays Han, and a lower-case Latin letter is replaced by a lower-case Latin letter.

A word is a maximal run of letters and digits (L*, M*, N*), joined by apostrophes, except that
scripts written without spaces (Han, Hiragana, Katakana) make every character its own word.
The synonym kind only touches texts whose language is English (`en`, `en-*`), like RS-DA in
Huang et al. (2021); it uses nothing but the neighbours the lexicon lists.

Determinism: text i draws from `numpy.random.default_rng([seed, crc32(kind), key_i])`, where
`key_i` is the text's index or a caller-given key (the engine passes id and language, so a
sentence gets the same noise whichever other rows are selected). A rate of 0 returns the input.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import numpy as np

from xrdiag.errors import UserError, comma_choices

CHAR_OPS: tuple[str, ...] = ("char_swap", "char_drop", "char_insert", "char_replace")
KINDS: tuple[str, ...] = (
    *CHAR_OPS,
    "char",
    "word_dropout",
    "synonym",
    "strip_punct",
    "lowercase",
)
DEFAULT_KINDS: tuple[str, ...] = ("char", "word_dropout", "synonym", "strip_punct", "lowercase")
NO_SPACE_SCRIPTS = frozenset({"HAN", "HIRAGANA", "KATAKANA"})
# An English word for the synonym lookup: letters, optionally joined by apostrophes.
ENGLISH_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_APOSTROPHES = frozenset("'\u2019")
_BMP = 0x10000


def parse_noise_kinds(value: str | Sequence[str]) -> tuple[str, ...]:
    """`char,synonym` (or a sequence) -> validated tuple of kinds, duplicates dropped."""
    return comma_choices("--noise-kinds", value, KINDS)


def noise_label(kind: str, rate: float) -> str:
    """`char@0.1`: how a kind at a rate is named in metric names."""
    return f"{kind}@{rate:g}"


def check_rate(rate: float) -> float:
    """The rate as a float in [0, 1], or a UserError naming the flag."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise UserError(f"--noise-rate {rate!r}: expected a number between 0 and 1")
    return float(rate)


@lru_cache(maxsize=65536)
def script_of(char: str) -> str:
    """The script of a character: first word of its Unicode name (`CJK` ideographs: `HAN`)."""
    name = unicodedata.name(char, "")
    if not name:
        return ""
    first = name.split(" ", 1)[0]
    return "HAN" if first == "CJK" else first


@lru_cache(maxsize=65536)
def _kind(char: str) -> str:
    """`letter`, `digit`, `punct`, `space` or `other` from the Unicode general category."""
    major = unicodedata.category(char)[0]
    return {"L": "letter", "M": "letter", "N": "digit", "P": "punct", "Z": "space"}.get(
        major, "space" if char.isspace() else "other"
    )


def is_letter(char: str) -> bool:
    """Whether a character is a unit of the character kinds (category L* or M*)."""
    return _kind(char) == "letter"


@lru_cache(maxsize=1)
def _bmp_groups() -> dict[tuple[str, str], str]:
    """(script, category) -> every such character of the Basic Multilingual Plane."""
    groups: dict[tuple[str, str], list[str]] = {}
    for cp in range(_BMP):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat[0] in "LM":
            groups.setdefault((script_of(ch), cat), []).append(ch)
    return {k: "".join(v) for k, v in groups.items()}


@lru_cache(maxsize=4096)
def same_script_pool(char: str) -> str:
    """Characters like `char`: same script and category, same 128-code-point block if possible."""
    script, cat = script_of(char), unicodedata.category(char)
    start = ord(char) & ~0x7F
    block = "".join(
        c
        for c in map(chr, range(start, start + 0x80))
        if unicodedata.category(c) == cat and script_of(c) == script
    )
    if len(block) >= 2:
        return block
    wide = _bmp_groups().get((script, cat), "")
    return wide if len(wide) >= 2 else block


def _draw(pool: str, rng: np.random.Generator, avoid: str | None = None) -> str:
    """A uniform character of `pool` other than `avoid` (or `avoid` when there is no other)."""
    choices = pool.replace(avoid, "") if avoid else pool
    if not choices:
        return avoid or ""
    return choices[int(rng.integers(len(choices)))]


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, stop) of each word: runs of letters and digits joined by apostrophes.

    Characters of scripts written without spaces (Han, kana) are words on their own.
    """
    spans: list[tuple[int, int]] = []
    start = None
    n = len(text)
    for i, ch in enumerate(text):
        kind = _kind(ch)
        wordy = kind in ("letter", "digit")
        joiner = (
            ch in _APOSTROPHES
            and start is not None
            and i + 1 < n
            and _kind(text[i + 1]) == "letter"
        )
        solo = kind == "letter" and script_of(ch) in NO_SPACE_SCRIPTS
        if (not wordy and not joiner) or solo:
            if start is not None:
                spans.append((start, i))
                start = None
            if solo:
                spans.append((i, i + 1))
            continue
        if start is None:
            start = i
    if start is not None:
        spans.append((start, n))
    return spans


def _char_op(text: str, rate: float, rng: np.random.Generator, op: str) -> str:
    """Drop, insert after, or replace each letter with probability `rate`."""
    units = [i for i, ch in enumerate(text) if is_letter(ch)]
    hit = rng.random(len(units)) < rate
    if not hit.any():
        return text
    out = list(text)
    for i in np.asarray(units)[hit]:
        ch = text[i]
        if op == "char_drop":
            out[i] = ""
        elif op == "char_insert":
            out[i] = ch + _draw(same_script_pool(ch), rng)
        else:
            out[i] = _draw(same_script_pool(ch), rng, avoid=ch)
    return "".join(out)


def swap_pairs(text: str) -> list[int]:
    """Left index of each swap unit: disjoint pairs (0,1), (2,3)... of each run of letters,
    kept where the two letters differ (swapping equal letters changes nothing)."""
    pairs, run = [], 0
    for i, ch in enumerate(text):
        run = run + 1 if is_letter(ch) else 0
        if run and run % 2 == 0 and text[i - 1] != ch:
            pairs.append(i - 1)
    return pairs


def _char_swap(text: str, rate: float, rng: np.random.Generator) -> str:
    units = swap_pairs(text)
    hit = rng.random(len(units)) < rate
    if not hit.any():
        return text
    out = list(text)
    for i in np.asarray(units)[hit]:
        out[i], out[i + 1] = out[i + 1], out[i]
    return "".join(out)


def _char_mixed(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each letter, with probability `rate`, gets one of swap, drop, insert, replace."""
    units = [i for i, ch in enumerate(text) if is_letter(ch)]
    hit = rng.random(len(units)) < rate
    if not hit.any():
        return text
    chosen = np.asarray(units)[hit]
    ops = rng.integers(len(CHAR_OPS), size=chosen.size)
    out, taken = list(text), set()
    for i, op in zip(chosen.tolist(), ops.tolist(), strict=True):
        if i in taken:
            continue
        ch = text[i]
        if CHAR_OPS[op] == "char_swap":
            if i + 1 < len(text) and is_letter(text[i + 1]) and i + 1 not in taken:
                out[i], out[i + 1] = text[i + 1], ch
                taken.add(i + 1)
        elif CHAR_OPS[op] == "char_drop":
            out[i] = ""
        elif CHAR_OPS[op] == "char_insert":
            out[i] = ch + _draw(same_script_pool(ch), rng)
        else:
            out[i] = _draw(same_script_pool(ch), rng, avoid=ch)
        taken.add(i)
    return "".join(out)


def _word_dropout(text: str, rate: float, rng: np.random.Generator) -> str:
    """Delete each word with probability `rate`, with the space after it (else before it)."""
    spans = word_spans(text)
    hit = rng.random(len(spans)) < rate
    if not hit.any():
        return text
    keep = np.ones(len(text), dtype=bool)
    for start, stop in np.asarray(spans)[hit].tolist():
        keep[start:stop] = False
        if stop < len(text) and text[stop].isspace():
            keep[stop] = False
        elif start > 0 and text[start - 1].isspace() and keep[start - 1]:
            keep[start - 1] = False
    return "".join(ch for ch, k in zip(text, keep, strict=True) if k)


def _strip_punct(text: str, rate: float, rng: np.random.Generator) -> str:
    units = [i for i, ch in enumerate(text) if _kind(ch) == "punct"]
    hit = rng.random(len(units)) < rate
    if not hit.any():
        return text
    drop = set(np.asarray(units)[hit].tolist())
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


def _lowercase(text: str, rate: float, rng: np.random.Generator) -> str:
    units = [(a, b) for a, b in word_spans(text) if text[a:b] != text[a:b].lower()]
    hit = rng.random(len(units)) < rate
    if not hit.any():
        return text
    out = list(text)
    for a, b in np.asarray(units)[hit].tolist():
        out[a:b] = [""] * (b - a)
        out[a] = text[a:b].lower()
    return "".join(out)


def match_case(replacement: str, original: str) -> str:
    """The replacement with the original's case pattern and apostrophe style."""
    if "\u2019" in original:
        replacement = replacement.replace("'", "\u2019")
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def synonym_units(text: str, lexicon: Mapping[str, Sequence[str]]) -> list[re.Match[str]]:
    """English words of `text` that have at least one listed neighbour other than themselves."""
    out = []
    for m in ENGLISH_WORD.finditer(text):
        key = m.group(0).lower().replace("\u2019", "'")
        if any(n != key for n in lexicon.get(key, ())):
            out.append(m)
    return out


def _synonym(
    text: str, rate: float, rng: np.random.Generator, lexicon: Mapping[str, Sequence[str]]
) -> str:
    units = synonym_units(text, lexicon)
    hit = rng.random(len(units)) < rate
    if not hit.any():
        return text
    pieces, last = [], 0
    for m in (u for u, h in zip(units, hit, strict=True) if h):
        key = m.group(0).lower().replace("\u2019", "'")
        options = [n for n in lexicon[key] if n != key]
        pick = options[int(rng.integers(len(options)))]
        pieces += [text[last : m.start()], match_case(pick, m.group(0))]
        last = m.end()
    return "".join([*pieces, text[last:]])


def is_english(lang: str | None) -> bool:
    """`en`, `en-GB`, `en_US`... (the synonym lexicon is English)."""
    return lang is not None and (lang == "en" or lang[:3] in ("en-", "en_"))


def _key_int(key: str | int) -> int:
    if isinstance(key, int | np.integer) and key >= 0:
        return int(key)
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def perturb_texts(
    texts: Sequence[str],
    kind: str,
    rate: float,
    *,
    seed: int = 0,
    keys: Sequence[str | int] | None = None,
    langs: Sequence[str] | None = None,
    lexicon: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Each text perturbed by `kind` at `rate` (see the module docstring), seeded per text.

    `keys` (default: the index) and `seed` decide each text's draws; `langs` (one per text) is
    needed by `synonym`, which only perturbs English texts, from `lexicon`.
    """
    rate = check_rate(rate)
    if kind not in KINDS:
        raise UserError(f"--noise-kinds: unknown kind {kind!r}; expected one of {KINDS}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UserError(f"--noise-seed {seed!r}: expected a non-negative integer")
    n = len(texts)
    for name, seq in (("keys", keys), ("langs", langs)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} texts")
    if kind == "synonym" and (lexicon is None or langs is None):
        raise ValueError("the synonym kind needs a lexicon and the language of every text")
    if rate == 0.0:
        return list(texts)
    ops: dict[str, Callable[[str, float, np.random.Generator], str]] = {
        "char_swap": _char_swap,
        "char": _char_mixed,
        "word_dropout": _word_dropout,
        "strip_punct": _strip_punct,
        "lowercase": _lowercase,
        **{op: (lambda t, r, g, op=op: _char_op(t, r, g, op)) for op in CHAR_OPS[1:]},
    }
    if kind == "synonym":
        lex = lexicon or {}
        ops["synonym"] = lambda t, r, g: _synonym(t, r, g, lex)
    fn, code = ops[kind], zlib.crc32(kind.encode())
    out = []
    for i, text in enumerate(texts):
        if kind == "synonym" and not is_english(langs[i] if langs is not None else None):
            out.append(text)
            continue
        key = _key_int(keys[i] if keys is not None else i)
        out.append(fn(text, rate, np.random.default_rng([int(seed), code, key])))
    return out
