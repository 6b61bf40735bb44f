"""What lies under a runs directory: every run, evaluation and study, with its status at a glance.

The Runs screen lists these rows; building them must stay cheap with many long runs, so a run's
`events.jsonl` is read from its end (`core.events.tail_events`) plus its first line, and its
status comes from `core.layout.status`, the one vocabulary the report uses too.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xrdiag.analyses.schema import ALL_DOMAINS, PRIMARY_RECALL
from xrdiag.core.events import tail_events
from xrdiag.core.layout import names
from xrdiag.core.layout.dirs import EvalDir, RunDir, StudyDir, classify, done_marker
from xrdiag.core.layout.status import run_state
from xrdiag.core.study.cells import cell_state
from xrdiag.core.training.describe import method_label

MAX_DEPTH = 4


@dataclass(frozen=True)
class RunEntry:
    """One row of the Runs screen."""

    path: Path
    kind: str  # "run", "eval", "study", or "cell" (a study's run)
    name: str
    method: str
    status: str  # running, finished, failed, interrupted, pending
    step: int | None = None
    max_steps: int | None = None
    elapsed: float | None = None
    metric: float | None = None
    group: str = ""  # the study a cell belongs to, else the entry's own name
    pid: int | None = None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; empty when it cannot be read (a list never fails on one file)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def run_entry(path: Path, name: str, now: float, group: str = "", kind: str = "run") -> RunEntry:
    """A run directory's row: method from run.toml, the rest from the tail of its events."""
    run = RunDir(path)
    config = read_toml(run.run_file)
    first, events = tail_events(run.events_file)
    status = run_state(events, now)
    steps = [e["step"] for e in events if isinstance(e.get("step"), int)]
    evals = [e for e in events if e.get("kind") == "eval"]
    opened = [e for e in events if e.get("kind") in ("start", "resume")]
    max_steps = next((e.get("max_steps") for e in events if e.get("kind") == "start"), None)
    if max_steps is None:
        max_steps = config.get("optim", {}).get("max_steps")
    metric = None
    if evals:
        recall = evals[-1].get("recall@1")
        metric = recall.get("mean") if isinstance(recall, dict) else None
    elapsed = None
    if first is not None and "time" in first and events:
        end = now if status == "running" else float(events[-1].get("time", first["time"]))
        elapsed = max(0.0, end - float(first["time"]))
    return RunEntry(
        path=path,
        kind=kind,
        name=name,
        method=method_label(config),
        status=status,
        step=steps[-1] if steps else None,
        max_steps=max_steps,
        elapsed=elapsed,
        metric=metric if isinstance(metric, int | float) else None,
        group=group or name,
        pid=opened[-1].get("pid") if opened else None,
    )


def eval_metric(results: Path) -> float | None:
    """Mean cross-language recall@1 (cosine, no correction, all domains, top layer)."""
    import polars as pl

    try:
        frame = (
            pl.scan_parquet(results)
            .filter(
                (pl.col("analysis") == "retrieval")
                & (pl.col("metric") == PRIMARY_RECALL)
                & (pl.col("domain") == ALL_DOMAINS)
                & (pl.col("src_lang") != pl.col("tgt_lang"))
            )
            .select("layer", "value")
            .collect()
        )
    except Exception:  # noqa: BLE001 - a broken file shows as "no metric", never crashes
        return None
    if frame.is_empty():
        return None
    top = frame.filter(pl.col("layer") == frame["layer"].max())
    value = top["value"].mean()
    return float(value) if isinstance(value, int | float) else None


def eval_entry(path: Path, name: str) -> RunEntry:
    """An evaluation directory's row: the model evaluated and its mean recall@1."""
    found = EvalDir(path)
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads(found.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    total = manifest.get("timings_s", {}).get("total") if isinstance(manifest, dict) else None
    return RunEntry(
        path=path,
        kind="eval",
        name=name,
        method="eval",
        status="finished",
        elapsed=float(total) if isinstance(total, int | float) else None,
        metric=eval_metric(found.results),
        group=name,
    )


def study_metric(study: Path) -> float | None:
    """The baseline variant's overall recall@1 from figures.parquet (written by the study)."""
    import polars as pl

    study_dir = StudyDir(study)
    try:
        baseline = tomllib.loads(study_dir.config_file.read_text("utf-8"))["study"]["baseline"]
        frame = (
            pl.scan_parquet(study_dir.file(names.FIGURES))
            .filter(
                (pl.col("variant") == baseline)
                & (pl.col("figure") == "recall@1")
                & (pl.col("lang") == "all")
                & (pl.col("domain") == "all")
            )
            .select("value")
            .collect()
        )
    except Exception:  # noqa: BLE001 - an unfinished or broken study shows "no metric"
        return None
    return float(frame["value"][0]) if frame.height else None


def study_entries(path: Path, name: str, now: float) -> list[RunEntry]:
    """A study's row (cells done / cells) followed by one row per cell run."""
    cells = []
    for seed in StudyDir(path).cell_dirs():
        if classify(seed) == "run":
            label = f"{name}/{seed.parent.name}/{seed.name}"
            entry = run_entry(seed, label, now, group=name, kind="cell")
            # A cell is more than its training: running while a process holds it (evaluating
            # included), finished only with DONE (core/study/cells.py).
            cells.append(replace(entry, status=cell_state(seed, now).status))
    done = sum(done_marker(c.path) is not None for c in cells)
    if cells and done == len(cells):
        status = "finished"
    elif any(c.status == "running" for c in cells):
        status = "running"
    else:
        status = "interrupted" if cells else "pending"
    variants = sorted({c.path.parent.name for c in cells})
    row = RunEntry(
        path=path,
        kind="study",
        name=name,
        method=f"study: {len(variants)} variants",
        status=status,
        step=done,
        max_steps=len(cells),
        metric=study_metric(path),
        group=name,
    )
    return [row, *cells]


def _walk(root: Path, depth: int) -> Iterator[tuple[Path, str]]:
    """(directory, kind) for every classified directory; no descent into one once found."""
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        kind = classify(child)
        if kind is not None:
            yield child, kind
        elif depth > 1:
            yield from _walk(child, depth - 1)


def scan_runs(runs_dir: Path, now: float | None = None) -> list[RunEntry]:
    """Every run, eval and study (with its cells) under `runs_dir`, named relative to it."""
    now = time.time() if now is None else now
    entries: list[RunEntry] = []
    if not runs_dir.is_dir():
        return entries
    for path, kind in _walk(runs_dir, MAX_DEPTH):
        name = path.relative_to(runs_dir).as_posix()
        if kind == "run":
            entries.append(run_entry(path, name, now))
        elif kind == "eval":
            entries.append(eval_entry(path, name))
        else:
            entries.extend(study_entries(path, name, now))
    return entries


def format_elapsed(seconds: float | None) -> str:
    """`42s`, `3m05s`, `2h07m`: short and sortable by eye."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
