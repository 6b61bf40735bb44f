"""Ordered language pairs by pattern: `en-fr`, `en-*`, `*-en`, `*-*`, `en:es-419`.

A pattern names an ordered pair (lang1, lang2) of a sentence-pair task; `*` matches any
language. BCP-47 codes contain hyphens themselves (`es-419`, `pt-BR`), so `lang1-lang2` is split
at the hyphen that leaves a language code (or `*`) on both sides, preferring codes from the
known languages; `lang1:lang2` is never ambiguous and always accepted. Patterns are shared by
the task builder (`--pairs`) and training (`objective.train_lang_pairs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xrdiag.core.corpus.langcodes import lang_problem, normalize_lang
from xrdiag.errors import UserError

ANY = "*"
LangPair = tuple[str, str]


def _side(text: str) -> str | None:
    """`*` or the normalised language code; None when `text` is neither."""
    text = text.strip()
    if text == ANY:
        return ANY
    if not text or lang_problem(text):
        return None
    return normalize_lang(text)


def parse_lang_pair(spec: str, known: Sequence[str] = (), flag: str = "--pairs") -> LangPair:
    """One pattern -> (lang1, lang2), each a normalised code or `*` (module docstring)."""
    text = spec.strip()
    if ":" in text:
        left, _, right = text.partition(":")
        candidates = [(_side(left), _side(right))]
    else:
        parts = text.split("-")
        candidates = [
            (_side("-".join(parts[:i])), _side("-".join(parts[i:]))) for i in range(1, len(parts))
        ]
    valid = [(a, b) for a, b in candidates if a is not None and b is not None]
    if len(valid) > 1 and known:  # e.g. pt-br-en: (pt, br-EN) or (pt-BR, en)
        listed = [(a, b) for a, b in valid if a in (ANY, *known) and b in (ANY, *known)]
        valid = listed or valid
    if len(valid) == 1:
        return valid[0]  # type: ignore[return-value]
    if valid:
        options = " or ".join(f"{a}:{b}" for a, b in valid)
        raise UserError(f"{flag} {spec!r}: ambiguous ({options}); write lang1:lang2")
    raise UserError(
        f"{flag} {spec!r}: expected lang1-lang2 with language codes or * "
        "(e.g. en-fr, en-*, *-*, en:es-419)"
    )


def matches(pattern: LangPair, lang1: str, lang2: str) -> bool:
    """Whether the ordered pair (lang1, lang2) is one the pattern names."""
    return pattern[0] in (ANY, lang1) and pattern[1] in (ANY, lang2)


def parse_patterns(
    specs: str | Iterable[str], known: Sequence[str] = (), flag: str = "--pairs"
) -> list[LangPair]:
    """A comma list (or sequence) of patterns, parsed, in order, duplicates dropped."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    parsed = [parse_lang_pair(s, known, flag) for s in items if s.strip()]
    if not parsed:
        raise UserError(f"{flag}: no language pair given; expected e.g. en-*, or *-*")
    return list(dict.fromkeys(parsed))


def expand_pairs(
    patterns: Sequence[LangPair], langs: Sequence[str], *, monolingual: Sequence[str] = ()
) -> list[LangPair]:
    """The ordered pairs of `langs` some pattern names, in (lang1, lang2) order.

    Pairs of a language with itself are kept only for the languages in `monolingual` (the ones
    a caller can build same-language pairs for); a pattern naming such a pair explicitly for
    another language is the user's error.
    """
    for pattern in patterns:
        for code in pattern:
            if code != ANY and code not in langs:
                raise UserError(
                    f"--pairs {pattern[0]}-{pattern[1]}: {code!r} is not among the languages "
                    f"{', '.join(langs)}"
                )
    out = []
    for a in langs:
        for b in langs:
            if any(matches(p, a, b) for p in patterns) and (a != b or a in monolingual):
                out.append((a, b))
    for a, b in patterns:
        if a == b != ANY and a not in monolingual:
            raise UserError(
                f"--pairs {a}-{b}: same-language pairs need paraphrases, built for "
                f"{', '.join(monolingual) or 'no language'} only"
            )
    return out
