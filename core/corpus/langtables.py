"""ISO 639 and script tables for BCP-47 normalisation (generated: do not edit by hand).

Written by scripts/make_langtables.py, which says what each table is for, from: the IANA
Language Subtag Registry (File-Date 2025-08-25); Debian's iso-codes (ISO 639-2 and 639-3);
and CLDR 47 (cldr-json: aliases, defaultContent, likelySubtags).
DEFAULT_SCRIPT covers the registry's Suppress-Script languages and the languages of the
published test sets (tests/core/fixtures/testsets).
"""

from __future__ import annotations

ISO639_TO_1: dict[str, str] = {
    "aar": "aa", "abk": "ab", "afr": "af", "aka": "ak", "alb": "sq", "amh": "am", "ara": "ar",
    "arg": "an", "arm": "hy", "asm": "as", "ava": "av", "ave": "ae", "aym": "ay", "aze": "az",
    "bak": "ba", "bam": "bm", "baq": "eu", "bel": "be", "ben": "bn", "bih": "bh", "bis": "bi",
    "bod": "bo", "bos": "bs", "bre": "br", "bul": "bg", "bur": "my", "cat": "ca", "ces": "cs",
    "cha": "ch", "che": "ce", "chi": "zh", "chu": "cu", "chv": "cv", "cor": "kw", "cos": "co",
    "cre": "cr", "cym": "cy", "cze": "cs", "dan": "da", "deu": "de", "div": "dv", "dut": "nl",
    "dzo": "dz", "ell": "el", "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "ewe": "ee",
    "fao": "fo", "fas": "fa", "fij": "fj", "fin": "fi", "fra": "fr", "fre": "fr", "fry": "fy",
    "ful": "ff", "geo": "ka", "ger": "de", "gla": "gd", "gle": "ga", "glg": "gl", "glv": "gv",
    "gre": "el", "grn": "gn", "guj": "gu", "hat": "ht", "hau": "ha", "hbs": "sh", "heb": "he",
    "her": "hz", "hin": "hi", "hmo": "ho", "hrv": "hr", "hun": "hu", "hye": "hy", "ibo": "ig",
    "ice": "is", "ido": "io", "iii": "ii", "iku": "iu", "ile": "ie", "ina": "ia", "ind": "id",
    "ipk": "ik", "isl": "is", "ita": "it", "jav": "jv", "jpn": "ja", "kal": "kl", "kan": "kn",
    "kas": "ks", "kat": "ka", "kau": "kr", "kaz": "kk", "khm": "km", "kik": "ki", "kin": "rw",
    "kir": "ky", "kom": "kv", "kon": "kg", "kor": "ko", "kua": "kj", "kur": "ku", "lao": "lo",
    "lat": "la", "lav": "lv", "lim": "li", "lin": "ln", "lit": "lt", "ltz": "lb", "lub": "lu",
    "lug": "lg", "mac": "mk", "mah": "mh", "mal": "ml", "mao": "mi", "mar": "mr", "may": "ms",
    "mkd": "mk", "mlg": "mg", "mlt": "mt", "mon": "mn", "mri": "mi", "msa": "ms", "mya": "my",
    "nau": "na", "nav": "nv", "nbl": "nr", "nde": "nd", "ndo": "ng", "nep": "ne", "nld": "nl",
    "nno": "nn", "nob": "nb", "nor": "no", "nya": "ny", "oci": "oc", "oji": "oj", "ori": "or",
    "orm": "om", "oss": "os", "pan": "pa", "per": "fa", "pli": "pi", "pol": "pl", "por": "pt",
    "pus": "ps", "que": "qu", "roh": "rm", "ron": "ro", "rum": "ro", "run": "rn", "rus": "ru",
    "sag": "sg", "san": "sa", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl", "sme": "se",
    "smo": "sm", "sna": "sn", "snd": "sd", "som": "so", "sot": "st", "spa": "es", "sqi": "sq",
    "srd": "sc", "srp": "sr", "ssw": "ss", "sun": "su", "swa": "sw", "swe": "sv", "tah": "ty",
    "tam": "ta", "tat": "tt", "tel": "te", "tgk": "tg", "tgl": "tl", "tha": "th", "tib": "bo",
    "tir": "ti", "ton": "to", "tsn": "tn", "tso": "ts", "tuk": "tk", "tur": "tr", "twi": "tw",
    "uig": "ug", "ukr": "uk", "urd": "ur", "uzb": "uz", "ven": "ve", "vie": "vi", "vol": "vo",
    "wel": "cy", "wln": "wa", "wol": "wo", "xho": "xh", "yid": "yi", "yor": "yo", "zha": "za",
    "zho": "zh", "zul": "zu",
}  # fmt: skip

