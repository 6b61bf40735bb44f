"""`xrdiag report`: read eval, run and study directories and write report.json, tables, md, html.

Inputs are read as they are on disk: a run that is still training is reported as what exists so
far (its events and the diagnostics written up to now) and the report says so. Every view is a
rendering of the same loaded `Source` objects, so the formats never disagree.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.analyses.schema import with_pool_column
from xrdiag.core.layout import names
from xrdiag.core.layout.atomic import write_text_atomic
from xrdiag.core.layout.dirs import EvalDir, RunDir, StudyDir, classify
from xrdiag.core.layout.frames import read_optional, read_results
from xrdiag.core.layout.status import status_line
from xrdiag.errors import UserError
from xrdiag.report import run_tables, study_tables, tables
from xrdiag.report.bundle import Bundle, Source
from xrdiag.report.out_dir import check_report_dir, earlier_tables, record_tables

FORMATS = ("md", "html", "json", "csv", "parquet")
Progress = Callable[[str, int, int | None], None]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: unreadable TOML ({' '.join(str(exc).split())})") from None


def _parquet(path: Path, what: str = "a table xrdiag wrote") -> pl.DataFrame | None:
    return read_optional(path, what)


OLD_POOLS = (
    "results written before candidate pools were recorded (pool unknown): their per-domain "
    "recall ranked each domain's queries among that domain's rows only, so domains with fewer "
    "sentences look easier; re-evaluate for per-domain figures on one common pool"
)


def _results(frame: pl.DataFrame, src: Source, old: bool = False) -> pl.DataFrame:
    """Results as the views expect them; older ones get an empty `pool` and a note."""
    frame, missing = with_pool_column(frame)
    old = old or missing
    retrieval = frame.height and frame.filter(pl.col("analysis") == "retrieval").height
    if old and retrieval and OLD_POOLS not in src.notes:
        src.notes.append(OLD_POOLS)
    return frame


def load_eval(path: Path, label: str | None = None) -> Source:
    """An eval dir: results.parquet, manifest.json, projection.parquet if written."""
    found = EvalDir(path)
    src = Source(
        path=path,
        kind="eval",
        label=label or path.name,
        results=read_results(found.results),
        manifest=_read_json(found.manifest),
        projection=_parquet(found.projection),
    )
    src.results = _results(src.results, src)
    return src


def load_run(path: Path) -> Source:
    """A run dir: run.toml, events.jsonl, and every diagnostics/step-N eval dir so far."""
    from xrdiag.core.events import read_events

    run = RunDir(path)
    events = read_events(run.events_file) if run.events_file.is_file() else []
    status, finished = status_line(events)
    diags = run.evaluated()
    raw = [read_results(d.results) for d in diags]
    old = any("pool" not in frame.columns for frame in raw)
    frames = [
        with_pool_column(frame)[0].with_columns(pl.lit(d.root.name).alias("checkpoint"))
        for frame, d in zip(raw, diags, strict=True)
    ]
    results = pl.concat(frames) if frames else _empty()
    src = Source(
        path=path,
        kind="run",
        label=path.name,
        results=results,
        events=events,
        config=_read_toml(run.run_file),
        status=status,
        finished=finished,
    )
    src.results = _results(src.results, src, old)
    if diags:
        src.manifest = _read_json(diags[-1].manifest)
        src.projection = _parquet(diags[-1].projection)
    else:
        src.notes.append("no diagnostics written yet: training curves only")
    if not finished:
        src.notes.append(f"this run has not finished ({status}); reported as it is so far")
    return src


def load_study(path: Path) -> Source:
    """A study dir: study.toml, summary/figures/comparison parquet, the base model's eval."""
    study = StudyDir(path)
    config = _read_toml(study.config_file)
    summary_file = study.file(names.SUMMARY)
    summary = read_results(summary_file) if summary_file.is_file() else None
    cells = study.cell_dirs()
    done = [c for c in cells if (c / names.DONE).is_file()]
    src = Source(path=path, kind="study", label=path.name, config=config,
                 results=summary if summary is not None else _empty(),
                 figures=_parquet(study.file(names.FIGURES)),
                 comparison=_parquet(study.file(names.COMPARISON)))  # fmt: skip
    src.results = _results(src.results, src)
    src.finished = summary is not None and len(done) == len(cells)
    src.status = f"{len(done)} of {len(cells)} cells done"
    if not src.finished:
        src.notes.append(f"this study is not complete ({src.status}); reported as it is so far")
    if study.base.projection.is_file():
        src.projection = _parquet(study.base.projection)
    if study.base.manifest.is_file():
        src.manifest = _read_json(study.base.manifest)
    return src


