"""Side-by-side comparison of checkpoints: every metric cell, its values and the delta B - A.

`compare` puts evaluations on the same corpus rows next to each other. A cell is a key of the
long results schema (analysis, metric, layer, src_lang, tgt_lang, domain); the first input is
the reference A. A delta is called significant when the two bootstrap intervals do not overlap
(a conservative test: non-overlapping 95% intervals imply p < 0.05, the converse does not hold;
Schenker & Gentleman 2001, "On judging the significance of differences by examining the
overlap between confidence intervals"). Cells without an interval are never significant.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.core.layout.dirs import EvalDir
from xrdiag.core.layout.frames import read_results, read_rows
from xrdiag.core.layout.resolve import written_diagnostics
from xrdiag.errors import UserError

KEY_COLUMNS = ("analysis", "metric", "layer", "src_lang", "tgt_lang", "domain")
COMPARE_COLUMNS = (
    *KEY_COLUMNS,
    "a",
    "b",
    "value_a",
    "value_b",
    "delta",
    "ci_low_a",
    "ci_high_a",
    "ci_low_b",
    "ci_high_b",
    "significant",
    "exceeds",
)
_SIDE = ("value", "ci_low", "ci_high")

Progress = Callable[[str, int, int | None], None]


def compare_results(
    frames: Sequence[pl.DataFrame],
    labels: Sequence[str],
    threshold: float = 0.01,
    diff_only: bool = False,
) -> pl.DataFrame:
    """One row per (metric cell, other label): values, delta = b - a, significance, `exceeds`.

    Cells present on one side only keep a null value and delta on the other and are neither
    significant nor exceeding. `diff_only` keeps the rows whose |delta| > threshold.
    """
    if len(frames) != len(labels) or len(frames) < 2:
        raise ValueError("compare_results needs at least two frames and one label per frame")
    ref = _side(frames[0], "a")
    parts = []
    for frame, label in zip(frames[1:], labels[1:], strict=True):
        joined = ref.join(_side(frame, "b"), on=list(KEY_COLUMNS), how="full", coalesce=True,
                          nulls_equal=True)  # fmt: skip
        joined = joined.sort(list(KEY_COLUMNS), nulls_last=True, maintain_order=True)
        parts.append(joined.with_columns(pl.lit(labels[0]).alias("a"), pl.lit(label).alias("b")))
    out = pl.concat(parts).with_columns((pl.col("value_b") - pl.col("value_a")).alias("delta"))
    apart = (pl.col("ci_high_a") < pl.col("ci_low_b")) | (pl.col("ci_high_b") < pl.col("ci_low_a"))
    out = out.with_columns(
        apart.fill_null(False).alias("significant"),
        (pl.col("delta").abs() > threshold).fill_null(False).alias("exceeds"),
    ).select(COMPARE_COLUMNS)
    return out.filter(pl.col("exceeds")) if diff_only else out


def _side(frame: pl.DataFrame, suffix: str) -> pl.DataFrame:
    """Key columns plus value and interval renamed for one side; a cell must occur once."""
    part = frame.select(*KEY_COLUMNS, *_SIDE)
    dup = part.select(KEY_COLUMNS).is_duplicated()
    if dup.any():
        first = part.filter(dup).row(0, named=True)
        cell = ", ".join(f"{k}={first[k]}" for k in KEY_COLUMNS)
        raise UserError(f"results hold a metric cell twice (several checkpoints?): {cell}")
    return part.rename({c: f"{c}_{suffix}" for c in _SIDE})


# --------------------------------------------------------------------------- inputs


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def _rows(eval_dir: EvalDir) -> pl.DataFrame:
    path = eval_dir.rows
    if not path.is_file():
        raise UserError(f"{path}: missing; compare needs the corpus rows each side used")
    return read_rows(path)


def _unique_cells(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """A results file must hold each metric cell once to be compared cell by cell."""
    try:
        _side(frame, "a")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return frame


def load_comparable(
    paths: Sequence[Path],
    reevaluate: bool = True,
    work_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[list[pl.DataFrame], list[str], list[str]]:
    """Results of each input on the same corpus rows, their labels, and notes for the user.

    Rows are compared as (id, lang) sets from rows.parquet. When they differ, each side is
    re-evaluated on the shared rows with its manifest's model and options (`reevaluate`), or
    the call refuses: with one line when no row is shared or a model is not available.
    """
    resolved = [written_diagnostics(Path(p)) for p in paths]
    notes = [note for _, _, note in resolved if note]
    labels = _unique([label for _, label, _ in resolved])
    dirs = [d for d, _, _ in resolved]
    keys = [_rows(d).select("id", "lang") for d in dirs]
    sets = [set(k.iter_rows()) for k in keys]
    frames = [_unique_cells(read_results(d.results), d.results) for d in dirs]
    if all(s == sets[0] for s in sets[1:]):
        return frames, labels, notes
    shared = set.intersection(*sets)
    sizes = ", ".join(f"{label} {len(s)}" for label, s in zip(labels, sets, strict=True))
    if not shared:
        raise UserError(f"inputs share no corpus row (id, lang): {sizes} rows; nothing to compare")
    notes.append(
        f"inputs were evaluated on different rows ({sizes}); comparing the {len(shared)} shared"
    )
    if not reevaluate:
        raise UserError(f"inputs were evaluated on different rows ({sizes}); re-run on the same")
    if work_dir is not None:
        frames = _reevaluate_all(dirs, shared, Path(work_dir), progress)
    else:  # nothing of a re-evaluation outlives the comparison: its frames are in memory
        with tempfile.TemporaryDirectory(prefix="xrdiag-compare-") as tmp:
            frames = _reevaluate_all(dirs, shared, Path(tmp), progress)
    notes.append("each side re-evaluated on the shared rows with its own model and options")
    return frames, labels, notes


def _reevaluate_all(
    dirs: Sequence[EvalDir], shared: set[tuple[str, str]], work: Path, progress: Progress | None
) -> list[pl.DataFrame]:
    """Check every side's model and corpus first, so a refusal costs no evaluation."""
    plans = [_plan(d) for d in dirs]
    return [
        _reevaluate(d, plan, shared, work / f"side-{i}", progress)
        for i, (d, plan) in enumerate(zip(dirs, plans, strict=True))
    ]


