"""Every corpus reader, fed truncated, bit-flipped, zeroed and emptied copies of valid files.

A damaged file either still reads as a valid corpus (a flipped bit inside a sentence is a
different sentence) or is refused with one line that names the file; never another exception,
never a message over several lines. Mutations are drawn from one seed, so a failure replays.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.cli import main
from xrdiag.core.corpus import check_corpus, load_corpus
from xrdiag.errors import UserError

SEED = 20_240_601
MUTANTS = 24  # per file: 10 truncations, 12 bit flips, zeroed, empty
TESTSETS = Path(__file__).parent / "fixtures" / "testsets"

ROWS = [
    ("s1", "en", "news", 'The museum opens at nine, "sharp".'),
    ("s1", "fr", "news", "Le musée ouvre à neuf heures."),
    ("s1", "de", "news", "Das Museum öffnet um neun."),
    ("s2", "en", "health", "Wash your hands\ntwice."),
    ("s2", "fr", "health", "Lavez-vous les mains deux fois."),
    ("s2", "de", "health", "Waschen Sie zweimal die Hände."),
    ("s3", "en", "news", "Rain is expected tomorrow."),
    ("s3", "fr", "news", "De la pluie est attendue demain."),
    ("s3", "de", "news", "Morgen wird Regen erwartet."),
]


def _frame() -> pl.DataFrame:
    return pl.DataFrame(ROWS, schema=["id", "lang", "domain", "text"], orient="row")


def write_csv(root: Path) -> tuple[str, Path]:
    path = root / "c.csv"
    _frame().write_csv(path)
    return str(path), path


def write_tsv(root: Path) -> tuple[str, Path]:
    path = root / "c.tsv"
    lines = ["id\tlang\tdomain\ttext"] + ["\t".join(r).replace("\n", " ") for r in ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path), path


def write_jsonl(root: Path) -> tuple[str, Path]:
    path = root / "c.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _frame().to_dicts()))
    return str(path), path


def write_parquet(root: Path) -> tuple[str, Path]:
    path = root / "c.parquet"
    _frame().write_parquet(path)
    return str(path), path


def write_tmx(root: Path) -> tuple[str, Path]:
    units = []
    for sid in ("s1", "s2", "s3"):
        tuvs = "".join(
            f'<tuv xml:lang="{lang}"><seg>{text.replace("&", "&amp;").replace("<", "&lt;")}'
            "</seg></tuv>"
            for i, lang, dom, text in ROWS
            if i == sid
        )
        domain = next(d for i, _, d, _ in ROWS if i == sid)
        units.append(f'<tu tuid="{sid}"><prop type="domain">{domain}</prop>{tuvs}</tu>')
    path = root / "c.tmx"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en"/>'
        f"<body>{''.join(units)}</body></tmx>\n",
        encoding="utf-8",
    )
    return str(path), path


PO = """msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

#: app.py:1
msgid "Open the file"
msgstr "Ouvrir le fichier"

msgctxt "menu"
msgid "Save"
msgstr "Enregistrer"

msgid "One item"
msgid_plural "%d items"
msgstr[0] "Un élément"
msgstr[1] "%d éléments"
"""


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """GNU .mo, little-endian, as msgfmt writes it (header entry first)."""
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    n, start = len(keys), 28 + 16 * len(keys)
    table_o, table_t, pos_o, pos_t = [], [], start, start + len(ids)
    for k in keys:
        kb, vb = k.encode(), messages[k].encode()
        table_o += [len(kb), pos_o]
        table_t += [len(vb), pos_t]
        pos_o, pos_t = pos_o + len(kb) + 1, pos_t + len(vb) + 1
    head = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        head
        + struct.pack(f"<{2 * n}I", *table_o)
        + struct.pack(f"<{2 * n}I", *table_t)
        + ids
        + strs
    )


def write_po_tree(root: Path) -> tuple[str, Path]:
    tree = root / "po-tree"
    po = tree / "locale" / "fr" / "LC_MESSAGES" / "app.po"
    po.parent.mkdir(parents=True)
    po.write_text(PO, encoding="utf-8")
    write_mo(tree / "locale" / "de" / "LC_MESSAGES" / "app.mo",
             {"": "Content-Type: text/plain; charset=UTF-8\n", "Open the file": "Datei öffnen",
              "Save": "Speichern"})  # fmt: skip
    return str(tree), po


def write_mo_tree(root: Path) -> tuple[str, Path]:
    source, _ = write_po_tree(root)
    return source, Path(source) / "locale" / "de" / "LC_MESSAGES" / "app.mo"


def copy_set(name: str, damaged: str) -> Callable[[Path], tuple[str, Path]]:
    def write(root: Path) -> tuple[str, Path]:
        folder = shutil.copytree(TESTSETS / name, root / name)
        return str(folder), folder / damaged

    return write


def write_flores_plus(root: Path) -> tuple[str, Path]:
    folder = root / "flores_plus"
    texts = {"eng_Latn": ["The museum opens.", "Rain is expected."],
             "fra_Latn": ["Le musée ouvre.", "La pluie est attendue."]}  # fmt: skip
    for split in ("dev", "devtest"):
        (folder / split).mkdir(parents=True)
        for stem, sentences in texts.items():
            iso, script = stem.split("_")
            codes = {"id": [0, 1], "iso_639_3": [iso] * 2, "iso_15924": [script] * 2}
            frame = pl.DataFrame({**codes, "text": sentences})
            frame.write_parquet(folder / split / f"{stem}.parquet")
    return f"flores+:{folder}", folder / "devtest" / "fra_Latn.parquet"


READERS: dict[str, Callable[[Path], tuple[str, Path]]] = {
    "csv": write_csv,
    "tsv": write_tsv,
    "jsonl": write_jsonl,
    "parquet": write_parquet,
    "tmx": write_tmx,
    "gettext-po": write_po_tree,
    "gettext-mo": write_mo_tree,
    "tatoeba": copy_set("tatoeba", "tatoeba.fra-eng.fra"),
    "flores200": copy_set("flores200", "devtest/fra_Latn.devtest"),
    "flores200-metadata": copy_set("flores200", "metadata_dev.tsv"),
    "ntrex": copy_set("ntrex", "NTREX-128/newstest2019-ref.fra.txt"),
    "ntrex-ids": copy_set("ntrex", "DOCUMENT_IDS.tsv"),
    "flores+": write_flores_plus,
}


def mutants(data: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Seeded damage: cuts at random lengths, 1-3 flipped bits, all zeros, nothing."""
    size = len(data)
    out = [(f"cut at {n}", data[:n]) for n in rng.integers(0, size, 10)]
    buf = np.frombuffer(data, dtype=np.uint8)
    for _ in range(12):
        flips = rng.integers(0, size, rng.integers(1, 4))
        bits = rng.integers(0, 8, len(flips)).astype(np.uint8)
        flipped = buf.copy()
        np.bitwise_xor.at(flipped, flips, np.left_shift(np.uint8(1), bits))
        out.append(
            (f"bits {list(zip(flips.tolist(), bits.tolist(), strict=True))}", flipped.tobytes())
        )
    out += [("zeroed", bytes(size)), ("empty", b"")]
    assert len(out) == MUTANTS
    return out


