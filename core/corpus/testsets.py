"""Standard parallel test sets read as distributed: found by their layout, or named by a scheme.

`tatoeba:DIR`, `flores200:DIR`, `flores+:DIR` and `ntrex:DIR` name a set and its folder; a plain
path is recognised by its layout when it is a set's folder or a file of one (a file stands for
the set it belongs to: keep languages with --langs). Each reader maps its set to the long format
with BCP-47 languages and the original code in `lang_code`.
"""

from __future__ import annotations

import re
from pathlib import Path

from xrdiag.core.corpus.flores import find_flores, read_flores200, read_flores_plus
from xrdiag.core.corpus.ntrex import EXPECTED as NTREX_EXPECTED
from xrdiag.core.corpus.ntrex import REF_FILE, SOURCE_FILE, find_ntrex, read_ntrex
from xrdiag.core.corpus.raw import RawTable, err
from xrdiag.core.corpus.tatoeba import EXPECTED as TATOEBA_EXPECTED
from xrdiag.core.corpus.tatoeba import is_tatoeba_dir, is_tatoeba_file, read_tatoeba
from xrdiag.errors import library_failure

LAYOUTS = ("tatoeba", "flores200", "flores+", "ntrex")
_SCHEME = re.compile(r"(tatoeba|flores200|flores\+|ntrex):(.+)", re.S)
_EXPECTED = {
    "tatoeba": f"a folder of {TATOEBA_EXPECTED}",
    "flores200": "a FLORES-200 folder with dev/eng_Latn.dev or devtest/eng_Latn.devtest",
    "flores+": "a FLORES+ folder with dev/eng_Latn.parquet or devtest/eng_Latn.parquet",
    "ntrex": f"an NTREX-128 folder of {NTREX_EXPECTED}",
}


def split_scheme(source: str) -> tuple[str, Path] | None:
    """(layout, folder) of `tatoeba:DIR`-style sources, else None (`~` is expanded)."""
    m = _SCHEME.fullmatch(source)
    return (m.group(1), Path(m.group(2)).expanduser()) if m else None


def _detect(path: Path) -> tuple[str, Path, list[str]] | None:
    """(layout, folder, FLORES splits) of the set at `path`, if it is one.

    A file counts only by its set's own naming, so that a corpus file that merely sits in a
    set's folder (`NTREX/mine.csv`) is still read as itself.
    """
    if path.is_file():
        name = path.name
        if is_tatoeba_file(path):
            return "tatoeba", path.parent, []
        if name == SOURCE_FILE or REF_FILE.fullmatch(name):
            folder = find_ntrex(path)
            return ("ntrex", folder, []) if folder is not None else None
        if name.endswith((".dev", ".devtest")):
            return find_flores(path)
        return _flores_plus_file(path)
    if is_tatoeba_dir(path):
        return "tatoeba", path, []
    folder = find_ntrex(path)
    if folder is not None:
        return "ntrex", folder, []
    return find_flores(path)


def find_testset(path: Path, source: str) -> tuple[str, Path, list[str]] | None:
    """The test set a source names (scheme) or is (layout); None for any other corpus.

    A scheme whose folder is not that set's layout is an error, not a fallback to other readers.
    """
    named = split_scheme(source)
    if named is None:
        return _detect(path) if path.exists() else None
    layout, folder = named
    if not folder.exists():
        raise err(source, None, "no such file or directory", _EXPECTED[layout])
    found = _detect(folder)
    if found is None or found[0] != layout:
        what = f"a {found[0]} layout" if found else "not a known test-set layout"
        raise err(source, None, what, _EXPECTED[layout])
    return found


def _flores_plus_file(path: Path) -> tuple[str, Path, list[str]] | None:
    """A `.parquet` file is a FLORES+ one only by its name, its folder and its columns.

    (`devtest/eng_Latn.parquet` with an `iso_639_3` column): any other Parquet file, even in a
    folder named dev/, stays a long-format corpus file.
    """
    if not (path.is_file() and path.parent.name in ("dev", "devtest")):
        return None
    if not re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}(_[A-Za-z0-9]{1,8})?\.parquet", path.name):
        return None
    import pyarrow.parquet as pq

    try:
        columns = pq.read_schema(path).names  # pyarrow: a damaged file raises, never panics
    except BaseException as exc:  # not Parquet: the Parquet reader says so
        if not library_failure(exc):
            raise
        return None
    return find_flores(path) if "iso_639_3" in columns and "lang" not in columns else None


def read_testset(found: tuple[str, Path, list[str]], source: str) -> RawTable:
    """The raw long table of a set found by `find_testset`."""
    layout, folder, splits = found
    if layout == "tatoeba":
        return read_tatoeba(folder, source)
    if layout == "ntrex":
        return read_ntrex(folder, source)
    if layout == "flores200":
        return read_flores200(folder, splits, source)
    return read_flores_plus(folder, splits, source)