@dataclass(frozen=True)
class _Plan:
    """What re-evaluating one side needs: its model, its verified corpus texts, its options."""

    model: str
    texts: pl.DataFrame
    options: dict[str, Any]


def _plan(eval_dir: EvalDir) -> _Plan:
    """The side's model and options, and its corpus as re-read now, checked against its manifest.

    The corpus is found by the absolute path the manifest recorded (the typed, possibly
    relative, one only for manifests older than that) and must hash to the recorded
    fingerprint once the recorded filters are applied again; the model's weights must hash to
    the recorded model fingerprint. Anything else would re-evaluate other data or another
    model and report the difference as the models' (exit 2, one line, instead).
    """
    from xrdiag.core.corpus import load_corpus
    from xrdiag.core.encoding.encoder import Encoder
    from xrdiag.core.evaluate import EvalOptions

    manifest = eval_dir.read_manifest()
    model_info = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    model = model_info.get("path") or model_info.get("name")
    if not isinstance(model, str) or not (model == "default" or Path(model).exists()):
        raise UserError(
            f"{eval_dir.root}: rows differ from the other side and its model {model!r} is not "
            "available to re-evaluate on the shared rows"
        )
    known = EvalOptions.__dataclass_fields__
    raw_opts = manifest.get("options") if isinstance(manifest.get("options"), dict) else {}
    opts = {k: v for k, v in raw_opts.items() if k in known}
    for tuple_field in ("analyses", "ks", "noise_kinds"):
        if isinstance(opts.get(tuple_field), list):
            opts[tuple_field] = tuple(opts[tuple_field])
    corpus_info = manifest.get("corpus") if isinstance(manifest.get("corpus"), dict) else {}
    source = corpus_info.get("path") or corpus_info.get("source") or "default"
    recorded = corpus_info.get("fingerprint")
    try:
        corpus = load_corpus(str(source), columns=opts.get("columns")).filter(
            langs=opts.get("langs"),
            domains=opts.get("domains"),
            splits=opts.get("splits"),
            max_per_domain=opts.get("max_per_domain"),
            seed=opts.get("seed", 0),
        )
    except UserError as exc:
        raise UserError(
            f"{eval_dir.root}: cannot re-read its corpus to re-evaluate on the shared rows: {exc}"
        ) from None
    if corpus.fingerprint() != recorded:
        raise UserError(
            f"{eval_dir.root}: its corpus {source} has changed since it was evaluated "
            f"(fingerprint {str(recorded)[:12]}, now {corpus.fingerprint()[:12]}); "
            "re-run eval on both sides with the same corpus"
        )
    found = Encoder(str(model), device="cpu").fingerprint  # hashes files, runs nothing
    if model_info.get("fingerprint") not in (None, found):
        raise UserError(
            f"{eval_dir.root}: its model {model} has changed since it was evaluated "
            f"(fingerprint {str(model_info.get('fingerprint'))[:12]}, now {found[:12]}); "
            "re-run eval on both sides"
        )
    return _Plan(str(model), corpus.frame.select("id", "lang", "text"), opts)