@pytest.mark.parametrize("reader", list(READERS))
def test_damaged_files_are_read_or_refused_in_one_line(reader: str, tmp_path: Path) -> None:
    source, target = READERS[reader](tmp_path)
    valid = load_corpus(source)  # the undamaged input is a corpus
    assert valid.frame.height > 0
    original = target.read_bytes()
    rng = np.random.default_rng([SEED, sum(map(ord, reader))])
    failures, refused = [], 0
    for label, data in mutants(original, rng):
        target.write_bytes(data)
        for read in (load_corpus, check_corpus):
            try:
                problems = read(source)
            except UserError as exc:
                problems = [str(exc)]
            except Exception as exc:  # noqa: BLE001 - the point of the test: collect them all
                failures.append(f"{label}: {read.__name__} raised {type(exc).__name__}: {exc}")
                continue
            if read is check_corpus:
                refused += bool(problems)
                bad = [p for p in problems if "\n" in p or not p.strip()]
                failures += [f"{label}: message over lines: {p!r}" for p in bad[:1]]
    target.write_bytes(original)
    assert not failures, "\n".join(failures[:10])
    assert refused >= 2  # the test can tell: the empty and zeroed files at least are refused


def test_a_damaged_corpus_is_exit_2_and_one_line_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = write_csv(tmp_path)
    target.write_bytes(target.read_bytes()[:12])  # "id,lang,doma": no text column
    with pytest.raises(SystemExit) as info:
        main(["embed", "--corpus", source, "--out", str(tmp_path / "e.npz")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.strip().count("\n") == 0 and source in err


def test_a_field_over_128_kib_with_a_row_problem_is_located(tmp_path: Path) -> None:
    """The stdlib csv reader (used to locate problems) refuses fields over 128 KiB by default."""
    big = "x" * 200_000
    for sep, name in ((",", "big.csv"), ("\t", "big.tsv")):
        path = tmp_path / name
        lines = (
            ["id", "lang", "domain", "text"],
            ["s1", "en", "news", big],
            ["s1", "fr", "news", ""],
        )
        path.write_text("\n".join(sep.join(r) for r in lines) + "\n", encoding="utf-8")
        with pytest.raises(UserError, match=r"line 3, column 'text': empty value"):
            load_corpus(path)
        ragged = tmp_path / f"ragged-{name}"
        ragged.write_text(
            "\n".join(sep.join(r) for r in [*lines[:2], ["s1", "fr", "news", "a", "b"]]) + "\n"
        )
        assert "line 3: 5 fields" in check_corpus(ragged)[0]


def test_damage_that_longer_runs_found(tmp_path: Path) -> None:
    """Kept as fixed cases: invalid UTF-8 inside a Parquet string page (polars panicked on
    it later, past `except Exception`), and a TMX declaring an encoding Python lacks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table(_frame().to_dict(as_series=False)), path, compression="none")
    data = path.read_bytes()
    assert data.count(b"museum") == 1
    path.write_bytes(data.replace(b"museum", b"\xff\xfeseum"))
    with pytest.raises(UserError, match="not a readable Parquet file"):
        load_corpus(path)
    source, tmx = write_tmx(tmp_path)
    tmx.write_bytes(tmx.read_bytes().replace(b"UTF-8", b"UVF-8", 1))
    with pytest.raises(UserError, match="line 1: unknown XML encoding"):
        load_corpus(source)
