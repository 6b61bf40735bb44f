"""Shared pieces of the dashboard tests: the committed fixture runs and a fixed clock."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FROZEN_T0 = 1_767_225_600.0  # the fixtures' start time (make_fixtures.py)
NOW = FROZEN_T0 + 3600.0  # one hour later: the "now" every dashboard test sees


class Clock:
    """The fixed clock of the dashboard tests: `t0` the fixtures' start, `now` an hour later."""

    t0 = FROZEN_T0
    now = NOW

    def __call__(self) -> float:
        return NOW


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fixture_runs() -> Path:
    """The committed fixture runs directory (read-only: copy it to change it)."""
    return FIXTURES


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alive():  # type: ignore[no-untyped-def]
    """`alive(run_dir)`: make a fixture run look like this test process is writing it."""
    return make_alive


@pytest.fixture
def runs_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture runs directory."""
    out = tmp_path / "runs"
    shutil.copytree(FIXTURES, out)
    return out


def make_alive(run: Path) -> None:
    """Rewrite a run's start event with this test process's pid and host: it looks running."""
    events = run / "events.jsonl"
    lines = []
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("kind") in ("start", "resume"):
            event["pid"], event["host"] = os.getpid(), socket.gethostname()
        lines.append(json.dumps(event))
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
