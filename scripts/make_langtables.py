"""Write `core/corpus/langtables.py`: the ISO 639 and script tables behind BCP-47 normalisation.

Run from the repository root (Debian: `apt-get install iso-codes`):

    python scripts/make_langtables.py REGISTRY CLDR_CORE [ISO_CODES_DIR]

REGISTRY is the IANA Language Subtag Registry, either as published (record-jar text) or as the
JSON array of records of the `language-subtag-registry` package (`data/json/registry.json`).
CLDR_CORE is the `cldr-json/cldr-core` folder of github.com/unicode-org/cldr-json (CLDR's own JSON
release). ISO_CODES_DIR defaults to /usr/share/iso-codes/json (Debian's iso-codes: ISO 639-2 and
639-3). The languages of the published test sets are read from
tests/core/fixtures/testsets/published_codes.json.

The tables, and why each exists:
- ISO639_TO_1: every ISO 639-3 and 639-2 (T and B) code whose language has a 639-1 code; BCP-47
  requires the shortest code (`kas` -> `ks`, `twi` -> `tw`).
- MACROLANGUAGE: CLDR's languageAlias entries of reason "macrolanguage" from a three-letter
  code, which browsers' `Intl.getCanonicalLocale` apply too: the representative individual
  language is written as its macrolanguage (`cmn` -> `zh`, `arb` -> `ar`, `dik` -> `din`).
- DEFAULT_SCRIPT: the script a language is written in unless told otherwise, dropped from tags
  (`eng_Latn` -> `en`). The IANA Suppress-Script where the registry gives one; else, for the
  languages of the test sets, CLDR's likely script, except for the languages that CLDR records
  in several scripts (the bare locale defaults to a script-qualified one, `zh` -> `zh-Hans-CN`,
  `sr` -> `sr-Cyrl-RS`, where `ha` defaults to `ha-NG`): for those every script is kept
  (`zh-Hans`, `zh-Hant`, `sr-Cyrl`, `sr-Latn`).
- SCRIPTS: the registry's script subtags (ISO 15924), to refuse a misspelled script in a file
  name.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "core" / "corpus" / "langtables.py"
CODES = ROOT / "tests" / "core" / "fixtures" / "testsets" / "published_codes.json"


def registry_records(path: Path) -> tuple[str, list[dict[str, str]]]:
    """(File-Date, records) of the IANA registry in either of its two distributed forms."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        records = json.loads(text)
        meta = path.parent / "meta.json"
        date = json.loads(meta.read_text())["File-Date"] if meta.exists() else "unknown"
        return date, [{k: v for k, v in r.items() if isinstance(v, str)} for r in records]
    blocks = text.split("\n%%\n")
    date = blocks[0].split(":", 1)[1].strip()
    records = []
    for block in blocks[1:]:
        record: dict[str, str] = {}
        for line in re.sub(r"\n\s+", " ", block).splitlines():
            key, _, value = line.partition(":")
            record.setdefault(key.strip(), value.strip())
        records.append(record)
    return date, records


def language_of(code: str, to_1: dict[str, str], macro: dict[str, str]) -> str:
    """The canonical primary subtag of a three-letter code, as langcodes computes it."""
    code = macro.get(code, code)
    return to_1.get(code, code)


