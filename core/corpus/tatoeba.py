"""Tatoeba as LASER and XTREME distribute it: one line-aligned file pair per language.

`data/tatoeba/v1` of facebookresearch/LASER holds `tatoeba.XXX-eng.XXX` and `tatoeba.XXX-eng.eng`
for 112 languages (XXX is ISO 639-3: `fra`, `cmn`, `kzj`), 1,000 lines each for most. The English
side is chosen per pair, so the English sentences of `fra-eng` and `deu-eng` differ: ids are
scoped to the pair (`fra-eng:17`), the pair is the domain, and the only translations are
XXX <-> English. The whole set is a test set (`split = "test"`).
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

PAIR_FILE = re.compile(r"tatoeba\.([^.]+)-eng\.([^.]+)")
EXPECTED = "Tatoeba files named tatoeba.XXX-eng.XXX and tatoeba.XXX-eng.eng (XXX: ISO 639-3)"


def is_tatoeba_file(path: Path) -> bool:
    return PAIR_FILE.fullmatch(path.name) is not None


def is_tatoeba_dir(path: Path) -> bool:
    return path.is_dir() and any(is_tatoeba_file(p) for p in path.iterdir())


def _pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Language code -> (its file, the English file), refusing a file without its partner."""
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        m = PAIR_FILE.fullmatch(path.name)
        if m is None:
            continue
        code, side = m.groups()
        if side not in (code, "eng"):
            problem = f"the pair {code}-eng has a side {side!r}"
            raise err(str(path), None, problem, f"{code} or eng ({EXPECTED})")
        found.setdefault(code, {})[side] = path
    pairs = {}
    for code, sides in found.items():
        for side, partner in ((code, "eng"), ("eng", code)):
            if side in sides and partner not in sides:
                missing = folder / f"tatoeba.{code}-eng.{partner}"
                problem = f"missing partner file {missing.name}"
                raise err(str(sides[side]), None, problem, f"both files of the pair ({EXPECTED})")
        pairs[code] = (sides[code], sides["eng"])
    return pairs


def read_tatoeba(folder: Path, source: str) -> RawTable:
    """Every pair of the folder in long format; the original code kept in `lang_code`."""
    pairs = _pairs(folder)
    if not pairs:
        raise err(str(folder), None, "no Tatoeba files", EXPECTED)
    english = testset_lang("eng", folder, EXPECTED)
    blocks = []
    for code, (path, eng_path) in pairs.items():
        lang = testset_lang(code, path, EXPECTED)
        eng_lines = read_lines(eng_path)
        lines = read_lines(path)
        check_same_length(lines, path, eng_path, len(eng_lines))
        pair = f"{code}-eng"
        ids = [f"{pair}:{n}" for n in range(1, len(lines) + 1)]
        for side_path, side_lang, side_code, texts in (
            (path, lang, code, lines),
            (eng_path, english, "eng", eng_lines),
        ):
            frame = pl.DataFrame(
                {
                    "id": ids,
                    "lang": side_lang,
                    "lang_code": side_code,
                    "domain": pair,
                    "split": "test",
                    "text": texts,
                }
            )
            blocks.append(Block(side_path.name, frame))
    return located_table(blocks, source)
