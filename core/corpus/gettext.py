"""Gettext trees as a corpus: UI strings keyed by msgid, one catalog stem per domain.

`locale/<lang>/LC_MESSAGES/<domain>.po|.mo` (or `<lang>/LC_MESSAGES/...`) holds one program's
interface in many languages; each msgid is the English row and each catalog's msgstr that
language's row. `.po` files are parsed here (no polib dependency), `.mo` files by a reader of
the GNU binary format (stdlib `gettext` exposes no catalog API).
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import polars as pl

from xrdiag.core.corpus.langcodes import lang_problem, normalize_lang
from xrdiag.core.corpus.raw import ROW, RawTable, err, read_utf8

_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
Entry = tuple[str | None, str, str, int]  # msgctxt, msgid, msgstr[0], .po line / .mo entry


def _po_string(s: str) -> str:
    """Undo the C escapes of a .po string literal (without its quotes)."""
    return re.sub(r"\\(.)", lambda m: _PO_ESCAPES.get(m[1], m[1]), s)


def parse_po(path: Path, source: str) -> list[Entry]:
    """Translated, non-fuzzy, non-obsolete entries of a .po file (plurals: msgstr[0])."""
    entries: list[Entry] = []
    cur: dict[str, str] = {}
    key, fuzzy, start = "", False, 0

    def flush() -> None:
        nonlocal cur, key, fuzzy
        msgid, msgstr = cur.get("msgid"), cur.get("msgstr", cur.get("msgstr[0]", ""))
        if msgid and msgstr and not fuzzy:  # msgid "" is the header
            entries.append((cur.get("msgctxt"), msgid, msgstr, start))
        cur, key, fuzzy = {}, "", False

    for n, raw in enumerate(read_utf8(path, source).split("\n"), 1):
        line = raw.strip()
        if line.startswith("#") or not line:
            if line.startswith("#,") and "fuzzy" in line[2:].replace(",", " ").split():
                if "msgid" in cur:
                    flush()
                fuzzy = True
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if len(line) >= 2 and line[0] == line[-1] == '"' and key:
            cur[key] += _po_string(line[1:-1])
        elif word in ("msgctxt", "msgid", "msgid_plural", "msgstr") or word.startswith("msgstr["):
            if len(rest) < 2 or not rest[0] == rest[-1] == '"':
                raise err(source, f"line {n}", f"{word} without a quoted string", f'{word} "..."')
            if word in ("msgctxt", "msgid") and key.startswith("msgstr"):
                flush()
            start = n if word == "msgid" else start
            key, cur[word] = word, _po_string(rest[1:-1])
        else:
            raise err(
                source, f"line {n}", f"cannot parse {raw[:40]!r}", "msgid, msgstr or a string"
            )
    flush()
    return entries


def parse_mo(path: Path, source: str) -> list[Entry]:
    """Entries of a compiled .mo catalog (GNU format; the header's charset decodes it)."""
    data, expected = path.read_bytes(), "a catalog compiled by msgfmt"
    order = {b"\xde\x12\x04\x95": "<", b"\x95\x04\x12\xde": ">"}.get(data[:4])
    if order is None or len(data) < 20:
        raise err(source, None, "not a gettext .mo file (bad magic number)", expected)
    count, orig, trans = struct.unpack(order + "3I", data[8:20])
    try:
        otab = struct.unpack_from(f"{order}{2 * count}I", data, orig)  # (length, offset) pairs
        ttab = struct.unpack_from(f"{order}{2 * count}I", data, trans)
    except struct.error:
        raise err(source, None, "truncated .mo file (string tables)", expected) from None
    ends = [otab[i] + otab[i + 1] for i in range(0, 2 * count, 2)]
    ends += [ttab[i] + ttab[i + 1] for i in range(0, 2 * count, 2)]
    if count and max(ends) > len(data):
        raise err(source, None, "truncated .mo file (string past the end)", expected)
    raw = [
        (data[otab[i + 1] : otab[i + 1] + otab[i]], data[ttab[i + 1] : ttab[i + 1] + ttab[i]])
        for i in range(0, 2 * count, 2)
    ]
    charset = "utf-8"
    for header in dict(raw).get(b"", b"").decode("ascii", "replace").splitlines():
        if header.lower().startswith("content-type:") and "charset=" in header:
            charset = header.split("charset=", 1)[1].strip() or charset
    entries: list[Entry] = []
    for i, (key, value) in enumerate(raw, 1):
        try:
            k, v = key.decode(charset), value.decode(charset)
        except (LookupError, UnicodeDecodeError):
            where, problem = f"entry {i}", f"not valid {charset}"
            raise err(source, where, problem, "its header's charset") from None
        ctxt, _, msgid = k.rpartition("\x04")
        msgstr = v.split("\x00", 1)[0]
        if k and msgstr:
            entries.append((ctxt or None, msgid.split("\x00", 1)[0], msgstr, i))
    return entries


def _locale_rank(name: str) -> tuple[bool, bool, str]:
    """Which of several locale dirs of one language to read: plain, then UTF-8, then others."""
    codeset = name.partition("@")[0].partition(".")[2].lower().replace("-", "")
    return (codeset not in ("", "utf8"), codeset != "", name)


def gettext_catalogs(root: Path) -> list[tuple[str, Path]]:
    """(locale dir name, catalog) under root/locale or root; a .po beats a .mo of its stem.

    Of locale dirs naming one language (`pl`, `pl.UTF-8`, `pl.cp1250`; `mo` and `ro`), only the
    best ranked is read, so that codeset copies of a catalog do not count twice.
    """
    for base in (root / "locale", root):
        dirs = sorted(p.parent for p in base.glob("*/LC_MESSAGES") if p.is_dir())
        best: dict[str, Path] = {}
        for d in sorted(dirs, key=lambda d: _locale_rank(d.name)):
            tag = d.name if lang_problem(d.name) else normalize_lang(d.name)
            best.setdefault(tag, d)
        found = []
        for lang_dir in sorted(best.values()):
            cats = sorted((lang_dir / "LC_MESSAGES").glob("*.[mp]o"), key=lambda c: c.suffix)
            stems = {c.stem: c for c in cats}  # .po sorts after .mo and wins
            found += [(lang_dir.name, stems[s]) for s in sorted(stems)]
        if found:
            return found
    return []


def read_gettext(root: Path, source: str, source_lang: str = "en") -> RawTable:
    """A UI-strings corpus from a gettext tree; each msgid is its `source_lang` row.

    id = msgid (sha256 of msgctxt + msgid when there is a context); domain = catalog stem. A
    msgid found in several catalogs belongs to the first stem in sorted order, and so does a
    language's translation of it when several catalogs translate it; a catalog of the source
    language itself is skipped (its msgids already are those rows).
    """
    catalogs = gettext_catalogs(root)
    if not catalogs:
        expected = "locale/<lang>/LC_MESSAGES/*.po or *.mo (or <lang>/LC_MESSAGES/...)"
        raise err(source, None, "no gettext catalogs", expected)
    inside = root.resolve()
    for _, cat in catalogs:
        # A link out of the tree would read any file the user can (and an error would quote
        # its first bytes): catalogs are read only where the corpus directory is.
        if not cat.resolve().is_relative_to(inside):
            rel = cat.relative_to(root).as_posix()
            raise err(f"{source}/{rel}", None, "a symbolic link that leads out of the corpus "
                      "directory", "catalogs inside the gettext tree")  # fmt: skip
    owner: dict[str, str] = {}  # msgid -> its domain: the first catalog stem that has it
    seen: set[tuple[str, str]] = set()
    ids: list[str] = []
    langs: list[str] = []
    domains: list[str] = []
    texts: list[str] = []
    cat_of: list[int] = []  # index into rels; ~index for the msgid (source-language) rows
    pos_of: list[int] = []  # .po line or .mo entry
    first: dict[str, tuple[str, int, int]] = {}  # id -> the source-language row
    rels = []
    for lang_name, cat in sorted(catalogs, key=lambda c: (c[1].stem, c[0])):
        if lang_problem(lang_name) is None and normalize_lang(lang_name) == source_lang:
            continue
        stem, n_cat = cat.stem, len(rels)
        rels.append(
            cat.relative_to(root).as_posix() + (" line" if cat.suffix == ".po" else " entry")
        )
        parse = parse_po if cat.suffix == ".po" else parse_mo
        for ctxt, msgid, msgstr, pos in parse(cat, f"{source}/{rels[-1].rsplit(' ', 1)[0]}"):
            key = (
                msgid
                if ctxt is None
                else hashlib.sha256(f"{ctxt}\x04{msgid}".encode()).hexdigest()[:16]
            )
            if not (msgid.strip() and msgstr.strip()) or (key, lang_name) in seen:
                continue  # blank strings (" " -> " ") are no sentences; first catalog wins
            seen.add((key, lang_name))
            ids.append(key), langs.append(lang_name), domains.append(owner.setdefault(key, stem))
            texts.append(msgstr), cat_of.append(n_cat), pos_of.append(pos)
            first.setdefault(key, (msgid, n_cat, pos))
    for key, (msgid, n_cat, pos) in first.items():
        ids.append(key), langs.append(source_lang), domains.append(owner[key])
        texts.append(msgid), cat_of.append(~n_cat), pos_of.append(pos)
    names = ("id", "lang", "domain", "text")
    frame = pl.DataFrame(
        dict(zip(names, (ids, langs, domains, texts), strict=True)),
        schema=dict.fromkeys(names, pl.String),
    )

    def locate(i: int) -> str:
        n = cat_of[i]
        return f"{rels[n]} {pos_of[i]}" if n >= 0 else f"{rels[~n]} {pos_of[i]} (msgid)"

    return RawTable(frame.with_row_index(ROW), source, locate)
