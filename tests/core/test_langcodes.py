"""Language-code normalisation: the BCP-47 table, the refusals, and every TICO-19 code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xrdiag.core.corpus.langcodes import (
    ISO639_1,
    ISO639_3_TO_1,
    is_language,
    lang_problem,
    normalize_lang,
)
from xrdiag.errors import UserError

# Every language code as published in TICO-19 (../shared/data/README.md).
TICO19_CODES = (
    "ar bn ckb din en es-419 es-LA fa fr fuv ha hi id km kr ku lg ln mr ms my ne nus om prs ps "
    "pt-BR ru rw so sw ta ti ti_ER ti_ET tl ur zh zu"
).split()

TABLE = [
    ("pt_br", "pt-BR"),
    ("pt-BR", "pt-BR"),
    ("ZH", "zh"),
    ("es-LA", "es-419"),
    ("es_la", "es-419"),
    ("es-XL", "es-419"),
    ("lo-LA", "lo-LA"),  # Lao in Laos: LA is only "Latin America" for Spanish
    ("ti_ER", "ti-ER"),
    ("zh-hans", "zh-Hans"),
    ("zh-CN", "zh-CN"),
    ("zh_Hant_TW", "zh-Hant-TW"),
    ("EN-us", "en-US"),
    ("es-419", "es-419"),
    ("eng", "en"),
    ("fra", "fr"),
    ("fre", "fr"),
    ("ger", "de"),
    ("deu", "de"),
    ("zho", "zh"),
    ("chi", "zh"),
    ("amh", "am"),
    ("ckb", "ckb"),  # ISO 639-3 only: stays three letters
    ("prs", "prs"),
    ("fuv", "fuv"),
    ("iw", "he"),  # withdrawn ISO 639-1 codes
    ("in", "id"),
    ("mo", "ro"),
    ("de-CH-1996", "de-CH-1996"),
    ("en-x-Custom", "en-x-custom"),
    ("pl.UTF-8", "pl"),  # gettext locale directory names
    ("sr@latin", "sr-Latn"),
    ("sr@Latn", "sr-Latn"),
    ("uz@cyrillic", "uz-Cyrl"),
    ("ca@valencia", "ca-valencia"),
    ("sr@ije", "sr-ijekavsk"),
    ("en@shaw", "en-Shaw"),
    ("en@quot", "en-x-quot"),
    ("  fr  ", "fr"),
]


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_normalize_table(code: str, expected: str) -> None:
    assert normalize_lang(code) == expected


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_normalize_is_idempotent(code: str, expected: str) -> None:
    assert normalize_lang(normalize_lang(code)) == expected


BCP47 = re.compile(
    r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?(-([a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"
    r"(-x(-[a-z0-9]{1,8})+)?"
)


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_output_is_well_formed_bcp47(code: str, expected: str) -> None:
    """An independent check of the shape of the output (RFC 5646 case conventions)."""
    assert BCP47.fullmatch(normalize_lang(code))


BAD = [
    ("xx1", "primary subtag 'xx1' is not all letters"),
    ("english", "primary subtag 'english' is 7 letters long, not 2 or 3"),
    ("12", "primary subtag '12' is not all letters"),
    ("", "empty code"),
    ("   ", "empty code"),
    ("xx", "'xx' is not an ISO 639-1 code"),
    ("en-", "empty subtag"),
    ("en--US", "empty subtag"),
    ("e", "primary subtag 'e' is 1 letters long, not 2 or 3"),
    ("en-abcdefghi", "subtag 'abcdefghi' is not a script, region or variant"),
    ("en-x", "private use 'x' must be followed by 1-8 letters or digits"),
    ("en@q.x", "locale modifier '@q.x' is not a script or variant"),
]


@pytest.mark.parametrize(("code", "reason"), BAD)
def test_not_a_language_raises_user_error(code: str, reason: str) -> None:
    expected = (
        f"{code!r} is not a language code ({reason}); expected 'en', 'pt-BR', 'zh-Hans' or 'ckb'"  # noqa: E501
    )
    with pytest.raises(UserError) as info:
        normalize_lang(code)
    assert str(info.value) == expected
    assert lang_problem(code) == expected
    assert not is_language(code)


def test_non_string_is_not_a_language() -> None:
    assert (
        lang_problem(12)
        == "12 is not a language code (not text); expected 'en', 'pt-BR', 'zh-Hans' or 'ckb'"
    )  # noqa: E501
    assert not is_language(None)


def test_every_tico19_code_normalises_and_only_es_la_collides() -> None:
    normalised = [normalize_lang(c) for c in TICO19_CODES]
    assert all(is_language(c) for c in TICO19_CODES)
    assert len(set(normalised)) == len(TICO19_CODES) - 1  # es-LA and es-419 are one language
    assert normalised[TICO19_CODES.index("es-LA")] == "es-419"
    assert normalize_lang("ti_ET") == "ti-ET"


def test_iso639_tables_are_consistent() -> None:
    assert len(ISO639_1) == 183 + 2  # 183 current codes, plus withdrawn `bh` and `sh`
    assert {"en", "fr", "zh", "am", "ti", "sw", "zu"} <= ISO639_1
    assert all(len(c) == 2 and c.isalpha() and c.islower() for c in ISO639_1)
    assert set(ISO639_3_TO_1.values()) <= ISO639_1
    assert all(len(c) == 3 for c in ISO639_3_TO_1)


def test_three_letter_codes_with_a_two_letter_equivalent_all_map() -> None:
    for three, two in ISO639_3_TO_1.items():
        assert normalize_lang(three) == two
        assert normalize_lang(three.upper()) == two


ISO_CODES = Path("/usr/share/iso-codes/json/iso_639-2.json")  # Debian's iso-codes package


@pytest.mark.skipif(not ISO_CODES.exists(), reason="iso-codes data not installed")
def test_tables_match_the_iso_codes_package() -> None:
    """An independent reference: the ISO 639-2 table that Debian's iso-codes ships."""
    rows = json.loads(ISO_CODES.read_text())["639-2"]
    two = {r["alpha_2"] for r in rows if "alpha_2" in r}
    assert ISO639_1 == two | {"sh"}
    three_to_two = {}
    for r in rows:
        if "alpha_2" in r:
            three_to_two[r["alpha_3"]] = r["alpha_2"]
            three_to_two[r.get("bibliographic", r["alpha_3"])] = r["alpha_2"]
    assert all(three_to_two[k] == v for k, v in ISO639_3_TO_1.items())
