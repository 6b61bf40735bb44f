"""What lies under a runs directory: every run, evaluation and study, with its status at a glance.

The Runs screen lists these rows; building them must stay cheap with many long runs, so a run's
`events.jsonl` is read from its end (only as far back as the last evaluation and the last
start/resume event) plus its first line. A run without a terminal event is "running" only while
the process named by its last start/resume event is alive on this host (`os.kill(pid, 0)`);
otherwise it crashed and shows as "failed".
"""

from __future__ import annotations

import json
import os
import socket
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrdiag.core.discover import classify
from xrdiag.core.events import EVENTS_FILE

TERMINAL = {"end": "finished", "interrupted": "interrupted", "stopped": "interrupted",
            "nonfinite": "failed"}  # fmt: skip
TAIL_BLOCK = 1 << 16
TAIL_MAX = 1 << 24  # never read more than 16 MiB of a huge stream
MAX_DEPTH = 4
KEY_METRIC = "recall@1|cos|none"
# A run on another host cannot be probed: it counts as running while it wrote recently.
REMOTE_FRESH_S = 600.0


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


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this host (signal 0 probes, sends nothing)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _lines(data: bytes) -> Iterator[dict[str, Any]]:
    for raw in data.split(b"\n"):
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # a torn line (being written, or cut by a crash)
        if isinstance(event, dict):
            yield event


def tail_events(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The first event and the last events of a stream, back to its last eval and start/resume.

    Reads blocks from the end of the file until both are found (or the whole file is read), so a
    long run costs a few kilobytes, not its whole history.
    """
    try:
        fh = path.open("rb")
    except OSError:
        return None, []
    with fh:
        first = next(_lines(fh.readline()), None)
        size = fh.seek(0, os.SEEK_END)
        start, data = size, b""
        while start > 0 and size - start < TAIL_MAX:
            start = max(0, start - TAIL_BLOCK)
            fh.seek(start)
            data = fh.read(size - start)
            cut = data.find(b"\n") + 1 if start > 0 else 0
            events = list(_lines(data[cut:]))
            kinds = {e.get("kind") for e in events}
            if "eval" in kinds and kinds & {"start", "resume"}:
                return first, events
        cut = data.find(b"\n") + 1 if start > 0 else 0
        return first, list(_lines(data[cut:]))


def method_label(config: dict[str, Any]) -> str:
    """A run's method in a few letters, from its config: e.g. `dann+hybrid`, `pgd`, `rs-rp`."""
    parts = []
    robust = config.get("robust", {})
    if robust.get("rs_rp", {}).get("enabled"):
        parts.append("rs-rp")
    if robust.get("rs_da", {}).get("enabled"):
        parts.append("rs-da")
    adversarial = robust.get("adversarial", {})
    if adversarial.get("enabled"):
        parts.append(str(adversarial.get("method", "adv")))
    if config.get("dann", {}).get("enabled"):
        parts.append("dann")
    batches = config.get("batches", {})
    if any(0 < float(batches.get(k, 1.0)) < 1 for k in ("alpha", "beta")):
        parts.append("hybrid")
    if not parts:
        kind = config.get("objective", {}).get("kind", "contrastive")
        parts.append(str(kind))
    return "+".join(parts)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def run_status(events: list[dict[str, Any]], now: float, host: str | None = None) -> str:
    """Status from the last event's kind; without a terminal event, from the writer's pid."""
    if not events:
        return "pending"
    last = events[-1].get("kind")
    if last in TERMINAL:
        return TERMINAL[str(last)]
    opened = [e for e in events if e.get("kind") in ("start", "resume")]
    if not opened:
        return "failed"
    writer = opened[-1]
    here = host or socket.gethostname()
    if writer.get("host") not in (None, here):
        fresh = now - float(events[-1].get("time", 0)) < REMOTE_FRESH_S
        return "running" if fresh else "failed"
    return "running" if pid_alive(writer.get("pid")) else "failed"


def run_entry(path: Path, name: str, now: float, group: str = "", kind: str = "run") -> RunEntry:
    """A run directory's row: method from run.toml, the rest from the tail of its events."""
    config = read_toml(path / "run.toml")
    first, events = tail_events(path / EVENTS_FILE)
    status = run_status(events, now)
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
                & (pl.col("metric") == KEY_METRIC)
                & (pl.col("domain") == "all")
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
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
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
        metric=eval_metric(path / "results.parquet"),
        group=name,
    )


def study_metric(study: Path) -> float | None:
    """The baseline variant's overall recall@1 from figures.parquet (written by the study)."""
    import tomllib

    import polars as pl

    try:
        baseline = tomllib.loads((study / "study.toml").read_text("utf-8"))["study"]["baseline"]
        frame = (
            pl.scan_parquet(study / "figures.parquet")
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
    cells_dir = path / "cells"
    if cells_dir.is_dir():
        for variant in sorted(p for p in cells_dir.iterdir() if p.is_dir()):
            for seed in sorted(p for p in variant.iterdir() if p.is_dir()):
                if classify(seed) == "run":
                    label = f"{name}/{variant.name}/{seed.name}"
                    cells.append(run_entry(seed, label, now, group=name, kind="cell"))
    done = sum((c.path / "DONE").is_file() for c in cells)
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
