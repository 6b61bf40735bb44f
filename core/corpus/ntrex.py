"""NTREX-128 as distributed (MicrosoftTranslator/NTREX): English news, 128 aligned references.

`NTREX-128/newstest2019-src.eng.txt` is the English source (1,997 lines, CRLF line ends) and
`newstest2019-ref.CODE.txt` its translations, CODE an ISO 639-3 code with an optional script or
region (`srp-Latn`, `zho-TW`, `eng-GB`); `NTREX-additional/` holds more references of the same
source. `DOCUMENT_IDS.tsv` (at the repository root, or beside the files) gives each line's
document, e.g. `bbc.381790` or `dailymail.co.uk.298595`: its publisher (`bbc`, `dailymail`)
is the domain. A second reference of a language (`newstest2019-ref-2.spa.txt`) is not read: it
would be a second sentence for the same id and language.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from xrdiag.core.corpus.raw import RawTable, err
from xrdiag.core.corpus.testset_files import (
    Block,
    check_same_length,
    located_table,
    read_lines,
    testset_lang,
)

SOURCE_FILE = "newstest2019-src.eng.txt"
REF_FILE = re.compile(r"newstest2019-ref\.([^.]+)\.txt")
FOLDERS = ("NTREX-128", "NTREX-additional")  # inside the repository root
DOCUMENT_IDS = "DOCUMENT_IDS.tsv"
DEFAULT_DOMAIN = "news"
EXPECTED = "NTREX files named newstest2019-src.eng.txt and newstest2019-ref.CODE.txt"


def find_ntrex(path: Path) -> Path | None:
    """The folder holding the English source, when `path` is it, a file in it or the root."""
    folder = path.parent if path.is_file() else path
    for candidate in (folder, folder / FOLDERS[0]):
        if (candidate / SOURCE_FILE).is_file():
            return candidate
    return None


def _publishers(
    folder: Path, n_lines: int, source_file: Path
) -> tuple[list[str], list[str]] | None:
    """(document ids, their publishers) from DOCUMENT_IDS.tsv beside the files or one folder up."""
    for path in (folder / DOCUMENT_IDS, folder.parent / DOCUMENT_IDS):
        if path.is_file():
            docs = [line.split("\t")[0].strip() for line in read_lines(path)]
            check_same_length(docs, path, source_file, n_lines)
            return docs, [doc.split(".")[0] for doc in docs]
    return None


def read_ntrex(folder: Path, source: str) -> RawTable:
    """The source and every reference (with NTREX-additional's when beside), in long format."""
    source_file = folder / SOURCE_FILE
    english = read_lines(source_file)
    n_lines = len(english)
    ids = [f"newstest2019:{n}" for n in range(1, n_lines + 1)]
    documents = _publishers(folder, n_lines, source_file)
    extra: dict[str, list[str] | str] = {"domain": DEFAULT_DOMAIN}
    if documents is not None:
        extra = {"domain": documents[1], "doc_id": documents[0]}

    def block(path: Path, code: str, lines: list[str]) -> Block:
        lang = testset_lang(code, path, EXPECTED)
        columns = {"id": ids, "lang": lang, "lang_code": code, "split": "test", "text": lines}
        shown = path.name if path.parent == folder else f"{path.parent.name}/{path.name}"
        return Block(shown, pl.DataFrame({**columns, **extra}))

    blocks = [block(source_file, "eng", english)]
    folders = [folder]
    if folder.name == FOLDERS[0] and (folder.parent / FOLDERS[1]).is_dir():
        folders.append(folder.parent / FOLDERS[1])
    for refs in folders:
        for path in sorted(refs.iterdir()):
            m = REF_FILE.fullmatch(path.name)
            if m is None:
                continue
            lines = read_lines(path)
            check_same_length(lines, path, source_file, n_lines)
            blocks.append(block(path, m.group(1), lines))
    if len(blocks) == 1:
        raise err(str(folder), None, "no reference files beside the source", EXPECTED)
    return located_table(blocks, source)
