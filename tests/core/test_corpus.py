"""The corpus: every format round-trips, fingerprints, splits, filters, the bundled corpus, gettext.

Files are written by independent writers here (stdlib csv/json, string-built XML, a msgfmt
re-implementation), never by the code under test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import struct
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import polars as pl
import pytest

from xrdiag.core.corpus import (
    Corpus,
    bundled_corpus_path,
    check_corpus,
    load_corpus,
    split_of,
    validate_frame,
)

ROWS = [  # (id, lang, domain, text): three languages, two domains, one id missing in de
    ("u1", "en", "medical", "Wash your hands, often."),
    ("u1", "fr", "medical", 'Lavez-vous les mains, "souvent".'),
    ("u1", "de", "medical", "Waschen Sie oft Ihre Hände."),
    ("u2", "en", "medical", "Fever & cough <symptoms>"),
    ("u2", "fr", "medical", "Fièvre et toux"),
    ("u2", "de", "medical", "Fieber und Husten"),
    ("u3", "en", "travel", "Where is the station?"),
    ("u3", "fr", "travel", "Où est la gare ?"),
    ("u4", "en", "travel", "日本語も大丈夫"),
    ("u4", "fr", "travel", "Le japonais aussi : 日本語"),
    ("u4", "de", "travel", "Auch Japanisch"),
]
COLUMNS = ["id", "lang", "domain", "text"]


def _frame(rows: list[tuple[str, ...]] = ROWS) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=COLUMNS, orient="row")


def write_csv(path: Path, rows: list[tuple[str, ...]], header: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_tsv(path: Path, rows: list[tuple[str, ...]]) -> Path:
    lines = ["\t".join(COLUMNS)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[tuple[str, ...]]) -> Path:
    objs = [json.dumps(dict(zip(COLUMNS, r, strict=True)), ensure_ascii=False) for r in rows]
    path.write_text("\n".join(objs) + "\n", encoding="utf-8")
    return path


def write_tmx(path: Path, rows: list[tuple[str, ...]]) -> Path:
    units: dict[str, list[tuple[str, ...]]] = {}
    for row in rows:
        units.setdefault(row[0], []).append(row)
    body = []
    for tuid, members in units.items():
        tuvs = "".join(
            f"<tuv xml:lang={quoteattr(r[1])}><seg>{escape(r[3])}</seg></tuv>" for r in members
        )
        prop = f'<prop type="domain">{escape(members[0][2])}</prop>'
        body.append(f"<tu tuid={quoteattr(tuid)}>{prop}\n{tuvs}</tu>")
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tmx SYSTEM "tmx14.dtd">\n'
        '<tmx version="1.4"><header srclang="en" datatype="plaintext"/>\n<body>\n'
        + "\n".join(body)
        + "\n</body></tmx>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


def naive_fingerprint(rows: list[dict[str, str | None]]) -> str:
    """The fingerprint spelled out: length-prefixed fields, rows sorted by (id, lang)."""
    lines = []
    for r in sorted(rows, key=lambda r: (r["id"].encode(), r["lang"].encode())):
        fields = [r["id"], r["lang"], r["domain"], r["split"], r["text"], r.get("label")]
        lines.append("\x1f".join("-" if f is None else f"{len(f.encode())}:{f}" for f in fields))
    return hashlib.sha256(b"xrdiag-corpus-v1\n" + "\n".join(lines).encode()).hexdigest()


@pytest.fixture
def parquet_corpus(tmp_path: Path) -> Corpus:
    path = tmp_path / "c.parquet"
    _frame().write_parquet(path)
    return load_corpus(path)


WRITERS = {
    "csv": write_csv,
    "tsv": write_tsv,
    "jsonl": write_jsonl,
    "ndjson": write_jsonl,
    "tmx": write_tmx,
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_format_round_trips_like_parquet(
    fmt: str, tmp_path: Path, parquet_corpus: Corpus
) -> None:
    shuffled = ROWS[5:] + ROWS[:5]  # input row order must not matter
    corpus = load_corpus(WRITERS[fmt](tmp_path / f"c.{fmt}", shuffled))
    assert corpus.frame.equals(parquet_corpus.frame)
    assert corpus.fingerprint() == parquet_corpus.fingerprint()
    assert corpus.source == str(tmp_path / f"c.{fmt}")


def test_frame_shape_and_order(parquet_corpus: Corpus) -> None:
    f = parquet_corpus.frame
    assert f.columns == ["id", "lang", "domain", "split", "text"]
    assert f.select("id", "lang").rows() == sorted((r[0], r[1]) for r in ROWS)
    assert parquet_corpus.langs == ["de", "en", "fr"]
    assert parquet_corpus.domains == ["medical", "travel"]
    assert len(parquet_corpus) == len(ROWS)


def test_fingerprint_matches_naive_computation(parquet_corpus: Corpus) -> None:
    rows = [dict(zip(COLUMNS, r, strict=True)) | {"split": split_of(r[0])} for r in ROWS]
    assert parquet_corpus.fingerprint() == naive_fingerprint(rows)


def test_fingerprint_changes_with_any_used_field(tmp_path: Path, parquet_corpus: Corpus) -> None:
    base = parquet_corpus.fingerprint()
    changed = [ROWS[0][:3] + ("Wash your hands often.",)] + ROWS[1:]
    assert Corpus.from_frame(_frame(changed)).fingerprint() != base
    relabelled = [ROWS[0][:2] + ("travel",) + ROWS[0][3:]] + ROWS[1:]
    with_split = _frame().with_columns(pl.lit("test").alias("split"))
    assert Corpus.from_frame(with_split).fingerprint() != base
    assert Corpus.from_frame(_frame(relabelled[:1] + ROWS[3:])).fingerprint() != base
    with_label = _frame().with_columns(pl.lit(1).alias("label"))
    assert Corpus.from_frame(with_label).fingerprint() != base
    extra = _frame().with_columns(pl.lit("x").alias("note"))  # unused columns do not count
    assert Corpus.from_frame(extra).fingerprint() == base


def test_labels_and_extra_columns_are_kept(tmp_path: Path) -> None:
    rows = [r + (str(i % 2), f"n{i}") for i, r in enumerate(ROWS)]
    header = COLUMNS + ["label", "note"]
    from_csv = load_corpus(write_csv(tmp_path / "l.csv", rows, header))
    frame = pl.DataFrame(rows, schema=header, orient="row").with_columns(pl.col("label").cast(int))
    frame.write_parquet(tmp_path / "l.parquet")
    from_parquet = load_corpus(tmp_path / "l.parquet")
    assert from_csv.frame.columns == ["id", "lang", "domain", "split", "text", "label", "note"]
    assert from_csv.frame["label"].dtype == pl.Int64  # inferred, as in Parquet
    assert from_csv.frame.equals(from_parquet.frame)
    assert from_csv.fingerprint() == from_parquet.fingerprint()
    expected = naive_fingerprint(
        [
            {"id": r[0], "lang": r[1], "domain": r[2], "text": r[3], "label": r[4]}
            | {"split": split_of(r[0])}
            for r in rows
        ]
    )
    assert from_csv.fingerprint() == expected


def test_csv_quoted_newlines_and_bom(tmp_path: Path) -> None:
    rows = [("a", "en", "x", "two\nlines, quoted"), ("a", "fr", "x", "deux\r\nlignes")]
    path = write_csv(tmp_path / "q.csv", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # Excel's BOM
    corpus = load_corpus(path)
    assert corpus.frame["text"].to_list() == ["two\nlines, quoted", "deux\r\nlignes"]


def test_jsonl_mixed_types_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"id": 7, "lang": "en", "text": "seven"}\n\n{"id": "7", "lang": "fr", "text": "sept"}\n'
    )  # noqa: E501
    corpus = load_corpus(path)
    assert corpus.frame.select("id", "lang", "domain").rows() == [
        ("7", "en", "general"),
        ("7", "fr", "general"),
    ]


def test_lang_codes_are_normalised_on_load(tmp_path: Path) -> None:
    rows = [("a", "EN", "d", "hi"), ("a", "pt_br", "d", "oi"), ("a", "es-LA", "d", "hola")]
    corpus = load_corpus(write_csv(tmp_path / "n.csv", rows))
    assert corpus.langs == ["en", "es-419", "pt-BR"]


# ---- splits -------------------------------------------------------------------------------

KNOWN_SPLITS = {  # sha256-based: a change of the hashing scheme must fail here
    "CMU_1:1": "train",
    "CMU_1:103": "dev",
    "CMU_1:11": "test",
    "CMU_1:110": "test",
    "u3": "train",
    "u4": "test",
    "wiki_4:6": "dev",
}


def _independent_split(id_: str, ratios: tuple[float, float, float]) -> str:
    u = int(hashlib.sha256(id_.encode()).hexdigest()[:16], 16) / 16**16
    return "train" if u < ratios[0] else ("dev" if u < ratios[0] + ratios[1] else "test")


def test_split_is_stable_for_known_ids() -> None:
    for id_, split in KNOWN_SPLITS.items():
        assert split_of(id_) == split
        assert _independent_split(id_, (0.8, 0.1, 0.1)) == split


def test_split_ratios_and_agreement_on_bundled_ids() -> None:
    ids = pl.read_parquet(bundled_corpus_path())["id"].unique().to_list()
    for ratios in [(0.8, 0.1, 0.1), (0.5, 0.25, 0.25)]:
        splits = [split_of(i, ratios) for i in ids]
        assert splits == [_independent_split(i, ratios) for i in ids]
        for name, ratio in zip(("train", "dev", "test"), ratios, strict=True):
            assert abs(splits.count(name) / len(ids) - ratio) < 0.03


def test_derived_split_is_shared_by_every_language(parquet_corpus: Corpus) -> None:
    per_id = parquet_corpus.frame.group_by("id").agg(pl.col("split").n_unique())
    assert per_id["split"].max() == 1
    for id_, split in parquet_corpus.frame.select("id", "split").rows():
        assert split == split_of(id_)


def test_custom_ratios_and_given_split_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ROWS)
    all_test = load_corpus(path, split_ratios=(0.0, 0.0, 1.0))
    assert set(all_test.frame["split"]) == {"test"}
    given = _frame().with_columns(
        pl.when(pl.col("id") == "u1").then(pl.lit("dev")).otherwise(pl.lit("train")).alias("split")
    )
    corpus = Corpus.from_frame(given)
    assert dict(corpus.frame.select("id", "split").unique().rows())["u1"] == "dev"


# ---- filters ------------------------------------------------------------------------------


def test_filter_langs_domains_splits(parquet_corpus: Corpus) -> None:
    f = parquet_corpus.filter(langs=["EN", "fr"], domains="travel")
    assert f.langs == ["en", "fr"] and f.domains == ["travel"]
    assert sorted(f.frame["id"].unique()) == ["u3", "u4"]
    assert parquet_corpus.filter(langs="en,de").langs == ["de", "en"]
    test = parquet_corpus.filter(splits=["test"])
    assert set(test.frame["id"]) == {"u4"}  # KNOWN_SPLITS


@pytest.fixture(scope="module")
def bundled() -> Corpus:
    return load_corpus(None)


def test_cap_keeps_whole_groups_and_is_seeded(bundled: Corpus) -> None:
    small = bundled.filter(langs=["en", "fr", "zh"])
    capped = small.filter(max_per_domain=40, seed=3)
    ids = capped.frame.select("id", "domain").unique()
    counts = dict(ids.group_by("domain").len().rows())
    full = dict(small.frame.select("id", "domain").unique().group_by("domain").len().rows())
    assert counts == {d: min(40, n) for d, n in full.items()}
    per_id = capped.frame.group_by("id").len()
    assert set(per_id["len"]) == {3}  # every language of a sampled id is kept
    again = small.filter(max_per_domain=40, seed=3)
    assert again.frame.equals(capped.frame)
    other = small.filter(max_per_domain=40, seed=4)
    assert set(other.frame["id"]) != set(capped.frame["id"])
    assert capped.fingerprint() == again.fingerprint() != other.fingerprint()


def test_cap_is_stratified_by_split(bundled: Corpus) -> None:
    capped = bundled.filter(max_per_domain=100, seed=0)
    ids = capped.frame.select("id", "domain", "split").unique()
    full = bundled.frame.select("id", "domain", "split").unique()
    for domain in bundled.domains:
        n = full.filter(pl.col("domain") == domain).height
        for split in ("train", "dev", "test"):
            share = full.filter((pl.col("domain") == domain) & (pl.col("split") == split)).height
            got = ids.filter((pl.col("domain") == domain) & (pl.col("split") == split)).height
            assert abs(got - min(100, n) * share / n) < 1.0  # largest-remainder quota


def test_cap_larger_than_domain_keeps_everything(parquet_corpus: Corpus) -> None:
    assert parquet_corpus.filter(max_per_domain=10).frame.equals(parquet_corpus.frame)


# ---- alignment and describe ----------------------------------------------------------------


def test_aligned_ids_and_describe(parquet_corpus: Corpus) -> None:
    assert parquet_corpus.aligned_ids() == ["u1", "u2", "u4"]
    info = parquet_corpus.describe()
    json.dumps(info)  # JSON-serialisable
    assert info["n_rows"] == 11 and info["n_ids"] == 4
    assert info["counts"] == {
        "de": {"medical": 2, "travel": 1},
        "en": {"medical": 2, "travel": 2},
        "fr": {"medical": 2, "travel": 2},
    }
    assert info["alignment_completeness"] == pytest.approx(3 / 4, abs=1e-12)
    assert info["coverage"] == {"de": 0.75, "en": 1.0, "fr": 1.0}
    expected_splits = {
        s: sum(split_of(i) == s for i in ("u1", "u2", "u3", "u4")) for s in ("train", "dev", "test")
    }  # noqa: E501
    assert info["split_ids"] == expected_splits
    assert info["problems"][0] == "de: present for 3 of 4 ids"
    assert info["fingerprint"] == parquet_corpus.fingerprint()


# ---- the bundled corpus -------------------------------------------------------------------

BUNDLED_LANGS = [
    "ar", "bn", "en", "es-419", "fa", "fr", "ha", "hi", "id", "kr", "lg", "ln", "om", "pt-BR",
    "ru", "sw", "ti", "zh",
]  # fmt: skip


def test_bundled_corpus(bundled: Corpus) -> None:
    assert load_corpus("default").fingerprint() == bundled.fingerprint()
    assert bundled.source == "default"
    assert bundled.langs == BUNDLED_LANGS
    assert bundled.domains == [
        "conversation",
        "encyclopedia",
        "medical",
        "news",
        "official",
        "travel",
    ]  # noqa: E501
    assert bundled.frame["id"].n_unique() == 3071
    assert len(bundled) == 3071 * 18 - 5  # five {NS} placeholders of es-419 left out
    assert len(bundled.aligned_ids()) == 3066
    info = bundled.describe()
    assert info["placeholder_rows"] == 0
    assert info["problems"] == ["es-419: present for 3066 of 3071 ids"]
    assert info["duplicate_text_groups"] == 236
    assert "source" in bundled.frame.columns
    data = bundled_corpus_path().parent
    assert (data / "LICENSE-CC0.md").exists() and (data / "PROVENANCE.md").exists()
    assert bundled_corpus_path().stat().st_size < 5_000_000


def test_bundled_corpus_matches_shared_tico19_when_present(bundled: Corpus) -> None:
    shared = Path(__file__).resolve().parents[3] / "shared/data/tico19/tico19.parquet"
    if not shared.exists():
        pytest.skip("../shared/data is not here (a clone alone)")
    raw = pl.read_parquet(shared).filter(pl.col("lang") == "es-LA").sort("id")
    ours = bundled.frame.filter(pl.col("lang") == "es-419").sort("id")
    placeholder = raw["text"] == "{NS}"  # TICO-19's "no segment" marker: left out
    assert placeholder.sum() == 5
    assert ours["text"].to_list() == raw.filter(~placeholder)["text"].to_list()
    for lang in ("ha", "lg", "ln", "om", "kr"):
        got = bundled.frame.filter(pl.col("lang") == lang).sort("id")["text"].to_list()
        assert (
            got
            == pl.read_parquet(shared).filter(pl.col("lang") == lang).sort("id")["text"].to_list()
        )


# ---- gettext ------------------------------------------------------------------------------


def write_mo(path: Path, messages: dict[str, str]) -> Path:
    """msgfmt's output format (CPython Tools/i18n/msgfmt.py), re-implemented for the test."""
    keys = sorted(messages)
    ids = strs = b""
    offsets = []
    for k in keys:
        kb, vb = k.encode(), messages[k].encode()
        offsets.append((len(ids), len(kb), len(strs), len(vb)))
        ids += kb + b"\0"
        strs += vb + b"\0"
    start = 7 * 4 + 16 * len(keys)
    koffsets, voffsets = [], []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + start]
        voffsets += [l2, o2 + start + len(ids)]
    head = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + struct.pack(f"{len(koffsets)}i", *koffsets)
                     + struct.pack(f"{len(voffsets)}i", *voffsets) + ids + strs)  # fmt: skip
    return path


