"""The corpus: long-format parallel sentences read from any supported format, validated.

`table.py` is the validated `Corpus` and its loaders; `formats.py` and `gettext.py` parse files
into a `raw.RawTable`; `langcodes.py` normalises language codes to BCP-47. The public names are
re-exported here so callers write `from xrdiag.core.corpus import load_corpus`.
"""

from __future__ import annotations

from xrdiag.core.corpus.table import (
    BUNDLED,
    SPLITS,
    Corpus,
    bundled_corpus_path,
    check_corpus,
    load_corpus,
    split_of,
    validate_frame,
)

__all__ = [
    "BUNDLED",
    "SPLITS",
    "Corpus",
    "bundled_corpus_path",
    "check_corpus",
    "load_corpus",
    "split_of",
    "validate_frame",
]
