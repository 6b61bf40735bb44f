"""Test-set language codes (ISO 639-3 + script) normalise to one BCP-47 spelling.

The published code lists (fixtures/testsets/published_codes.json) are the real ones: the file
names of LASER's Tatoeba and NTREX-128, and the language tables of FLORES-200 and FLORES+.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xrdiag.core.corpus.langcodes import normalize_lang
from xrdiag.core.corpus.langtables import DEFAULT_SCRIPT, ISO639_TO_1, MACROLANGUAGE, SCRIPTS

PUBLISHED = json.loads(
    (Path(__file__).parent / "fixtures" / "testsets" / "published_codes.json").read_text()
)
BCP47 = re.compile(r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?")

TABLE = [
    ("zho_Hans", "zh-Hans"),  # Chinese is written in two scripts: the script stays
    ("zho_Hant", "zh-Hant"),
    ("cmn_Hans", "zh-Hans"),  # FLORES+ spells Mandarin as such; CLDR writes it `zh`
    ("cmn", "zh"),  # Tatoeba
    ("eng_Latn", "en"),  # Latin is English's default script (IANA Suppress-Script)
    ("srp_Cyrl", "sr-Cyrl"),
    ("srp_Latn", "sr-Latn"),
    ("srp-Latn", "sr-Latn"),  # NTREX spells script subtags with a hyphen
    ("pan_Guru", "pa"),
    ("pan_Arab", "pa-Arab"),
    ("nus_Latn", "nus"),  # ISO 639-3 only: three letters, default script dropped (CLDR)
    ("dik_Latn", "din"),  # Southwestern Dinka stands for Dinka (CLDR macrolanguage alias)
    ("fuv_Latn", "fuv"),
    ("prs_Arab", "prs"),  # as in the bundled TICO-19 subset
    ("ckb-Arab", "ckb"),
    ("arb_Arab", "ar"),
    ("arb_Latn", "ar-Latn"),  # romanised Arabic keeps its script
    ("kas_Arab", "ks-Arab"),  # Kashmiri in two scripts: both kept
    ("kas_Deva", "ks-Deva"),
    ("knc_Latn", "kr"),
    ("knc_Arab", "kr-Arab"),
    ("kmr_Latn", "ku"),
    ("twi_Latn", "tw"),
    ("jpn_Jpan", "ja"),
    ("zho-CN", "zh-CN"),  # NTREX regions
    ("eng-GB", "en-GB"),
    ("por-BR", "pt-BR"),
    ("aze-Latn", "az-Latn"),  # Azerbaijani is written in three scripts
    ("kzj", "kzj"),  # deprecated codes are not rewritten: Tatoeba has kzj and dtp apart
    ("en-Latn-US", "en-US"),
]


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_testset_code_normalises(code: str, expected: str) -> None:
    assert normalize_lang(code) == expected


@pytest.mark.parametrize("layout", sorted(PUBLISHED))
def test_every_published_code_is_one_distinct_language(layout: str) -> None:
    """Each code of each real set maps to a well-formed tag, and no two codes of a set meet."""
    codes = PUBLISHED[layout]["codes"]
    # FLORES+ tells varieties of one code apart by glottocode (apc_Arab_nort3139): the reader
    # adds it as a private-use subtag, which is tested with the reader.
    base = [re.sub(r"_[a-z]{4}[0-9]{4}$", "", c) for c in codes]
    tags = [normalize_lang(c) for c in base]
    assert all(BCP47.fullmatch(t) for t in tags), [t for t in tags if not BCP47.fullmatch(t)]
    assert len(set(tags)) == len(set(base))


def test_sets_agree_on_shared_languages() -> None:
    """English, French and Chinese come out the same from every set's spelling."""
    assert {normalize_lang(c) for c in ("eng", "eng_Latn", "eng")} == {"en"}
    assert {normalize_lang(c) for c in ("fra", "fra_Latn")} == {"fr"}
    assert {normalize_lang(c) for c in ("cmn", "zho_Hans", "cmn_Hans")} == {"zh", "zh-Hans"}


def test_tables_are_consistent() -> None:
    assert all(len(k) == 3 and len(v) == 2 for k, v in ISO639_TO_1.items())
    assert all(len(k) == 3 and 2 <= len(v) <= 3 for k, v in MACROLANGUAGE.items())
    assert set(DEFAULT_SCRIPT.values()) <= SCRIPTS
    assert {"Latn", "Hans", "Hant", "Cyrl", "Arab", "Olck", "Tfng"} <= SCRIPTS
    assert "zh" not in DEFAULT_SCRIPT and "sr" not in DEFAULT_SCRIPT  # written in several


ISO_CODES = Path("/usr/share/iso-codes/json/iso_639-3.json")  # Debian's iso-codes package


@pytest.mark.skipif(not ISO_CODES.exists(), reason="iso-codes data not installed")
def test_iso639_table_matches_the_iso_codes_package() -> None:
    rows = json.loads(ISO_CODES.read_text())["639-3"]
    expected = {r["alpha_3"]: r["alpha_2"] for r in rows if "alpha_2" in r}
    assert all(ISO639_TO_1[k] == v for k, v in expected.items())
