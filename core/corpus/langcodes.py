"""Language codes: normalise what corpora carry (`pt_br`, `es-LA`, `ti_ER`, `eng`) to BCP-47.

Corpora spell languages many ways (TMX `es-LA`, gettext `sr@latin`, ISO 639-2 `fre`); every
comparison across files, caches and result frames needs one spelling. The rules follow
BCP-47 (RFC 5646): primary language subtag in lower case (the ISO 639-1 two-letter code where one
exists, else the ISO 639-3 three-letter code), script in title case, region in upper case or
three digits (UN M.49), variants in lower case. As CLDR canonicalises, an individual language that
stands for its macrolanguage takes the macrolanguage's code (`cmn` -> `zh`, `arb` -> `ar`), and a
language's default script is dropped (`eng_Latn` -> `en`, but `zh-Hans` and `sr-Latn` stay):
test sets spell `zho_Hans`, `eng_Latn`, `cmn`, and they must meet user corpora on one spelling.
"""

from __future__ import annotations

import re
from functools import lru_cache

from xrdiag.core.corpus.langtables import DEFAULT_SCRIPT, ISO639_TO_1, MACROLANGUAGE
from xrdiag.errors import UserError

# ISO 639-1 (the 183 current codes plus `sh`, withdrawn without a replacement). A two-letter
# code outside it is not a language.
ISO639_1: frozenset[str] = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr
    ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw
    ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv
    ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg sh si sk sl sm sn so sq
    sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh
    yi yo za zh zu
    """.split()
)

# Two-letter codes withdrawn from ISO 639-1, and their replacements (IANA Preferred-Value).
DEPRECATED_639_1: dict[str, str] = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}

# ISO 639-2/T and 639-2/B codes of languages that have a two-letter code: BCP-47 requires the
# shortest code, so `eng` and `fre` become `en` and `fr`.
ISO639_3_TO_1: dict[str, str] = {
    "afr": "af", "amh": "am", "ara": "ar", "arm": "hy", "aze": "az", "baq": "eu", "bel": "be",
    "ben": "bn", "bos": "bs", "bul": "bg", "bur": "my", "cat": "ca", "ces": "cs", "chi": "zh",
    "cym": "cy", "cze": "cs", "dan": "da", "deu": "de", "dut": "nl", "ell": "el", "eng": "en",
    "epo": "eo", "est": "et", "eus": "eu", "fas": "fa", "fin": "fi", "fra": "fr", "fre": "fr",
    "ful": "ff", "geo": "ka", "ger": "de", "gle": "ga", "glg": "gl", "gre": "el", "guj": "gu",
    "hau": "ha", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy", "ibo": "ig",
    "ice": "is", "ind": "id", "isl": "is", "ita": "it", "jav": "jv", "jpn": "ja", "kan": "kn",
    "kat": "ka", "kau": "kr", "kaz": "kk", "khm": "km", "kin": "rw", "kir": "ky", "kor": "ko",
    "kur": "ku", "lao": "lo", "lat": "la", "lav": "lv", "lin": "ln", "lit": "lt", "lug": "lg",
    "mac": "mk", "mal": "ml", "mao": "mi", "mar": "mr", "may": "ms", "mkd": "mk", "mlg": "mg",
    "mon": "mn", "mri": "mi", "msa": "ms", "mya": "my", "nep": "ne", "nld": "nl", "nno": "nn",
    "nob": "nb", "nor": "no", "orm": "om", "pan": "pa", "per": "fa", "pol": "pl", "por": "pt",
    "pus": "ps", "que": "qu", "ron": "ro", "rum": "ro", "rus": "ru", "sin": "si", "slk": "sk",
    "slo": "sk", "slv": "sl", "smo": "sm", "sna": "sn", "som": "so", "spa": "es", "sqi": "sq",
    "alb": "sq", "srp": "sr", "swa": "sw", "swe": "sv", "tam": "ta", "tel": "te", "tgk": "tg",
    "tgl": "tl", "tha": "th", "tir": "ti", "tuk": "tk", "tur": "tr", "uig": "ug", "ukr": "uk",
    "urd": "ur", "uzb": "uz", "vie": "vi", "wel": "cy", "wol": "wo", "xho": "xh", "yid": "yi",
    "yor": "yo", "zho": "zh", "zul": "zu",
}  # fmt: skip

# Regions corpora use for "Latin America" that are not UN M.49: TICO-19 writes `es-LA` (LA is
# Laos in ISO 3166), some vendors `es-XL`. Only rewritten for Spanish, where 419 is meant.
LATIN_AMERICA_ALIASES: dict[str, frozenset[str]] = {"es": frozenset({"LA", "XL"})}

# glibc/gettext locale modifiers (`sr@latin`) that name a script or a registered variant; a
# modifier that is an ISO 15924 code below is that script (`en@shaw`), any other becomes private
# use (`en@quot` -> `en-x-quot`), which BCP-47 reserves for exactly such local distinctions.
GETTEXT_MODIFIERS: dict[str, str] = {
    "latin": "Latn",
    "cyrillic": "Cyrl",
    "devanagari": "Deva",
    "arabic": "Arab",
    "iqtelif": "Latn",
    "valencia": "valencia",
    "ije": "ijekavsk",
    "ijekavian": "ijekavsk",
}
MODIFIER_SCRIPTS = frozenset(
    "Arab Armn Beng Cyrl Deva Ethi Geor Grek Gujr Guru Hans Hant Hebr Jpan Khmr Knda Kore Laoo "
    "Latn Mlym Mong Mymr Orya Shaw Sinh Taml Telu Tfng Thaa Thai Tibt".split()
)

_SCRIPT = re.compile(r"[A-Za-z]{4}")
_REGION = re.compile(r"[A-Za-z]{2}|[0-9]{3}")
_VARIANT = re.compile(r"[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}")
EXAMPLES = "'en', 'pt-BR', 'zh-Hans' or 'ckb'"


class LanguageCodeError(ValueError):
    """A code that is not a language; the message says why (no location: callers add it)."""


def _primary(sub: str) -> str:
    """Lower-cased primary subtag, mapped to its shortest ISO 639 form."""
    low = sub.lower()
    if not low.isascii() or not low.isalpha():
        raise LanguageCodeError(f"primary subtag {sub!r} is not all letters")
    if len(low) == 2:
        if low in DEPRECATED_639_1:
            return DEPRECATED_639_1[low]
        if low not in ISO639_1:
            raise LanguageCodeError(f"{sub!r} is not an ISO 639-1 code")
        return low
    if len(low) == 3:
        low = MACROLANGUAGE.get(low, low)
        return ISO639_3_TO_1.get(low) or ISO639_TO_1.get(low, low)
    raise LanguageCodeError(f"primary subtag {sub!r} is {len(low)} letters long, not 2 or 3")


def _split_gettext(code: str) -> tuple[str, str | None]:
    """Strip a glibc codeset (`.UTF-8`) and return the code and its `@modifier`, if any."""
    base, _, modifier = code.partition("@")
    base = base.split(".", 1)[0]
    return base, (modifier.lower() or None) if modifier else None


@lru_cache(maxsize=4096)
def _normalise(code: str) -> str:
    """The BCP-47 form of `code`; raises LanguageCodeError with the reason."""
    if not isinstance(code, str) or not code.strip():
        raise LanguageCodeError("empty code")
    base, modifier = _split_gettext(code.strip())
    subtags = re.split(r"[-_]", base)
    if any(not s for s in subtags):
        raise LanguageCodeError("empty subtag")
    primary = _primary(subtags[0])
    script = region = None
    variants: list[str] = []
    private: list[str] = []
    rest = subtags[1:]
    while rest:
        sub = rest.pop(0)
        if sub.lower() == "x":  # private use: everything after is kept, lower case
            if not rest or not all(re.fullmatch(r"[A-Za-z0-9]{1,8}", s) for s in rest):
                raise LanguageCodeError("private use 'x' must be followed by 1-8 letters or digits")
            private, rest = [s.lower() for s in rest], []
        elif script is None and region is None and not variants and _SCRIPT.fullmatch(sub):
            script = sub.title()
        elif region is None and not variants and _REGION.fullmatch(sub):
            region = sub.upper()
        elif _VARIANT.fullmatch(sub):
            variants.append(sub.lower())
        else:
            raise LanguageCodeError(f"subtag {sub!r} is not a script, region or variant")
    if modifier is not None:
        mapped = GETTEXT_MODIFIERS.get(modifier, modifier)
        if mapped.title() in MODIFIER_SCRIPTS and script is None:
            script = mapped.title()
        elif modifier in GETTEXT_MODIFIERS:
            variants.append(mapped)
        elif re.fullmatch(r"[a-z0-9]{1,8}", mapped):
            private.append(mapped)
        else:
            raise LanguageCodeError(f"locale modifier '@{modifier}' is not a script or variant")
    if script is not None and DEFAULT_SCRIPT.get(primary) == script:
        script = None  # the script the language is written in anyway (IANA Suppress-Script)
    if region in LATIN_AMERICA_ALIASES.get(primary, ()):
        region = "419"
    tail = ["x", *private] if private else []
    return "-".join([primary] + [s for s in (script, region) if s] + variants + tail)


def normalize_lang(code: str) -> str:
    """BCP-47 form of a language code (`pt_br` -> `pt-BR`, `es-LA` -> `es-419`, `eng` -> `en`).

    A code that is not a language (`xx1`, `english`, `12`, empty) raises UserError.
    """
    try:
        return _normalise(code)
    except LanguageCodeError as exc:
        raise UserError(f"{code!r} is not a language code ({exc}); expected {EXAMPLES}") from None


def lang_problem(code: object) -> str | None:
    """Why `code` is not a language code, or None when it is one (for located messages)."""
    if not isinstance(code, str):
        return f"{code!r} is not a language code (not text); expected {EXAMPLES}"
    try:
        _normalise(code)
    except LanguageCodeError as exc:
        return f"{code!r} is not a language code ({exc}); expected {EXAMPLES}"
    return None


def is_language(code: object) -> bool:
    """True when `code` normalises to a BCP-47 language tag."""
    return lang_problem(code) is None