FR_PO = r"""# French translation
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

#: views.py:10
msgid "Save"
msgstr "Enregistrer"

#, fuzzy
msgid "Delete"
msgstr "Supprimer (à revoir)"

msgid "Cancel"
msgstr ""

msgid ""
"A long "
"message\twith \"quotes\""
msgstr ""
"Un long "
"message\tavec « guillemets »"

msgctxt "month"
msgid "May"
msgstr "mai"

msgid "one file"
msgid_plural "%d files"
msgstr[0] "un fichier"
msgstr[1] "%d fichiers"

#~ msgid "Old"
#~ msgstr "Vieux"
"""


def test_gettext_po_and_mo_tree(tmp_path: Path) -> None:
    root = tmp_path / "app"
    fr = root / "locale/fr/LC_MESSAGES/django.po"
    fr.parent.mkdir(parents=True)
    fr.write_text(FR_PO, encoding="utf-8")
    write_mo(root / "locale/de/LC_MESSAGES/django.mo", {
        "": "Content-Type: text/plain; charset=UTF-8\n",
        "Save": "Speichern",
        "Cancel": "",  # untranslated
        "month\x04May": "Mai",
        "one file\x00%d files": "eine Datei\x00%d Dateien",
    })  # fmt: skip
    write_mo(root / "locale/pt_BR/LC_MESSAGES/djangojs.mo", {"Save": "Salvar", "Close": "Fechar"})
    write_mo(root / "locale/en/LC_MESSAGES/django.mo", {"Save": "Save"})  # source language
    corpus = load_corpus(root)
    may = hashlib.sha256(b"month\x04May").hexdigest()[:16]
    long = 'A long message\twith "quotes"'
    assert sorted(corpus.frame.select("id", "lang", "domain", "text").rows()) == sorted([
        ("Save", "en", "django", "Save"),
        ("Save", "fr", "django", "Enregistrer"),
        ("Save", "de", "django", "Speichern"),
        ("Save", "pt-BR", "django", "Salvar"),  # first catalog stem (django) owns "Save"
        (long, "en", "django", long),
        (long, "fr", "django", "Un long message\tavec « guillemets »"),
        (may, "en", "django", "May"),
        (may, "fr", "django", "mai"),
        (may, "de", "django", "Mai"),
        ("one file", "en", "django", "one file"),
        ("one file", "fr", "django", "un fichier"),
        ("one file", "de", "django", "eine Datei"),
        ("Close", "en", "djangojs", "Close"),
        ("Close", "pt-BR", "djangojs", "Fechar"),
    ])  # fmt: skip


