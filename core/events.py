"""The event stream of a run: append-only JSON lines, flushed as written, read tolerantly.

A training run writes one JSON object per step or evaluation to `events.jsonl`; the TUI and the
report tail the same file while the run goes on (DESIGN.md, "Runs"). A crash can leave a torn
last line: readers skip it, and a writer reopening the file (a resumed run) cuts it off first
so the next event starts on a line of its own.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from xrdiag.core.layout.names import EVENTS_FILE
from xrdiag.errors import UserError

__all__ = [
    "EVENTS_FILE",
    "EventTail",
    "EventWriter",
    "encode_event",
    "latest_per_step",
    "read_events",
    "tail_events",
]
# Kinds with one event per step in a run that never went back.
PER_STEP = ("step", "eval")
# Reading a stream from its end: blocks of this size, never more than TAIL_MAX bytes in all.
TAIL_BLOCK = 1 << 16
TAIL_MAX = 1 << 24


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become the strings "nan", "inf", "-inf".

    Standard JSON has no NaN; a reader in another language (or `jq`) must still parse the line.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _finite(value.item())
    return value


def encode_event(event: Mapping[str, Any]) -> str:
    """One event as one line of strict JSON (no NaN literals, no embedded newline)."""
    return json.dumps(_finite(event), ensure_ascii=False, allow_nan=False, sort_keys=False)


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file after its last newline, dropping a partial line a crash left behind."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            chunk = fh.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                return
            end = start
        fh.truncate(0)


class EventWriter:
    """Appends events to a JSONL file, one line each, flushed (and fsynced) after every write.

    Each event gets `kind` and a wall-clock `time` (seconds since the epoch) unless it has them.
    """

    def __init__(self, path: Path | str, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._fsync = fsync

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event of `kind` with `fields`; return the event as written."""
        if self._fh is None:
            raise ValueError(f"{self.path}: event writer is closed")
        event = {"kind": kind, "time": round(time.time(), 3), **fields}
        self._fh.write(encode_event(event) + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        return event

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def latest_per_step(
    events: list[dict[str, Any]], kinds: tuple[str, ...] = PER_STEP
) -> list[dict[str, Any]]:
    """The events without those a resumed run redid: the last event per step, per kind.

    A run killed after step 5 and resumed from its step-2 checkpoint writes steps 3, 4, 5 again;
    the first, lost, attempts stay in the file. An event of one of `kinds` is kept only when no
    later event of its kind has the same or an earlier step (a resume restarts below the
    steps it supersedes). Other kinds, and events without an integer step, are kept as they are.
    """
    keep = [True] * len(events)
    floor: dict[str, float] = {}
    for i in range(len(events) - 1, -1, -1):
        event = events[i]
        kind, step = event.get("kind"), event.get("step")
        if kind not in kinds or isinstance(step, bool) or not isinstance(step, int):
            continue
        if step >= floor.get(str(kind), float("inf")):
            keep[i] = False
        else:
            floor[str(kind)] = step
    return [e for e, k in zip(events, keep, strict=True) if k]


def _parse_lines(data: bytes, path: Path, first_line: int) -> Iterator[dict[str, Any]]:
    """Events from complete lines; a line that is not a JSON object is a user-visible error."""
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UserError(
                f"{path}, line {number}: not a JSON object; expected one event per line"
            ) from None
        if not isinstance(event, dict):
            raise UserError(f"{path}, line {number}: expected a JSON object per line")
        yield event


def read_events(
    path: Path | str, kinds: str | tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """Every complete event of a file, in order; a torn last line (no newline yet) is skipped.

    A run that is still writing, or that crashed mid-line, leaves a last line without its
    newline: it is not an event yet. `kinds` keeps only events of those kinds.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such events file") from None
    events, _ = _complete(data, path, 1)
    if kinds is not None:
        wanted = (kinds,) if isinstance(kinds, str) else kinds
        events = [e for e in events if e.get("kind") in wanted]
    return events


def _complete(data: bytes, path: Path, first_line: int) -> tuple[list[dict[str, Any]], int]:
    """Events of the complete lines in `data` and the byte count they span."""
    end = data.rfind(b"\n") + 1
    return list(_parse_lines(data[:end], path, first_line)), end


class EventTail:
    """Incremental reader for a file that is still growing: each `poll()` returns new events.

    It remembers the byte offset after the last complete line, so a line being written is
    picked up whole on a later poll, never half. A strict tail raises UserError on a complete
    line that is not a JSON object; a `tolerant` one skips it and keeps the first such error
    in `error` (a viewer shows the good events and says what it skipped).
    """

    def __init__(self, path: Path | str, tolerant: bool = False) -> None:
        self.path = Path(path)
        self.tolerant = tolerant
        self.error: str | None = None
        self._offset = 0
        self._line = 1

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if self.tolerant:
            events = []
            for number, raw in enumerate(data[:end].split(b"\n"), start=self._line):
                try:
                    events += list(_parse_lines(raw, self.path, number))
                except UserError as exc:
                    self.error = self.error or str(exc)
        else:
            events = list(_parse_lines(data[:end], self.path, self._line))
        self._line += data[:end].count(b"\n")
        self._offset += end
        return events


def _tolerant_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects among `data`'s lines; torn or corrupt lines are skipped."""
    for raw in data.split(b"\n"):
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(event, dict):
            yield event


def tail_events(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The first event and the last events of a stream, back to its last eval and start/resume.

    Reads blocks from the end of the file until both are found (or the whole file is read), so
    a long run costs a few kilobytes, not its whole history. Unparsable lines are skipped: a
    status at a glance must not fail on one bad line.
    """
    try:
        fh = path.open("rb")
    except OSError:
        return None, []
    with fh:
        first = next(_tolerant_lines(fh.readline()), None)
        size = fh.seek(0, os.SEEK_END)
        start, data = size, b""
        while start > 0 and size - start < TAIL_MAX:
            start = max(0, start - TAIL_BLOCK)
            fh.seek(start)
            data = fh.read(size - start)
            cut = data.find(b"\n") + 1 if start > 0 else 0
            events = list(_tolerant_lines(data[cut:]))
            kinds = {e.get("kind") for e in events}
            if "eval" in kinds and kinds & {"start", "resume"}:
                return first, events
        cut = data.find(b"\n") + 1 if start > 0 else 0
        return first, list(_tolerant_lines(data[cut:]))
