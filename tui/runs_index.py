"""What lies under a runs directory: every run, evaluation and study, with its status at a glance.

The Runs screen lists these rows; building them must stay cheap with many long runs, so a run's
`events.jsonl` is read from its end (`core.events.tail_events`) plus its first line, and its
status comes from `core.layout.status`, the one vocabulary the report uses too.

One broken directory never hides the others: a run whose run.toml does not parse or has an
unexpected shape (`dann = 3` where a table belongs), or anything else that cannot be read,
becomes an "invalid: <reason>" row. `iter_runs` yields rows as it finds them, so the screen
can show a large tree while it is still being walked.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from xrdiag.analyses.schema import ALL_DOMAINS, PRIMARY_RECALL
from xrdiag.core.events import tail_events
from xrdiag.core.layout import names
from xrdiag.core.layout.dirs import EvalDir, RunDir, StudyDir, classify, done_marker
from xrdiag.core.layout.lock import lock_holder
from xrdiag.core.layout.status import run_state
from xrdiag.core.study.cells import cell_state
from xrdiag.core.training.describe import method_label
from xrdiag.errors import library_failure

INVALID = "invalid"

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
    holder: str | None = None  # the process holding the run's lock, when one does


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


@cache
def _sections() -> dict[str, Any]:
    """The nested tables of a training config, as a tree of section names (from its schema)."""
    from xrdiag.core.training.config_schema import TrainConfig

    def tree(obj: Any) -> dict[str, Any]:
        return {f.name: tree(getattr(obj, f.name)) for f in fields(obj)
                if is_dataclass(getattr(obj, f.name))}  # fmt: skip

    return {**tree(TrainConfig()), "meta": {}}


def shape_problem(doc: Mapping[str, Any], where: str = "") -> str | None:
    """Where a run.toml document has a value in place of one of the config's tables, or None."""

    def walk(node: Mapping[str, Any], tables: dict[str, Any], prefix: str) -> str | None:
        for name, sub in tables.items():
            if name not in node:
                continue
            value = node[name]
            if not isinstance(value, Mapping):
                return f"[{prefix}{name}] is {type(value).__name__} {value!r:.40}, expected a table"
            found = walk(value, sub, f"{prefix}{name}.")
            if found:
                return found
        return None

    return walk(doc, _sections(), where)


def read_run_toml(path: Path) -> dict[str, Any]:
    """A run.toml document; unreadable, unparsable or of the wrong shape raises ValueError."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: unreadable ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path.name}: not TOML ({exc})") from None
    problem = shape_problem(doc)
    if problem:
        raise ValueError(f"{path.name}: {problem}")
    return doc


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; empty when it cannot be read (a list never fails on one file)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def run_entry(path: Path, name: str, now: float, group: str = "", kind: str = "run") -> RunEntry:
    """A run directory's row: method from run.toml, the rest from the tail of its events."""
    run = RunDir(path)
    config = read_run_toml(run.run_file)
    first, events = tail_events(run.events_file)
    status = run_state(events, now)
    steps = [e["step"] for e in events if _int(e.get("step")) is not None]
    evals = [e for e in events if e.get("kind") == "eval"]
    opened = [e for e in events if e.get("kind") in ("start", "resume")]
    max_steps = next((_int(e.get("max_steps")) for e in events if e.get("kind") == "start"), None)
    if max_steps is None:
        max_steps = _int(config.get("optim", {}).get("max_steps"))
    metric = None
    if evals:
        recall = evals[-1].get("recall@1")
        metric = recall.get("mean") if isinstance(recall, dict) else None
    elapsed = None
    start = _number(first.get("time")) if first is not None else None
    if start is not None and events:
        last = _number(events[-1].get("time"))
        end = now if status == "running" else (last if last is not None else start)
        elapsed = max(0.0, end - start)
    holder = lock_holder(path)
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
        pid=_int(opened[-1].get("pid")) if opened else None,
        holder=holder.describe() if holder is not None else None,
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
    except BaseException as exc:  # noqa: BLE001 - a broken file shows as "no metric", never crashes
        if not library_failure(exc):
            raise
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
    timings = manifest.get("timings_s") if isinstance(manifest, dict) else None
    total = timings.get("total") if isinstance(timings, dict) else None
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
    except BaseException as exc:  # noqa: BLE001 - an unfinished or broken study shows "no metric"
        if not library_failure(exc):
            raise
        return None
    return float(frame["value"][0]) if frame.height else None


def invalid_entry(path: Path, name: str, kind: str, reason: str, group: str = "") -> RunEntry:
    """The row of a directory that could not be read: it stays listed, with the reason."""
    return RunEntry(
        path=path,
        kind=kind,
        name=name,
        method=f"{INVALID}: {reason}"[:120],
        status=INVALID,
        group=group or name,
    )


def _guarded(path: Path, name: str, kind: str, build: Any, group: str = "") -> RunEntry:
    """`build()`, or the invalid row saying why it failed."""
    try:
        return build()
    except BaseException as exc:  # noqa: BLE001 - one broken directory must not hide the others
        if not library_failure(exc):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return invalid_entry(path, name, kind, reason, group)


def cell_entry(path: Path, name: str, now: float, group: str) -> RunEntry:
    """A study cell's row: its run's, with the cell's status. A cell is more than its training:
    running while a process holds it (its evaluation included), finished only with DONE
    (core/study/cells.py)."""
    entry = run_entry(path, name, now, group=group, kind="cell")
    return replace(entry, status=cell_state(path, now).status)


def study_entries(path: Path, name: str, now: float) -> list[RunEntry]:
    """A study's row (cells done / cells) followed by one row per cell run."""
    cells = []
    for seed in StudyDir(path).cell_dirs():
        if classify(seed) == "run":
            label = f"{name}/{seed.parent.name}/{seed.name}"
            cells.append(
                _guarded(
                    seed,
                    label,
                    "cell",
                    lambda s=seed, n=label: cell_entry(s, n, now, group=name),
                    group=name,
                )  # fmt: skip
            )
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
    """(directory, kind) for every classified directory; no descent into one once found.

    `os.scandir` tells directories apart without a stat per entry, which matters in a tree of
    tens of thousands of files.
    """
    try:
        with os.scandir(root) as found:
            children = sorted(
                Path(e.path) for e in found if not e.name.startswith(".") and _is_dir(e)
            )
    except OSError:
        return
    for child in children:
        kind = classify(child)
        if kind is not None:
            yield child, kind
        elif depth > 1:
            yield from _walk(child, depth - 1)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def iter_runs(runs_dir: Path, now: float | None = None) -> Iterator[RunEntry]:
    """Every run, eval and study (with its cells) under `runs_dir`, as found, named relative."""
    now = time.time() if now is None else now
    if not runs_dir.is_dir():
        return
    for path, kind in _walk(runs_dir, MAX_DEPTH):
        name = path.relative_to(runs_dir).as_posix()
        if kind == "run":
            yield _guarded(path, name, "run", lambda p=path, n=name: run_entry(p, n, now))
        elif kind == "eval":
            yield _guarded(path, name, "eval", lambda p=path, n=name: eval_entry(p, n))
        else:
            try:
                yield from study_entries(path, name, now)
            except BaseException as exc:  # noqa: BLE001 - see _guarded
                if not library_failure(exc):
                    raise
                yield invalid_entry(path, name, "study", " ".join(str(exc).split()))


def scan_runs(runs_dir: Path, now: float | None = None) -> list[RunEntry]:
    """Every row `iter_runs` finds, in one list."""
    return list(iter_runs(runs_dir, now))


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
