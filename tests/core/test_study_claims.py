"""Study cells claimed by one process at a time, and their states as every view reads them.

No training here: claims and event streams are written by hand, holders are this process, a
process that has exited, or a made-up host whose heartbeat is fresh or stale.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xrdiag.core.layout.status import FAILED, FINISHED, INTERRUPTED, PENDING, RUNNING
from xrdiag.core.study.cells import cell_state
from xrdiag.core.study.claim import STALE_S, CellClaim, claim_holder, claim_path
from xrdiag.errors import UserError


def test_claim_is_exclusive_released_and_taken_over_from_the_dead(tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "v" / "seed-0"
    with CellClaim(cell, "v/seed-0") as claim:
        holder = claim_holder(cell)
        assert holder is not None and holder.alive and holder.pid == os.getpid()
        with pytest.raises(UserError, match="being run by pid"):
            CellClaim(cell, "v/seed-0").acquire()  # not even this process twice
        assert claim.path == claim_path(cell) and claim.path.is_file()
    assert not claim_path(cell).exists() and claim_holder(cell) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    record = {"pid": int(dead.stdout), "host": socket.gethostname(), "since": time.time()}
    claim_path(cell).write_text(json.dumps(record), encoding="utf-8")
    assert claim_holder(cell) is not None and not claim_holder(cell).alive  # type: ignore[union-attr]
    with CellClaim(cell, "v/seed-0"):  # a dead holder's claim is taken over
        assert claim_holder(cell).pid == os.getpid()  # type: ignore[union-attr]


def test_a_claim_from_another_host_counts_while_its_heartbeat_is_fresh(tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "v" / "seed-0"
    cell.parent.mkdir(parents=True)
    record = {"pid": 1, "host": "another-node", "since": time.time()}
    claim_path(cell).write_text(json.dumps(record), encoding="utf-8")
    assert claim_holder(cell).alive  # type: ignore[union-attr]
    with pytest.raises(UserError, match="being run by pid 1 on another-node"):
        CellClaim(cell, "v/seed-0").acquire()
    assert cell_state(cell).status == RUNNING
    stale = time.time() - STALE_S - 5  # six heartbeats missed: its holder is gone
    os.utime(claim_path(cell), (stale, stale))
    assert not claim_holder(cell).alive  # type: ignore[union-attr]
    assert cell_state(cell).status == PENDING
    with CellClaim(cell, "v/seed-0"):
        pass


def test_cell_states(tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "v" / "seed-0"
    assert cell_state(cell).status == PENDING
    cell.mkdir(parents=True)
    events = cell / "events.jsonl"
    start = {"kind": "start", "time": time.time(), "step": 0, "max_steps": 8,
             "pid": os.getpid(), "host": socket.gethostname()}  # fmt: skip
    lines = [start, {"kind": "step", "time": time.time(), "step": 3}]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
    state = cell_state(cell)  # the training process (this one) is alive, no claim: old style
    assert (state.status, state.describe()) == (RUNNING, "training, step 3 of 8")
    with CellClaim(cell, "v/seed-0"):
        ended = [*lines, {"kind": "end", "time": time.time(), "step": 8}]
        events.write_text("".join(json.dumps(e) + "\n" for e in ended), encoding="utf-8")
        state = cell_state(cell)
        assert (state.status, state.describe()) == (RUNNING, "evaluating")
    assert cell_state(cell).status == INTERRUPTED  # trained, evaluation not finished
    (cell / "DONE").write_text(json.dumps({"status": "done"}), encoding="utf-8")
    assert cell_state(cell).status == FINISHED
    (cell / "DONE").write_text(json.dumps({"status": "nonfinite"}), encoding="utf-8")
    assert cell_state(cell).status == FAILED