def main(registry: Path, iso_dir: Path, cldr_dir: Path) -> None:
    """Read the sources and write OUT."""
    date, records = registry_records(registry)
    suppress = {
        r["Subtag"]: r["Suppress-Script"]
        for r in records
        if r.get("Type") == "language" and "Suppress-Script" in r
    }
    to_1: dict[str, str] = {}
    for row in json.loads((iso_dir / "iso_639-3.json").read_text())["639-3"]:
        if "alpha_2" in row:
            to_1[row["alpha_3"]] = row["alpha_2"]
    for row in json.loads((iso_dir / "iso_639-2.json").read_text())["639-2"]:
        if "alpha_2" in row:
            to_1.setdefault(row["alpha_3"], row["alpha_2"])
            to_1.setdefault(row.get("bibliographic", row["alpha_3"]), row["alpha_2"])
    # The registry's script subtags (ISO 15924); the private-use range is kept as its first code.
    scripts = sorted(r["Subtag"].split("..")[0] for r in records if r.get("Type") == "script")
    aliases = json.loads((cldr_dir / "supplemental" / "aliases.json").read_text())["supplemental"]
    language_alias = aliases["metadata"]["alias"]["languageAlias"]
    macro = {
        code: entry["_replacement"]
        for code, entry in language_alias.items()
        if entry.get("_reason") == "macrolanguage" and re.fullmatch(r"[a-z]{3}", code)
    }
    cldr_version = aliases["version"]["_cldrVersion"]
    # A language whose bare locale defaults to a script-qualified one (zh -> zh-Hans-CN,
    # sr -> sr-Cyrl-RS) rather than to a region (ha -> ha-NG) is written in several scripts.
    content = json.loads((cldr_dir / "defaultContent.json").read_text())["defaultContent"]
    by_region = {
        loc.split("-")[0] for loc in content if re.fullmatch(r"[a-z]{2,3}-[A-Z0-9]{2,3}", loc)
    }
    multi_script = {
        loc.split("-")[0]
        for loc in content
        if re.fullmatch(r"[a-z]{2,3}-[A-Z][a-z]{3}(-.*)?", loc)
        and loc.split("-")[0] not in by_region
    }
    likely_table = json.loads((cldr_dir / "supplemental" / "likelySubtags.json").read_text())
    likely = {
        lang: tag.split("-")[1]
        for lang, tag in likely_table["supplemental"]["likelySubtags"].items()
        if re.fullmatch(r"[a-z]{2,3}", lang)
    }
    published = json.loads(CODES.read_text(encoding="utf-8"))
    langs = set()
    for entry in published.values():
        for code in entry["codes"]:
            langs.add(language_of(re.split(r"[-_]", code)[0], to_1, macro))
    default = dict(suppress)
    for lang in sorted(langs):
        # CLDR gives no likely script for a code it aliases away (`prs` -> `fa-AF`, `tw` -> `ak`):
        # the script of what it aliases to is the language's script all the same.
        target = language_alias.get(lang, {}).get("_replacement", lang).split("-")[0]
        script = likely.get(lang) or likely.get(target)
        if lang not in suppress and lang not in multi_script and script:
            default[lang] = script
    write(date, cldr_version, to_1, macro, default, scripts)


def _dict_literal(name: str, table: dict[str, str]) -> str:
    items = [f'"{k}": "{v}",' for k, v in sorted(table.items())]
    lines, line = [], "   "
    for item in items:
        if len(line) + 1 + len(item) > 99:
            lines.append(line)
            line = "   "
        line += " " + item
    lines.append(line)
    return f"{name}: dict[str, str] = {{\n" + "\n".join(lines) + "\n}  # fmt: skip\n"


def write(
    date: str,
    cldr_version: str,
    to_1: dict[str, str],
    macro: dict[str, str],
    default: dict[str, str],
    scripts: list[str],
) -> None:
    words = " ".join(scripts)
    wrapped = re.sub(r"(.{1,95})(?: |$)", r"    \1\n", words)
    OUT.write_text(
        '"""ISO 639 and script tables for BCP-47 normalisation (generated: do not edit by hand).\n'
        "\n"
        "Written by scripts/make_langtables.py, which says what each table is for, from: the IANA\n"
        f"Language Subtag Registry (File-Date {date}); Debian's iso-codes (ISO 639-2 and 639-3);\n"
        f"and CLDR {cldr_version} (cldr-json: aliases, defaultContent, likelySubtags).\n"
        "DEFAULT_SCRIPT covers the registry's Suppress-Script languages and the languages of the\n"
        "published test sets (tests/core/fixtures/testsets).\n"
        '"""\n'
        "\n"
        "from __future__ import annotations\n"
        "\n"
        + _dict_literal("ISO639_TO_1", to_1)
        + "\n"
        + _dict_literal("MACROLANGUAGE", macro)
        + "\n"
        + _dict_literal("DEFAULT_SCRIPT", default)
        + "\n"
        + 'SCRIPTS: frozenset[str] = frozenset(\n    """\n'
        + wrapped
        + '    """.split()\n)\n',
        encoding="utf-8",
    )


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    if len(args) < 2:
        sys.exit(__doc__)
    main(args[0], args[2] if len(args) > 2 else Path("/usr/share/iso-codes/json"), args[1])