MACROLANGUAGE: dict[str, str] = {
    "aju": "jrb", "als": "sq", "arb": "ar", "ayr": "ay", "azj": "az", "bcc": "bal", "bcl": "bik",
    "bxk": "luy", "bxr": "bua", "cld": "syr", "cls": "sa", "cmn": "zh", "cwd": "cr", "dgo": "doi",
    "dhd": "mwr", "dik": "din", "diq": "zza", "ekk": "et", "emk": "man", "esk": "ik", "fat": "ak",
    "fuc": "ff", "gaz": "om", "gbo": "grb", "gno": "gon", "gom": "kok", "gug": "gn", "gya": "gba",
    "hdn": "hai", "hea": "hmn", "him": "srx", "ike": "iu", "khk": "mn", "kmr": "ku", "knc": "kr",
    "kng": "kg", "kpv": "kv", "lbk": "bnc", "lvs": "lv", "mhr": "chm", "mnk": "man", "mup": "raj",
    "npi": "ne", "ojg": "oj", "ory": "or", "pbu": "ps", "pes": "fa", "plt": "mg", "pnb": "lah",
    "quz": "qu", "rmy": "rom", "spy": "kln", "src": "sc", "swh": "sw", "ttq": "tmh", "umu": "del",
    "uzn": "uz", "xpe": "kpe", "xsl": "den", "ydd": "yi", "zai": "zap", "zsm": "ms", "zyb": "za",
}  # fmt: skip

DEFAULT_SCRIPT: dict[str, str] = {
    "ab": "Cyrl", "ace": "Latn", "acm": "Arab", "acq": "Arab", "aeb": "Arab", "af": "Latn",
    "ajp": "Arab", "ak": "Latn", "am": "Ethi", "ang": "Latn", "apc": "Arab", "ar": "Arab",
    "arq": "Arab", "ars": "Arab", "ary": "Arab", "arz": "Arab", "as": "Beng", "ast": "Latn",
    "awa": "Deva", "ay": "Latn", "azb": "Arab", "ba": "Cyrl", "ban": "Latn", "be": "Cyrl",
    "bem": "Latn", "bg": "Cyrl", "bho": "Deva", "bjn": "Latn", "bm": "Latn", "bn": "Beng",
    "bo": "Tibt", "br": "Latn", "brx": "Deva", "bs": "Latn", "bug": "Latn", "ca": "Latn",
    "cbk": "Latn", "ceb": "Latn", "ch": "Latn", "chm": "Cyrl", "cjk": "Latn", "ckb": "Arab",
    "crh": "Cyrl", "cs": "Latn", "csb": "Latn", "cv": "Cyrl", "cy": "Latn", "da": "Latn",
    "de": "Latn", "din": "Latn", "doi": "Deva", "dsb": "Latn", "dtp": "Latn", "dv": "Thaa",
    "dyu": "Latn", "dz": "Tibt", "ee": "Latn", "el": "Grek", "en": "Latn", "eo": "Latn",
    "es": "Latn", "et": "Latn", "eu": "Latn", "fa": "Arab", "fi": "Latn", "fil": "Latn",
    "fj": "Latn", "fo": "Latn", "fon": "Latn", "fr": "Latn", "frr": "Latn", "frs": "Latn",
    "fur": "Latn", "fuv": "Latn", "fy": "Latn", "ga": "Latn", "gd": "Latn", "gl": "Latn",
    "gn": "Latn", "gsw": "Latn", "gu": "Gujr", "gv": "Latn", "ha": "Latn", "he": "Hebr",
    "hi": "Deva", "hmn": "Latn", "hne": "Deva", "hr": "Latn", "hsb": "Latn", "ht": "Latn",
    "hu": "Latn", "hy": "Armn", "ia": "Latn", "id": "Latn", "ie": "Latn", "ig": "Latn",
    "ilo": "Latn", "in": "Latn", "io": "Latn", "is": "Latn", "it": "Latn", "iw": "Hebr",
    "ja": "Jpan", "jv": "Latn", "ka": "Geor", "kab": "Latn", "kac": "Latn", "kam": "Latn",
    "kbp": "Latn", "kea": "Latn", "kg": "Latn", "ki": "Latn", "kk": "Cyrl", "kl": "Latn",
    "km": "Khmr", "kmb": "Latn", "kn": "Knda", "ko": "Kore", "kok": "Deva", "kr": "Latn",
    "ktu": "Latn", "ku": "Latn", "kw": "Latn", "ky": "Cyrl", "kzj": "Latn", "la": "Latn",
    "lb": "Latn", "lfn": "Latn", "lg": "Latn", "li": "Latn", "lij": "Latn", "lmo": "Latn",
    "ln": "Latn", "lo": "Laoo", "lt": "Latn", "ltg": "Latn", "lua": "Latn", "luo": "Latn",
    "lus": "Latn", "lv": "Latn", "mag": "Deva", "mai": "Deva", "max": "Latn", "men": "Latn",
    "mey": "Latn", "mg": "Latn", "mh": "Latn", "mi": "Latn", "min": "Latn", "mk": "Cyrl",
    "ml": "Mlym", "mn": "Cyrl", "mo": "Latn", "mos": "Latn", "mr": "Deva", "ms": "Latn",
    "mt": "Latn", "my": "Mymr", "na": "Latn", "nb": "Latn", "nd": "Latn", "nds": "Latn",
    "ne": "Deva", "niu": "Latn", "nl": "Latn", "nn": "Latn", "no": "Latn", "nov": "Latn",
    "nqo": "Nkoo", "nr": "Latn", "nso": "Latn", "nus": "Latn", "ny": "Latn", "oc": "Latn",
    "om": "Latn", "or": "Orya", "orv": "Cyrl", "pa": "Guru", "pag": "Latn", "pam": "Latn",
    "pap": "Latn", "pbt": "Arab", "pl": "Latn", "pms": "Latn", "prs": "Arab", "ps": "Arab",
    "pt": "Latn", "qu": "Latn", "quy": "Latn", "rm": "Latn", "rn": "Latn", "ro": "Latn",
    "ru": "Cyrl", "rw": "Latn", "sa": "Deva", "sc": "Latn", "scn": "Latn", "sg": "Latn",
    "shn": "Mymr", "si": "Sinh", "sk": "Latn", "sl": "Latn", "sm": "Latn", "sn": "Latn",
    "so": "Latn", "sq": "Latn", "ss": "Latn", "st": "Latn", "sv": "Latn", "sw": "Latn",
    "swg": "Latn", "szl": "Latn", "ta": "Taml", "taq": "Latn", "te": "Telu", "tem": "Latn",
    "tg": "Cyrl", "th": "Thai", "ti": "Ethi", "tk": "Latn", "tkl": "Latn", "tl": "Latn",
    "tmh": "Latn", "tn": "Latn", "to": "Latn", "tpi": "Latn", "tr": "Latn", "ts": "Latn",
    "tt": "Cyrl", "tum": "Latn", "tvl": "Latn", "tw": "Latn", "ty": "Latn", "tzl": "Latn",
    "tzm": "Latn", "ug": "Arab", "uk": "Cyrl", "umb": "Latn", "ur": "Arab", "ve": "Latn",
    "vec": "Latn", "vi": "Latn", "war": "Latn", "wo": "Latn", "wuu": "Hans", "xh": "Latn",
    "yi": "Hebr", "yo": "Latn", "zbl": "Blis", "zgh": "Tfng", "zu": "Latn",
}  # fmt: skip