def _empty() -> pl.DataFrame:
    from xrdiag.analyses.schema import empty_results

    return empty_results()


def check_inputs(paths: Sequence[Path]) -> list[str]:
    """The kind of each input; anything not an eval, run or study dir is a one-line user error."""
    if not paths:
        raise UserError("report: expected at least one input directory")
    kinds = []
    for path in paths:
        kind = classify(Path(path))
        if kind is None:
            raise UserError(
                f"{path}: not an eval dir (manifest.json + results.parquet), a run dir "
                "(run.toml) or a study dir (study.toml)"
            )
        kinds.append(kind)
    return kinds


def load_source(path: Path) -> Source:
    """Read an eval, run or study dir; anything else is a one-line user error."""
    kind = check_inputs([path])[0]
    loaders = {"eval": load_eval, "run": load_run, "study": load_study}
    return loaders[kind](Path(path))


# --------------------------------------------------------------------------- pivots


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def pivots(src: Source) -> dict[str, pl.DataFrame]:
    """Every wide table of one source, by file stem (the md and html show the same tables)."""
    out: dict[str, pl.DataFrame] = {}
    groups: dict[str, pl.DataFrame] = {"": src.headline_results()}
    if src.kind == "study" and "variant" in src.results.columns:
        groups = {
            f"{v}": tables.seed_mean(src.results.filter(pl.col("variant") == v))
            for v in src.results["variant"].unique(maintain_order=True).to_list()
        }
    for name, res in groups.items():
        tag = f"__{_slug(name)}" if name else ""
        out[f"recall_lang_domain{tag}"] = tables.recall_lang_domain(res)
        out[f"retrieval_sizes{tag}"] = tables.retrieval_sizes(res)
        for layer in tables.cka_layers(res):
            out[f"cka_lang_lang_layer{layer}{tag}"] = tables.cka_lang_lang(res, layer)
        out[f"probe_by_layer{tag}"] = tables.probe_by_layer(res)
        out[f"cka_by_layer{tag}"] = tables.cka_by_layer(res)
        for analysis in tables.other_analyses(res):
            out[f"analysis_{analysis}{tag}"] = tables.analysis_table(res, analysis)
    if src.events:
        out["training_steps"] = run_tables.step_table(src.events)
        out["training_evals"] = run_tables.eval_table(src.events)
    if src.figures is not None:
        out["variants"] = study_tables.variant_table(src.figures, src.comparison)
    return {k: v for k, v in out.items() if v.height}


def combined_results(sources: Sequence[Source]) -> pl.DataFrame:
    """Every source's rows with `source`, `variant` (String) and `seed` (Int64) columns."""
    frames = []
    for src in sources:
        frame = src.results
        for col, dtype in (("variant", pl.String), ("seed", pl.Int64)):
            if col not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype).alias(col))
        frames.append(
            frame.with_columns(pl.lit(src.label).alias("source"), pl.col("seed").cast(pl.Int64))
        )
    return pl.concat(frames, how="diagonal_relaxed") if frames else _empty()