def _reevaluate(
    eval_dir: EvalDir,
    plan: _Plan,
    shared: set[tuple[str, str]],
    out: Path,
    progress: Progress | None,
) -> pl.DataFrame:
    """run_eval of an eval dir's model and options on the shared rows only."""
    from xrdiag.core.evaluate import EvalOptions, run_eval

    rows = _rows(eval_dir)
    wanted = pl.DataFrame(sorted(shared), schema=["id", "lang"], orient="row")
    rows = rows.join(wanted, on=["id", "lang"], how="semi").drop("text", strict=False)
    rows = rows.join(plan.texts, on=["id", "lang"], how="left")
    if rows["text"].null_count():
        raise UserError(f"{eval_dir.root}: its corpus lacks texts of rows it was run on")
    out.mkdir(parents=True, exist_ok=True)
    corpus_file = out / "shared-rows.parquet"
    rows.select("id", "lang", "domain", "split", "text").write_parquet(corpus_file)
    opts = dict(plan.options)
    opts.update(langs=None, domains=None, splits=None, max_per_domain=None, columns=None)
    try:
        outcome = run_eval(
            plan.model, str(corpus_file), out / "eval", EvalOptions(**opts), progress
        )
    except UserError as exc:
        raise UserError(
            f"{eval_dir.root}: re-evaluating on the {rows.height} shared rows: {exc}"
        ) from None
    return outcome.results


# --------------------------------------------------------------------------- --fail-if

_RULE = re.compile(
    r"^\s*([A-Za-z0-9_@.|:+-]+?)\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_OPS: dict[str, Callable[[pl.Expr, float], pl.Expr]] = {
    "<": lambda e, x: e < x,
    "<=": lambda e, x: e <= x,
    ">": lambda e, x: e > x,
    ">=": lambda e, x: e >= x,
    "==": lambda e, x: e == x,
    "!=": lambda e, x: e != x,
}


@dataclass(frozen=True)
class FailRule:
    """`METRIC OP NUMBER` applied to deltas; METRIC matches a metric or its first `|` part."""

    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_fail_if(text: str) -> FailRule:
    """Parse `recall@1 < -0.02` with a regular expression (no eval): metric, operator, number."""
    match = _RULE.match(text)
    if match is None:
        raise UserError(
            f"--fail-if {text!r}: expected METRIC OP NUMBER, e.g. 'recall@1 < -0.02' "
            "(OP one of < <= > >= == !=)"
        )
    return FailRule(match.group(1), match.group(2), float(match.group(3)))


def _matches(rule: FailRule) -> pl.Expr:
    metric = pl.col("metric")
    return (metric == rule.metric) | (metric.str.split("|").list.first() == rule.metric)


def check_rules(comparison: pl.DataFrame, rules: Sequence[FailRule]) -> None:
    """A rule whose metric matches no compared cell is a user error naming the metrics there.

    A CI gate on a misspelled metric (`recal@1`) would otherwise pass forever, checking nothing.
    """
    for rule in rules:
        if not comparison.filter(_matches(rule)).height:
            names = comparison["metric"].str.split("|").list.first().unique().sort().to_list()
            raise UserError(
                f"--fail-if {rule}: no compared metric is {rule.metric!r}; the metrics here are "
                f"{', '.join(names) or 'none'} (or a full name such as recall@1|cos|none)"
            )


def failing_cells(comparison: pl.DataFrame, rule: FailRule) -> pl.DataFrame:
    """Rows of a comparison whose metric matches the rule and whose delta satisfies it."""
    trips = _OPS[rule.op](pl.col("delta"), rule.bound)
    return comparison.filter(_matches(rule) & trips.fill_null(False))