SCRIPTS: frozenset[str] = frozenset(
    """
    Adlm Afak Aghb Ahom Arab Aran Armi Armn Avst Bali Bamu Bass Batk Beng Berf Bhks Blis Bopo Brah
    Brai Bugi Buhd Cakm Cans Cari Cham Cher Chis Chrs Cirt Copt Cpmn Cprt Cyrl Cyrs Deva Diak Dogr
    Dsrt Dupl Egyd Egyh Egyp Elba Elym Ethi Gara Geok Geor Glag Gong Gonm Goth Gran Grek Gujr Gukh
    Guru Hanb Hang Hani Hano Hans Hant Hatr Hebr Hira Hluw Hmng Hmnp Hntl Hrkt Hung Inds Ital Jamo
    Java Jpan Jurc Kali Kana Kawi Khar Khmr Khoj Kitl Kits Knda Kore Kpel Krai Kthi Lana Laoo Latf
    Latg Latn Leke Lepc Limb Lina Linb Lisu Loma Lyci Lydi Mahj Maka Mand Mani Marc Maya Medf Mend
    Merc Mero Mlym Modi Mong Moon Mroo Mtei Mult Mymr Nagm Nand Narb Nbat Newa Nkdb Nkgb Nkoo Nshu
    Ogam Olck Onao Orkh Orya Osge Osma Ougr Palm Pauc Pcun Pelm Perm Phag Phli Phlp Phlv Phnx Piqd
    Plrd Prti Psin Qaaa Ranj Rjng Rohg Roro Runr Samr Sara Sarb Saur Seal Sgnw Shaw Shrd Shui Sidd
    Sidt Sind Sinh Sogd Sogo Sora Soyo Sund Sunu Sylo Syrc Syre Syrj Syrn Tagb Takr Tale Talu Taml
    Tang Tavt Tayo Telu Teng Tfng Tglg Thaa Thai Tibt Tirh Tnsa Todr Tols Toto Tutg Ugar Vaii Visp
    Vith Wara Wcho Wole Xpeo Xsux Yezi Yiii Zanb Zinh Zmth Zsye Zsym Zxxx Zyyy Zzzz
    """.split()
)