def _table(doc: Any, key: str) -> dict[str, Any]:
    """`doc[key]` when it is a table/object, else empty: a hand-edited file of another shape
    (`meta = 3`) loses that record, not the report."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


def _seeds(values: Any) -> list[int]:
    items = values if isinstance(values, list | tuple | set) else [values]
    return sorted({v for v in items if isinstance(v, int) and not isinstance(v, bool)})


def input_record(src: Source) -> dict[str, Any]:
    """What report.json says of an input: kind, status, fingerprints, seeds, versions."""
    man = src.manifest or {}
    meta = _table(src.config, "meta")
    seeds = _seeds([man.get("seed"), meta.get("seed")])
    if src.kind == "study":
        seeds = _seeds(_table(src.config, "study").get("seeds", seeds))
    return {
        "path": str(src.path),
        "kind": src.kind,
        "label": src.label,
        "status": src.status,
        "finished": src.finished,
        "notes": src.notes,
        "model_fingerprint": _table(man, "model").get("fingerprint"),
        "corpus_fingerprint": _table(man, "corpus").get("fingerprint")
        or meta.get("corpus_fingerprint"),
        "rows_sha256": _table(man, "rows").get("sha256_of_id_lang"),
        "seeds": seeds,
        "versions": man.get("versions") or meta.get("versions"),
        "git": meta.get("git"),
        "device": _table(man, "options").get("device"),
        "checkpoints": src.results["checkpoint"].unique(maintain_order=True).to_list(),
    }


# --------------------------------------------------------------------------- writing


def write_report(
    inputs: Sequence[Path],
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    progress: Progress | None = None,
    comparison: pl.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Load the inputs and write each requested format; returns {format: path written}.

    `comparison` (a `compare_results` frame) adds the side-by-side section; `notes` are shown
    at the top of the md and html (e.g. "compared on the shared rows only").
    """
    report: Progress = progress or (lambda name, done, total: None)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--format {','.join(formats)}: expected a comma list of {FORMATS}")
    check_inputs(inputs)
    check_report_dir(out_dir)  # before anything is read or written
    earlier = earlier_tables(out_dir / "tables")
    sources = []
    for k, path in enumerate(inputs):
        report("reading inputs", k, len(inputs))
        sources.append(load_source(Path(path)))
    report("reading inputs", len(inputs), len(inputs))
    _unique_labels(sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    notes = [*notes, *(f"{s.label}: {n}" for s in sources for n in s.notes)]
    bundle = Bundle(sources, {s.label: pivots(s) for s in sources}, combined_results(sources),
                    comparison, notes, out_dir, earlier)  # fmt: skip
    steps = [f for f in FORMATS if f in formats]
    for k, fmt in enumerate(steps):
        report(f"writing {fmt}", k, len(steps))
        written[fmt] = _WRITERS[fmt](bundle)
    report("writing done", len(steps), len(steps))
    return written


def _unique_labels(sources: list[Source]) -> None:
    seen: dict[str, int] = {}
    for src in sources:
        seen[src.label] = seen.get(src.label, 0) + 1
        if seen[src.label] > 1:
            src.label = f"{src.label}#{seen[src.label]}"


def _write_tables(b: Bundle, ext: str) -> Path:
    folder = b.out_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    frames = {"results": b.results}
    if b.comparison is not None:
        frames["comparison"] = b.comparison
    multi = len(b.sources) > 1
    for label, piv in b.pivots.items():
        for name, frame in piv.items():
            frames[f"{name}__{_slug(label)}" if multi else name] = frame
    for name, frame in frames.items():
        target = folder / f"{name}.{ext}"
        tmp = folder / f".{name}.{os.getpid()}.tmp"  # a reader never sees half a table
        if ext == "parquet":
            frame.write_parquet(tmp)
        else:
            frame.write_csv(tmp)
        os.replace(tmp, target)
    # Tables of an earlier report into the same folder that this one did not write would
    # otherwise pass for part of it (other inputs, other layers); only files an earlier
    # report listed go, never a user's own file that happens to sit in tables/.
    written = {f"{name}.{ext}" for name in frames}
    for stale in b.earlier_tables - written:
        if stale.endswith(f".{ext}") and "/" not in stale:
            (folder / stale).unlink(missing_ok=True)
    record_tables(folder, written | b.earlier_tables)
    return folder / f"results.{ext}"


def _write_json(b: Bundle) -> Path:
    from xrdiag.report.record import build_record, write_record

    inputs = [input_record(s) for s in b.sources]
    devices = sorted({str(i["device"]) for i in inputs if i["device"]})
    extra: dict[str, pl.DataFrame] = {}
    for src in b.sources:  # a study's figures and tests, a run's curves: records too
        for name, frame in (("figures", src.figures), ("study_comparison", src.comparison)):
            if frame is not None:
                extra[f"{name}:{src.label}"] = frame
        for name in ("training_steps", "training_evals"):
            if name in b.pivots.get(src.label, {}):
                extra[f"{name}:{src.label}"] = b.pivots[src.label][name]
    record = build_record(inputs, b.results, b.comparison, extra, device=",".join(devices) or None)
    record["notes"] = b.notes
    return write_record(record, b.out_dir / "report.json")


def _write_md(b: Bundle) -> Path:
    from xrdiag.report.markdown import render_markdown

    path = b.out_dir / "report.md"
    write_text_atomic(path, render_markdown(b))
    return path


def _write_html(b: Bundle) -> Path:
    from xrdiag.report.html import render_html

    path = b.out_dir / "report.html"
    write_text_atomic(path, render_html(b))
    return path


_WRITERS: dict[str, Callable[[Bundle], Path]] = {
    "json": _write_json,
    "csv": lambda b: _write_tables(b, "csv"),
    "parquet": lambda b: _write_tables(b, "parquet"),
    "md": _write_md,
    "html": _write_html,
}