def test_gettext_po_and_mo_of_one_catalog_agree(tmp_path: Path) -> None:
    po = tmp_path / "po/fr/LC_MESSAGES/app.po"
    po.parent.mkdir(parents=True)
    po.write_text(FR_PO, encoding="utf-8")
    write_mo(tmp_path / "mo/fr/LC_MESSAGES/app.mo", {
        "Save": "Enregistrer",
        "Delete": "",  # msgfmt leaves fuzzy entries out
        'A long message\twith "quotes"': "Un long message\tavec « guillemets »",
        "month\x04May": "mai",
        "one file\x00%d files": "un fichier\x00%d fichiers",
    })  # fmt: skip
    from_po, from_mo = load_corpus(tmp_path / "po"), load_corpus(tmp_path / "mo")
    assert from_po.frame.equals(from_mo.frame)
    assert from_po.fingerprint() == from_mo.fingerprint()


def test_gettext_codeset_copies_count_once(tmp_path: Path) -> None:
    write_mo(tmp_path / "pl/LC_MESSAGES/vim.mo", {"Save": "Zapisz"})
    write_mo(tmp_path / "pl.cp1250/LC_MESSAGES/vim.mo", {"Save": "Zapisz (cp1250)"})
    corpus = load_corpus(tmp_path)
    assert corpus.frame.filter(pl.col("lang") == "pl")["text"].to_list() == ["Zapisz"]


