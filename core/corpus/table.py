"""The corpus: long-format parallel sentences, validated, with deterministic splits and filters.

One row per sentence (DESIGN.md, "Data model"): `id` (translations share it), `lang` (BCP-47),
`domain`, `split`, `text`, optional `label`, and any extra input columns kept as they are.
Every diagnostic is computed on a Corpus, and its fingerprint keys the embedding cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.core.corpus.formats import read_source
from xrdiag.core.corpus.hygiene import duplicate_groups, grouped_splits, placeholder_rows
from xrdiag.core.corpus.langcodes import lang_problem, normalize_lang
from xrdiag.core.corpus.raw import ROW, RawTable, err, msg
from xrdiag.core.corpus.testsets import LAYOUTS as TESTSET_LAYOUTS
from xrdiag.errors import UserError

REQUIRED = ("id", "lang", "text")
CORE = ("id", "lang", "domain", "split", "text")
SPLITS = ("train", "dev", "test")
DEFAULT_DOMAIN = "general"
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)
BUNDLED = "default"
MAX_LISTED = 20  # problems of one kind listed one by one before a summary line
_EXPECTED_COLUMNS = "expected columns id, lang, text (optional: domain, split, label)"
_WHAT = {
    "id": "a non-empty id",
    "lang": "a language code",
    "text": "a non-empty sentence",
    "domain": "a non-empty domain",
    "split": "train, dev or test",
}


def bundled_corpus_path() -> Path:
    """The bundled TICO-19 subset (18 languages, 3,071 ids, CC0) shipped inside the package."""
    return Path(__file__).parent.parent / "data" / "tico19_subset.parquet"


def split_of(id_: str, ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS) -> str:
    """Split of one id from sha256(id): the same on every machine and for every language."""
    u = int.from_bytes(hashlib.sha256(id_.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "train" if u < ratios[0] else "dev" if u < ratios[0] + ratios[1] else "test"


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-9:
        expected = "three non-negative numbers (train, dev, test) summing to 1"
        raise UserError(f"split ratios {tuple(ratios)}: expected {expected}")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def _limited(problems: list[str], noun: str) -> list[str]:
    """At most MAX_LISTED problems of a kind, then one line counting the rest."""
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more {noun}"]


def _column_problems(frame: pl.DataFrame, src: str) -> tuple[list[pl.Expr], list[str]]:
    """Required columns present and core columns textual: the casts to apply, or problems."""
    data_cols = [c for c in frame.columns if c != ROW]
    if frame.height == 0 and not data_cols:
        return [], [f"{src}: no rows; expected at least one sentence"]
    missing = [c for c in REQUIRED if c not in data_cols]
    if missing:
        found = ", ".join(data_cols) or "none"
        cols = ("columns " if len(missing) > 1 else "column ") + ", ".join(map(repr, missing))
        return [], [f"{src}: missing required {cols}; {_EXPECTED_COLUMNS}; found columns: {found}"]
    if frame.height == 0:
        return [], [f"{src}: no rows; expected at least one sentence"]
    casts, problems = [], []
    for col in [c for c in CORE if c in data_cols]:
        dtype = frame.schema[col]
        if dtype == pl.String:
            continue
        if dtype.is_integer() or dtype == pl.Null or isinstance(dtype, pl.Categorical | pl.Enum):
            casts.append(pl.col(col).cast(pl.String))
        else:
            problems.append(f"{src}, column {col!r}: values of type {dtype}; expected text")
    if "label" in data_cols and frame.schema["label"].is_nested():
        problem = f"values of type {frame.schema['label']}"
        problems.append(msg(src, "column 'label'", problem, "a number or text"))
    return casts, problems


def _problems(raw: RawTable) -> tuple[pl.DataFrame | None, list[str]]:
    """Validate a raw table: the cleaned frame (lang normalised, `__row` kept) or all problems."""
    src, frame, at = raw.source, raw.frame, raw.locate
    casts, problems = _column_problems(frame, src)
    problems = raw.problems + problems
    if problems:
        return None, problems
    data_cols = frame.columns
    frame = frame.with_columns(casts)
    for col in [c for c in ("id", "lang", "text", "domain", "split") if c in data_cols]:
        bad = frame.filter(pl.col(col).is_null() | (pl.col(col).str.strip_chars() == ""))[ROW]
        kind = [f"{src}, {at(i)}, column {col!r}: empty value; expected {_WHAT[col]}" for i in bad]
        problems += _limited(kind, f"rows with an empty {col}")
    frame = frame.filter(pl.all_horizontal(pl.col(c).str.strip_chars() != "" for c in REQUIRED))
    codes = {c: lang_problem(c) for c in frame["lang"].unique().to_list()}
    for code in sorted(c for c, why in codes.items() if why):
        rows = frame.filter(pl.col("lang") == code)[ROW]
        n = len(rows) - 1
        more = f" (and {n} more row{'s' if n > 1 else ''})" if n else ""
        problems.append(f"{src}, {at(rows[0])}, column 'lang': {codes[code]}{more}")
    if "split" in data_cols:
        for value in sorted(set(frame["split"].drop_nulls().to_list()) - set(SPLITS)):
            if value.strip():
                rows = frame.filter(pl.col("split") == value)[ROW]
                where = f"{at(rows[0])}, column 'split'"
                problems.append(msg(src, where, f"{value!r} is not a split", _WHAT["split"]))
    norm = {c: c if why else normalize_lang(c) for c, why in codes.items()}
    frame = frame.with_columns(
        pl.col("lang").alias("__raw_lang"), pl.col("lang").replace_strict(norm).alias("lang")
    )
    problems += _duplicates(frame, src, at)
    for col in ("domain", "split"):
        if col in data_cols:
            problems += _inconsistent(frame, col, src, at)
    return (None if problems else frame.drop("__raw_lang")), problems


def _duplicates(frame: pl.DataFrame, src: str, at: Any) -> list[str]:
    """One problem per repeated (id, lang), naming the row and the first row with that pair."""
    dup = frame.filter(pl.len().over("id", "lang") > 1).sort(ROW)
    first: dict[tuple[str, str], tuple[int, str]] = {}
    problems = []
    for id_, lang, raw, row in dup.select("id", "lang", "__raw_lang", ROW).iter_rows():
        if (id_, lang) not in first:
            first[(id_, lang)] = (row, raw)
            continue
        row0, raw0 = first[(id_, lang)]
        why = f": {raw0!r} and {raw!r} both normalise to it" if raw0 != raw else ""
        problem = f"duplicate (id {id_!r}, lang {lang!r}{why}), first at {at(row0)}"
        where = f"{at(row)}, column 'lang'"
        problems.append(msg(src, where, problem, "one row per id and language"))
    return _limited(problems, "duplicate rows")


def _inconsistent(frame: pl.DataFrame, col: str, src: str, at: Any) -> list[str]:
    """Ids whose languages disagree on `col`: translations must share a domain and a split."""
    mixed = frame.filter(pl.col(col).n_unique().over("id") > 1).sort(ROW)
    first: dict[str, tuple[int, str]] = {}
    problems = []
    for id_, value, row in mixed.select("id", col, ROW).iter_rows():
        row0, value0 = first.setdefault(id_, (row, value))
        if value != value0 and value0 is not None:
            first[id_] = (row0, None)  # report each id once
            problems.append(
                f"{src}, {at(row)}, column {col!r}: id {id_!r} has {col} {value!r} here and "
                f"{value0!r} at {at(row0)}; expected one {col} per id (translations share it)"
            )
    return _limited(problems, f"ids with several {col}s")


def _finish(frame: pl.DataFrame, ratios: tuple[float, float, float]) -> pl.DataFrame:
    """Fill domain and split, order the columns, sort by (id, lang)."""
    if "domain" not in frame.columns:
        frame = frame.with_columns(pl.lit(DEFAULT_DOMAIN).alias("domain"))
    if "split" not in frame.columns:
        # Ids that share a sentence share a split: no sentence in both train and dev/test.
        mapping = grouped_splits(frame, lambda i: split_of(i, ratios))
        frame = frame.with_columns(pl.col("id").replace_strict(mapping).alias("split"))
    extra = [c for c in frame.columns if c not in CORE and c not in ("label", ROW)]
    label = ["label"] if "label" in frame.columns else []
    return frame.select(*CORE, *label, *extra).sort("id", "lang")


@dataclass(frozen=True, eq=False)
class Corpus:
    """A validated long-format corpus; `frame` is sorted by (id, lang)."""

    frame: pl.DataFrame
    source: str
    layout: str = "file"  # how it was read: file, gettext, tatoeba, flores200, flores+, ntrex, hf

    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        source: str = "<frame>",
        split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS,
    ) -> Corpus:
        """Validate an in-memory long frame (rows reported 1-based) into a Corpus."""
        raw = RawTable(frame.with_row_index(ROW), source, lambda i: f"row {i + 1}")
        return _build(raw, _check_ratios(split_ratios), "frame")

    def __len__(self) -> int:
        return self.frame.height

    @property
    def langs(self) -> list[str]:
        """Languages present, sorted."""
        return sorted(self.frame["lang"].unique().to_list())

    @property
    def domains(self) -> list[str]:
        """Domains present, sorted."""
        return sorted(self.frame["domain"].unique().to_list())

    def filter(
        self,
        langs: Iterable[str] | str | None = None,
        domains: Iterable[str] | str | None = None,
        splits: Iterable[str] | str | None = None,
        max_per_domain: int | None = None,
        seed: int = 0,
    ) -> Corpus:
        """Keep some languages, domains and splits; optionally cap the ids per domain.

        The cap samples whole translation groups (every language of a chosen id), seeded, and
        stratified by split so that train/dev/test keep their proportions in each domain.
        """
        frame = self.frame
        if langs is not None:
            try:
                wanted = [normalize_lang(x) for x in _as_list(langs)]
            except UserError as exc:
                raise UserError(f"--langs: {exc}") from None
            frame = frame.filter(pl.col("lang").is_in(_known("--langs", wanted, self.langs)))
        if domains is not None:
            wanted = _known("--domains", _as_list(domains), self.domains)
            frame = frame.filter(pl.col("domain").is_in(wanted))
        if splits is not None:
            for s in _as_list(splits):
                if s not in SPLITS:
                    raise UserError(f"--splits: {s!r} is not a split; expected train, dev or test")
            frame = frame.filter(pl.col("split").is_in(_as_list(splits)))
        if max_per_domain is not None:
            if (
                isinstance(max_per_domain, bool)
                or not isinstance(max_per_domain, int)
                or max_per_domain < 1
            ):
                raise UserError(
                    f"--max-per-domain: {max_per_domain!r}; expected a positive integer"
                )
            keep = _cap_ids(frame, max_per_domain, seed)
            frame = frame.filter(pl.col("id").is_in(keep))
        if frame.height == 0:
            chosen = f"langs={langs}, domains={domains}, splits={splits}"
            raise err(self.source, None, f"the filters leave no rows ({chosen})", "a sentence")
        return Corpus(frame, self.source, self.layout)

    def fingerprint(self) -> str:
        """sha256 of exactly the rows used (id, lang, domain, split, text, label), canonically.

        Fields are length-prefixed so no text can forge a boundary; rows are in (id, lang)
        order, so the hash ignores input row order and file format.
        """
        label = pl.col("label") if "label" in self.frame.columns else pl.lit(None, pl.String)
        fields = [pl.col(c) for c in CORE] + [label.cast(pl.String)]
        parts = [
            pl.when(f.is_null())
            .then(pl.lit("-"))
            .otherwise(f.str.len_bytes().cast(pl.String) + ":" + f)
            for f in fields
        ]
        lines = self.frame.sort("id", "lang").select(pl.concat_str(parts, separator="\x1f"))
        digest = hashlib.sha256(b"xrdiag-corpus-v1\n")
        digest.update(lines.to_series().str.join("\n").item().encode("utf-8"))
        return digest.hexdigest()

    def aligned_ids(self) -> list[str]:
        """Ids present in every language of the corpus, sorted."""
        n = len(self.langs)
        counts = self.frame.group_by("id").agg(pl.col("lang").n_unique().alias("n"))
        return sorted(counts.filter(pl.col("n") == n)["id"].to_list())

    def describe(self) -> dict[str, Any]:
        """Summary for `xrdiag corpus info`: sizes, lang x domain counts, coverage, problems."""
        f = self.frame
        ids = f.select("id", "domain", "split").unique("id")
        n_ids = ids.height
        counts: dict[str, dict[str, int]] = {lang: {} for lang in self.langs}
        for lang, domain, n in (
            f.group_by("lang", "domain").len().sort("lang", "domain").iter_rows()
        ):
            counts[lang][domain] = n
        per_lang = dict(f.group_by("lang").agg(pl.col("id").n_unique()).sort("lang").iter_rows())
        coverage = {lang: per_lang[lang] / n_ids for lang in self.langs}
        split_ids = {s: ids.filter(pl.col("split") == s).height for s in SPLITS}
        n_aligned = len(self.aligned_ids())
        # A test set's own design is no problem: Tatoeba's ids are per language pair, and
        # test sets come without a train split (FLORES: dev and test; the others: test only).
        problems = [
            f"{lang}: present for {per_lang[lang]} of {n_ids} ids"
            for lang in self.langs
            if per_lang[lang] < n_ids and self.layout != "tatoeba"
        ]
        singles = f.group_by("id").len().filter(pl.col("len") == 1).height
        if singles and len(self.langs) > 1:
            problems.append(f"{singles} ids have a single language (no translation to align)")
        if self.layout not in TESTSET_LAYOUTS:
            problems += [f"split {s!r} is empty" for s, n in split_ids.items() if n == 0]
        placeholders = placeholder_rows(f)
        if placeholders.height:
            example = placeholders.row(0, named=True)
            problems.append(
                f"{placeholders.height} rows are placeholders, not sentences (e.g. id "
                f"{example['id']!r}, {example['lang']}: {example['text']!r})"
            )
        duplicates = duplicate_groups(f)
        return {
            "source": self.source,
            "layout": self.layout,
            "fingerprint": self.fingerprint(),
            "n_rows": f.height,
            "n_ids": n_ids,
            "langs": self.langs,
            "domains": self.domains,
            "counts": counts,
            "domain_ids": dict(ids.group_by("domain").len().sort("domain").iter_rows()),
            "split_ids": split_ids,
            "split_rows": {s: f.filter(pl.col("split") == s).height for s in SPLITS},
            "alignment_completeness": n_aligned / n_ids,
            "coverage": coverage,
            # Groups of ids sharing one sentence in a language: information, not a problem
            # (retrieval counts them as the gold with --duplicates text; splits keep them whole).
            "duplicate_text_groups": duplicates.height,
            "duplicate_text_ids": int(duplicates["ids"].list.len().sum() or 0),
            "placeholder_rows": placeholders.height,
            "problems": problems,
        }


def _as_list(values: Iterable[str] | str) -> list[str]:
    if isinstance(values, str):
        return [v.strip() for v in values.split(",") if v.strip()]
    return list(values)


def _known(flag: str, wanted: list[str], available: list[str]) -> list[str]:
    for value in wanted:
        if value not in available:
            raise UserError(
                f"{flag}: {value!r} is not in the corpus; available: {', '.join(available)}"
            )
    return wanted


def _stable_int(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _cap_ids(frame: pl.DataFrame, cap: int, seed: int) -> list[str]:
    """At most `cap` ids per domain, sampled per split in proportion (largest remainder)."""
    import numpy as np

    ids = frame.select("id", "domain", "split").unique("id").sort("id")
    keep: list[str] = []
    for (domain,), group in ids.group_by("domain", maintain_order=True):
        if group.height <= cap:
            keep += group["id"].to_list()
            continue
        sizes = {s: group.filter(pl.col("split") == s).height for s in SPLITS}
        exact = {s: cap * n / group.height for s, n in sizes.items()}
        quota = {s: int(q) for s, q in exact.items()}
        order = sorted(SPLITS, key=lambda s: (-(exact[s] - quota[s]), SPLITS.index(s)))
        for s in order[: cap - sum(quota.values())]:
            quota[s] += 1
        for s in SPLITS:
            members = group.filter(pl.col("split") == s)["id"].to_list()
            rng = np.random.default_rng([seed, _stable_int(domain, s)])
            keep += [members[i] for i in sorted(rng.choice(len(members), quota[s], replace=False))]
    return keep


def _build(raw: RawTable, ratios: tuple[float, float, float], layout: str = "file") -> Corpus:
    frame, problems = _problems(raw)
    if problems and raw.recheck is not None:
        problems = raw.recheck() + problems
    if frame is None or problems:
        raise UserError(problems[0])
    return Corpus(_finish(frame, ratios), raw.source, layout)


def _resolve(path: str | Path | None) -> tuple[Path, str]:
    if path is None or str(path) == BUNDLED:
        return bundled_corpus_path(), BUNDLED
    return Path(path).expanduser(), str(path)


def load_corpus(
    path: str | Path | None,
    split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS,
    columns: str | None = None,
) -> Corpus:
    """Read and validate a corpus: a file, a gettext tree, a test set (`tatoeba:DIR`, ...) or a
    Hugging Face dataset (`hf:NAME`, whose columns `columns` maps); None or "default" is the
    bundled one. The first problem found raises UserError (one line: file, row, column,
    expectation).
    """
    ratios = _check_ratios(split_ratios)
    file, source = _resolve(path)
    layout, raw = read_source(file, source, columns)
    return _build(raw, ratios, layout)


def validate_frame(frame: pl.DataFrame, source: str = "<frame>") -> list[str]:
    """Every problem of an in-memory long frame (rows 1-based); empty when it is a valid corpus."""
    raw = RawTable(frame.with_row_index(ROW), source, lambda i: f"row {i + 1}")
    return _problems(raw)[1]


def check_corpus(path: str | Path | None, columns: str | None = None) -> list[str]:
    """Every problem of a corpus file (for `xrdiag corpus info`); empty when it loads."""
    file, source = _resolve(path)
    try:
        raw = read_source(file, source, columns)[1]
    except UserError as exc:
        return [str(exc)]
    problems = _problems(raw)[1]
    if problems and raw.recheck is not None:
        problems = raw.recheck() + problems
    return problems
