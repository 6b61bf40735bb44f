"""What the test-set readers share: line-aligned text files, codes in file names, located rows.

Tatoeba, FLORES-200 and NTREX are distributed as line-aligned text: line N of every file of a
set is a translation of line N of the others, so a blank line, a missing line or a file cut
short silently misaligns every sentence after it. These files are therefore read strictly: UTF-8,
LF or CRLF line ends (NTREX uses CRLF), one final newline optional, no empty line, and as many
lines as the set's reference file. Lines are split on "\\n" only, never on the other characters
`str.splitlines` treats as line breaks (U+2028, U+0085, ...), which are text inside a sentence.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from xrdiag.core.corpus.langcodes import lang_problem, normalize_lang
from xrdiag.core.corpus.langtables import SCRIPTS
from xrdiag.core.corpus.raw import ROW, RawTable, decode_utf8, err

LINE_ALIGNED = "one sentence per line, line N of every file a translation of line N"


def read_lines(path: Path) -> list[str]:
    """The sentences of one line-aligned file, or a UserError naming the file and the line."""
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise err(shown, None, f"cannot be read ({exc.strerror})", "a readable file") from None
    lines = decode_utf8(data, shown).split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise err(shown, None, "empty file", LINE_ALIGNED)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise err(shown, f"line {n}", "empty line", f"{LINE_ALIGNED} (no blank lines)")
    return lines


def check_same_length(lines: list[str], path: Path, reference: Path, n_reference: int) -> None:
    """Line-aligned files must have the same number of lines as the reference file."""
    if len(lines) != n_reference:
        line = "line" if len(lines) == 1 else "lines"
        problem = f"{len(lines)} {line}, but {reference.name} has {n_reference}"
        raise err(str(path), None, problem, f"line-aligned files of equal length ({LINE_ALIGNED})")


def testset_lang(code: str, file: Path, expected: str) -> str:
    """The BCP-47 tag of a code found in a file name (`zho_Hans`, `srp-Latn`, `fra`).

    A script subtag must be one the IANA registry knows: a set's file names are the only place
    its language is written, so a misspelled script must not pass as a new language.
    """
    problem = lang_problem(code)
    if problem is not None:
        problem = problem.split("; expected")[0]  # the expectation here is the set's naming
    else:
        for sub in re.split(r"[-_]", code)[1:]:
            if len(sub) == 4 and sub.isalpha() and sub.title() not in SCRIPTS:
                problem = f"{sub!r} in {code!r} is not an ISO 15924 script code"
    if problem is not None:
        raise err(str(file), None, f"unknown language code: {problem}", expected)
    return normalize_lang(code)


@dataclass(frozen=True)
class Block:
    """Rows read from one file: `frame` in file order, its first row at `unit` `first`."""

    name: str  # the file as shown in messages (relative to the set's folder)
    frame: pl.DataFrame
    unit: str = "line"
    first: int = 1


def located_table(blocks: list[Block], source: str) -> RawTable:
    """One raw table of every block; `locate` names the file and the line (or row) of a row."""
    frames = [b.frame for b in blocks if b.frame.height]
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    starts, total = [], 0
    for block in blocks:
        starts.append(total)
        total += block.frame.height

    def locate(i: int) -> str:
        b = bisect.bisect_right(starts, i) - 1
        block = blocks[b]
        return f"{block.name}, {block.unit} {i - starts[b] + block.first}"

    return RawTable(frame.with_row_index(ROW), source, locate)
