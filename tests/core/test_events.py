"""events.jsonl: append-only lines, flushed, strict JSON, and tolerant of a torn last line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from xrdiag.core.events import EventTail, EventWriter, encode_event, read_events
from xrdiag.errors import UserError


def test_write_and_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        for step in range(5):
            w.write("step", step=step, loss=1.0 / (step + 1), comp={"en-fr": 3})
        w.write("eval", step=4, recall=0.5)
    events = read_events(path)
    assert [e["kind"] for e in events] == ["step"] * 5 + ["eval"]
    assert [e["step"] for e in events] == [0, 1, 2, 3, 4, 4]
    assert events[2]["loss"] == pytest.approx(1 / 3)
    assert events[0]["comp"] == {"en-fr": 3}
    assert all(isinstance(e["time"], float) for e in events)
    assert read_events(path, kinds="eval") == events[-1:]
    # every line is strict JSON on its own
    for line in path.read_text().splitlines():
        json.loads(line)


def test_flushed_before_close(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    w = EventWriter(path)
    w.write("step", step=1)
    assert read_events(path)[0]["step"] == 1  # visible to a reader while the writer is open
    w.close()


def test_non_finite_values_become_strings(tmp_path: Path) -> None:
    line = encode_event({"loss": math.nan, "g": [math.inf, -math.inf], "x": np.float32(2.5)})
    assert json.loads(line) == {"loss": "nan", "g": ["inf", "-inf"], "x": 2.5}
    assert "NaN" not in line and "Infinity" not in line


def test_torn_last_line_skipped_and_cut_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.write("step", step=1)
        w.write("step", step=2)
    with path.open("a") as fh:
        fh.write('{"kind": "step", "step": 3, "lo')  # a crash mid-write
    assert [e["step"] for e in read_events(path)] == [1, 2]
    with EventWriter(path) as w:  # a resumed run appends after cutting the torn line
        w.write("step", step=3)
    assert [e["step"] for e in read_events(path)] == [1, 2, 3]
    assert path.read_text().count("\n") == 3


def test_torn_only_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "st')
    assert read_events(path) == []
    EventWriter(path).close()
    assert path.read_bytes() == b""


def test_corrupt_middle_line_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "a"}\nnot json\n{"kind": "b"}\n')
    with pytest.raises(UserError, match=r"events.jsonl, line 2"):
        read_events(path)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such events file"):
        read_events(tmp_path / "nope.jsonl")


def test_tail_returns_only_new_complete_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.poll() == []
    w = EventWriter(path)
    w.write("step", step=1)
    assert [e["step"] for e in tail.poll()] == [1]
    assert tail.poll() == []
    with path.open("a") as fh:  # half a line: not yet an event
        fh.write('{"kind": "step", ')
    assert tail.poll() == []
    with path.open("a") as fh:
        fh.write('"step": 2}\n')
    w.write("step", step=3)
    assert [e["step"] for e in tail.poll()] == [2, 3]
    w.close()