# ---- TMX specifics ------------------------------------------------------------------------


def test_tmx_ids_domains_and_inline_codes(tmp_path: Path) -> None:
    path = tmp_path / "t.tmx"
    path.write_text(
        '<?xml version="1.0"?>\n<tmx version="1.4">\n'
        '<header srclang="en"><prop type="domain">legal</prop></header>\n<body>\n'
        '<tu><tuv xml:lang="en"><seg>Press <ph x="1">&lt;b&gt;</ph>OK</seg></tuv>\n'
        '<tuv lang="FR"><seg>Appuyez sur OK</seg></tuv></tu>\n'
        '<tu tuid="k"><prop type="domain">ui</prop><tuv xml:lang="en"><seg>Hi</seg></tuv>\n'
        '<tuv xml:lang="fr"><seg>Salut &amp; bonjour</seg></tuv></tu>\n'
        "</body></tmx>\n",
        encoding="utf-8",
    )
    corpus = load_corpus(path)
    assert corpus.frame.select("id", "lang", "domain", "text").rows() == [
        ("1", "en", "legal", "Press OK"),  # no tuid: the unit's position; header domain
        ("1", "fr", "legal", "Appuyez sur OK"),
        ("k", "en", "ui", "Hi"),
        ("k", "fr", "ui", "Salut & bonjour"),
    ]


def test_validate_frame_and_check_corpus_on_valid_input(tmp_path: Path) -> None:
    assert validate_frame(_frame()) == []
    assert check_corpus(write_csv(tmp_path / "ok.csv", ROWS)) == []
    assert check_corpus(None) == []
