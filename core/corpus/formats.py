"""Corpus readers: Parquet, CSV, TSV, JSONL and TMX files into one raw polars frame.

Readers only parse; `core.corpus` validates. Each reader keeps a `__row` key per row and a
`locate` function that turns it into what the user sees in the file ("line 7" of a CSV, "row 3"
of a Parquet file), so that every message can point at the exact place. Polars does the fast
parsing; the stdlib re-reads a file only when something is wrong, to say precisely where.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.parsers import expat

import polars as pl

from xrdiag.core.corpus.gettext import read_gettext
from xrdiag.core.corpus.raw import ROW, RawTable, decode_utf8, empty_table, err, msg
from xrdiag.core.corpus.testsets import find_testset, read_testset
from xrdiag.core.layout.frames import load_parquet
from xrdiag.errors import UserError, library_failure

FORMATS = ".parquet, .csv, .tsv, .jsonl, .ndjson, .tmx or a gettext locale directory"
_CORE_STRINGS = {name: pl.String for name in ("id", "lang", "domain", "split", "text")}
_INLINE_CODES = {"bpt", "ept", "ph", "it", "ut"}  # native markup inside a TMX <seg>, not text


def read_source(path: Path, source: str, columns: str | None = None) -> tuple[str, RawTable]:
    """(layout, raw table) of a corpus: `hf:`, a test set (by scheme or layout), else `read_raw`.

    The layout (`hf`, `tatoeba`, `flores200`, `flores+`, `ntrex`, `gettext` or `file`) is what
    `xrdiag corpus info` reports. `columns` maps a Hugging Face dataset's columns (`text=...`).
    """
    if source.startswith("hf:"):
        from xrdiag.core.corpus.hf_source import read_hf

        return "hf", read_hf(source, columns)
    if columns is not None:
        raise err(source, None, "--columns is given", "an hf: dataset for it to map")
    found = find_testset(path, source)
    if found is not None:
        return found[0], read_testset(found, source)
    return ("gettext" if path.is_dir() else "file"), read_raw(path, source)


def read_raw(path: Path, source: str) -> RawTable:
    """Parse `path` by its suffix, or as a gettext tree when it is a directory."""
    if path.is_dir():
        return read_gettext(path, source)
    if not path.exists():
        raise err(source, None, "no such file or directory", f"a corpus file ({FORMATS})")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path, source)
    if suffix in (".csv", ".tsv"):
        return read_delimited(path, source, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path, source)
    if suffix == ".tmx":
        return read_tmx(path, source)
    raise err(source, None, f"unknown corpus format {suffix or '(no suffix)'!r}", FORMATS)


def read_parquet(path: Path, source: str) -> RawTable:
    """Parquet: rows are reported 1-based ("row 3" is the third row)."""
    try:
        frame = load_parquet(path)
    except BaseException as exc:  # polars raises several types for a file that is not Parquet
        if not library_failure(exc):
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise err(source, None, f"not a readable Parquet file ({reason})", "Parquet") from None
    return RawTable(frame.with_row_index(ROW), source, lambda i: f"row {i + 1}")


# The stdlib reader refuses fields over 128 KiB by default; polars reads such a corpus, so the
# re-read that locates a problem must too (a process-wide setting, raised once, never lowered).
_FIELD_LIMIT = 2**31 - 1


def _csv_reader(text: str, sep: str) -> Any:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    return csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting, strict=True)


def _csv_structure(text: str, sep: str, source: str) -> list[str]:
    """Duplicate-header, field-count and quoting problems, found by the stdlib csv module."""
    problems: list[str] = []
    reader = _csv_reader(text, sep)
    try:
        header = next(reader, [])
        for n, name in enumerate(header):
            if name in header[:n]:
                where = f"line 1, column {name!r}"
                problems.append(msg(source, where, "appears twice in the header", "unique names"))
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) != len(header):
                expected = f"{len(header)} as in the header ({', '.join(header)})"
                problems.append(msg(source, f"line {start}", f"{len(record)} fields", expected))
            start = reader.line_num + 1
    except csv.Error as exc:
        where, problem = f"line {reader.line_num}", f"malformed CSV ({exc})"
        problems.append(msg(source, where, problem, "properly quoted fields"))
    return problems


def read_delimited(path: Path, source: str, sep: str) -> RawTable:
    """CSV (quoted fields allowed) or TSV (no quoting: a field holds no tab and no newline)."""
    raw = path.read_bytes()
    data = raw.removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        return empty_table(source)
    decoded: list[str] = []

    def text() -> str:  # only decoded in Python when a problem must be located
        if not decoded:
            decoded.append(decode_utf8(raw, source))
        return decoded[0]

    frame = None
    for infer in (True, False):  # infer extra columns' types; failing that, read all as text
        try:
            frame = pl.read_csv(
                data,
                separator=sep,
                quote_char=None if sep == "\t" else '"',
                infer_schema=infer,
                infer_schema_length=10_000,
                schema_overrides=_CORE_STRINGS if infer else None,
            )
            break
        except BaseException as exc:  # polars names no line (nor byte): the checks below do
            if not library_failure(exc):
                raise
            continue
    if frame is None or any(c.endswith("_duplicated_0") for c in frame.columns):
        found = _csv_structure(text(), sep, source)
        raise UserError(found[0]) if found else err(source, None, "cannot parse", "a header line")
    lines: list[int] = []

    def locate(i: int) -> str:
        if not lines:  # record -> first physical line (quoted fields may span lines)
            reader = _csv_reader(text(), sep)
            try:
                next(reader, None)
                start = reader.line_num + 1
                for _ in reader:
                    lines.append(start)
                    start = reader.line_num + 1
            except csv.Error:  # what polars read, the stdlib cannot: records stay counted
                pass
        return f"line {lines[i]}" if i < len(lines) else f"record {i + 1}"

    frame = frame.with_row_index(ROW)
    frame = frame.filter(~pl.all_horizontal(pl.exclude(ROW).is_null()))  # blank lines
    return RawTable(frame, source, locate, recheck=lambda: _csv_structure(text(), sep, source))


def read_jsonl(path: Path, source: str) -> RawTable:
    """JSON Lines: one object per line; blank lines skipped; rows reported by line number."""
    raw = path.read_bytes()
    data = raw.removeprefix(codecs.BOM_UTF8)
    numbers = [n for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    if not numbers:
        return empty_table(source)
    try:
        frame = pl.read_ndjson(data, infer_schema_length=None)
    except BaseException as exc:  # polars names no line: re-read with the stdlib to find it
        if not library_failure(exc):
            raise
        frame = _jsonl_stdlib(decode_utf8(raw, source), source)
    return RawTable(frame.with_row_index(ROW), source, lambda i: f"line {numbers[i]}")


def _jsonl_stdlib(text: str, source: str) -> pl.DataFrame:
    """Parse JSONL line by line: a precise error, or a frame (mixed-type values as text)."""
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"malformed JSON ({exc.msg} at column {exc.colno})"
            raise err(source, f"line {n}", problem, "one JSON object per line") from None
        if not isinstance(obj, dict):
            problem = f"a JSON {type(obj).__name__}"
            raise err(source, f"line {n}", problem, "one JSON object per line")
        rows.append(obj)
    try:
        return pl.from_dicts(rows, infer_schema_length=None)
    except BaseException as exc:
        if not library_failure(exc):
            raise
        text_rows = [
            {k: v if v is None or isinstance(v, str) else json.dumps(v) for k, v in r.items()}
            for r in rows
        ]
        return pl.from_dicts(text_rows, infer_schema_length=None)


class _Tmx:
    """Expat callbacks collecting (tuid, lang, domain, text, line) rows from a TMX stream."""

    def __init__(self, parser: Any, source: str) -> None:
        self.p, self.source = parser, source
        self.rows: list[tuple[str, str, str, str, int]] = []
        self.problems: list[str] = []
        self.default_domain, self.depth, self.n_tu, self.code_depth = "general", 0, 0, 0
        self.tu: dict[str, Any] | None = None
        self.tuv: dict[str, Any] | None = None
        self.text: list[str] | None = None  # inside <seg>
        self.prop: list[str] | None = None  # inside <prop type="domain">

    def start(self, name: str, attrs: dict[str, str]) -> None:
        line = self.p.CurrentLineNumber
        if self.depth == 0 and name != "tmx":
            raise err(self.source, f"line {line}", f"root element <{name}>", "<tmx>")
        self.depth += 1
        if name == "tu":
            self.n_tu += 1
            tuid = attrs.get("tuid") or str(self.n_tu)
            self.tu = {"id": tuid, "line": line, "domain": None, "n_tuv": 0}
        elif name == "tuv" and self.tu is not None:
            self.tu["n_tuv"] += 1
            lang = attrs.get("xml:lang") or attrs.get("lang")
            self.tuv = {"lang": lang, "line": line, "seg": None}
        elif name == "seg" and self.tuv is not None:
            self.text, self.code_depth = [], 0
        elif name in _INLINE_CODES and self.text is not None:
            self.code_depth += 1
        elif name == "prop" and attrs.get("type") in ("domain", "x-domain") and self.tuv is None:
            self.prop = []

    def end(self, name: str) -> None:
        self.depth -= 1
        if name == "seg" and self.tuv is not None and self.text is not None:
            self.tuv["seg"], self.text = "".join(self.text), None
        elif name in _INLINE_CODES and self.text is not None:
            self.code_depth -= 1
        elif name == "prop" and self.prop is not None:
            value, self.prop = "".join(self.prop).strip() or None, None
            if self.tu is not None:
                self.tu["domain"] = value
            elif value:
                self.default_domain = value
        elif name == "tuv" and self.tu is not None and self.tuv is not None:
            self._close_tuv(self.tu, self.tuv)
            self.tuv = None
        elif name == "tu" and self.tu is not None:
            if self.tu["n_tuv"] == 0:
                expected = '<tuv xml:lang=".."><seg>text</seg></tuv>'
                self._problem(self.tu["line"], "<tu> has no <tuv>", expected)
            self.tu = None

    def _problem(self, line: int, problem: str, expected: str) -> None:
        self.problems.append(msg(self.source, f"line {line}", problem, expected))

    def _close_tuv(self, tu: dict[str, Any], tuv: dict[str, Any]) -> None:
        if not tuv["lang"]:
            self._problem(tuv["line"], "<tuv> has no xml:lang", "a language attribute")
        elif tuv["seg"] is None:
            self._problem(tuv["line"], "<tuv> has no <seg>", "<seg>text</seg>")
        else:
            domain = tu["domain"] or self.default_domain
            self.rows.append((tu["id"], tuv["lang"], domain, tuv["seg"], tuv["line"]))

    def chars(self, data: str) -> None:
        if self.text is not None and self.code_depth == 0:
            self.text.append(data)
        elif self.prop is not None:
            self.prop.append(data)


def read_tmx(path: Path, source: str) -> RawTable:
    """TMX: id = tuid (else the unit's position), domain from `<prop type="domain">`.

    Streamed through expat (ElementTree's parser) rather than iterparse because expat gives
    element line numbers and DTD hooks: an internal DTD subset, entity declarations and
    external entities are refused (defusedxml is not available); nothing is fetched.
    """
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    tmx = _Tmx(parser, source)
    parser.buffer_text = True
    parser.StartElementHandler, parser.EndElementHandler = tmx.start, tmx.end
    parser.CharacterDataHandler = tmx.chars

    def refuse(what: str) -> Callable[..., None]:
        def handler(*_: object) -> None:
            where = f"line {parser.CurrentLineNumber}"
            raise err(source, where, f"{what} refused", "TMX without entity declarations")

        return handler

    parser.EntityDeclHandler = refuse("entity declaration")
    parser.ExternalEntityRefHandler = refuse("external entity")
    parser.SkippedEntityHandler = refuse("undeclared entity")
    parser.StartDoctypeDeclHandler = lambda name, sysid, pubid, internal: (
        refuse("DOCTYPE with an internal subset")() if internal else None
    )
    try:
        with path.open("rb") as fh:
            parser.ParseFile(fh)
    except expat.ExpatError as exc:
        problem = f"malformed XML ({expat.ErrorString(exc.code)})"
        raise err(source, f"line {exc.lineno}", problem, "a well-formed TMX document") from None
    except LookupError as exc:  # the XML declaration names an encoding Python does not know
        problem = f"unknown XML encoding ({exc})"
        raise err(source, "line 1", problem, "a TMX document in UTF-8 or UTF-16") from None
    cols = list(zip(*tmx.rows, strict=True)) or [[], [], [], [], []]
    frame = pl.DataFrame(
        dict(zip(("id", "lang", "domain", "text"), cols, strict=False)),
        schema=dict.fromkeys(("id", "lang", "domain", "text"), pl.String),
    )
    lines = list(cols[4])
    return RawTable(frame.with_row_index(ROW), source, lambda i: f"line {lines[i]}", tmx.problems)
