"""A study cell's state at a glance, whichever process runs it: the one status vocabulary.

A cell is a run directory plus what the study adds around it: the DONE marker (trained and
evaluated), the claim of the process running it (`core/study/claim.py`) and its log when a
separate process ran it. Its status is the run's (`core/layout/status.py`) refined by those:

- DONE -> finished, or failed when it says "nonfinite" (the study leaves such a cell out);
- a live claim -> running, training or (once the loop's `end` event is written) evaluating;
- otherwise the run's own status from its events, except that a run which finished training
  but has no DONE was stopped during its evaluation: interrupted (resuming evaluates it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from xrdiag.core.events import tail_events
from xrdiag.core.layout.dirs import RunDir, done_marker
from xrdiag.core.layout.status import FAILED, FINISHED, INTERRUPTED, RUNNING, run_state
from xrdiag.core.study.claim import ClaimHolder, claim_holder

LOG_SUFFIX = ".log"


def cell_log(cell: Path) -> Path:
    """`cells/<variant>/seed-<s>.log`: a cell process's stdout and stderr, next to its run
    directory (inside it, it would make a fresh run directory non-empty)."""
    return cell.with_name(cell.name + LOG_SUFFIX)


def cell_label(cell: Path) -> str:
    """`variant/seed-s`, the name a cell goes by in messages and views."""
    return f"{cell.parent.name}/{cell.name}"


@dataclass(frozen=True)
class CellState:
    """What a cell is doing: `status` (status.py's vocabulary), `phase` (train, eval or None
    when no process runs it), the last step and the step count, and who runs it."""

    status: str
    phase: str | None = None
    step: int | None = None
    max_steps: int | None = None
    holder: ClaimHolder | None = None

    def describe(self) -> str:
        """`training, step 3 of 40`, `evaluating`, `finished`, `failed` ..."""
        if self.phase == "eval":
            return "evaluating"
        if self.phase == "train":
            of = f" of {self.max_steps}" if self.max_steps else ""
            return f"training, step {self.step or 0}{of}"
        return self.status


def cell_state(cell: Path, now: float | None = None) -> CellState:
    """The state of the cell whose run directory is `cell` (which may not exist yet)."""
    now = time.time() if now is None else now
    marker = done_marker(cell)
    if marker is not None:  # markers of xrdiag 0.1 have no status: they were all "done"
        return CellState(FAILED if marker.get("status") == "nonfinite" else FINISHED)
    _, events = tail_events(RunDir(cell).events_file)
    steps = [e["step"] for e in events if isinstance(e.get("step"), int)]
    step = steps[-1] if steps else None
    starts = [e.get("max_steps") for e in events if e.get("kind") == "start"]
    max_steps = starts[-1] if starts and isinstance(starts[-1], int) else None
    holder = claim_holder(cell, now)
    if holder is not None and holder.alive:
        trained = bool(events) and events[-1].get("kind") == "end"
        return CellState(RUNNING, "eval" if trained else "train", step, max_steps, holder)
    status = run_state(events, now)
    if status == FINISHED:
        status = INTERRUPTED
    phase = "train" if status == RUNNING else None
    return CellState(status, phase, step, max_steps)
