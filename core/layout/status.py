"""A run's status, in one vocabulary: running, finished, failed, interrupted or pending.

The status comes from the last lifecycle event of `events.jsonl`. Without a terminal event a
run is "running" only while the process named by its last start/resume event is alive on this
host (`os.kill(pid, 0)`); otherwise it crashed and is "failed". A run on another host cannot be
probed: it counts as running while it wrote recently.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

RUNNING, FINISHED, FAILED, INTERRUPTED, PENDING = (
    "running",
    "finished",
    "failed",
    "interrupted",
    "pending",
)
# The last event kind of a run that ended, and the status it means.
TERMINAL = {"end": FINISHED, "interrupted": INTERRUPTED, "stopped": INTERRUPTED,
            "nonfinite": FAILED}  # fmt: skip
OPENING = ("start", "resume")
LIFECYCLE = (*OPENING, *TERMINAL)
REMOTE_FRESH_S = 600.0


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


def state(
    last_kind: object,
    writer: Mapping[str, Any] | None,
    last_time: float | None,
    now: float,
    host: str | None = None,
) -> str:
    """The status from the last event's kind and the last start/resume event (`writer`)."""
    if last_kind in TERMINAL:
        return TERMINAL[str(last_kind)]
    if writer is None:
        return FAILED
    here = host or socket.gethostname()
    if writer.get("host") not in (None, here):
        fresh = last_time is not None and now - last_time < REMOTE_FRESH_S
        return RUNNING if fresh else FAILED
    return RUNNING if pid_alive(writer.get("pid")) else FAILED


def run_state(events: Sequence[Mapping[str, Any]], now: float, host: str | None = None) -> str:
    """The status of a run from (the tail of) its events."""
    if not events:
        return PENDING
    opened = [e for e in events if e.get("kind") in OPENING]
    last_time = events[-1].get("time")
    return state(
        events[-1].get("kind"),
        opened[-1] if opened else None,
        float(last_time) if isinstance(last_time, int | float) else None,
        now,
        host,
    )


def _liveness(event: Mapping[str, Any]) -> str:
    """Whether the process of a start/resume event still runs: only knowable on its host."""
    pid, host = event.get("pid"), event.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return f"still training on {host} or crashed" if host else "still training or crashed"
    if not pid_alive(pid):
        return f"crashed (process {pid} is gone)"
    return f"still training (process {pid})"


def status_line(events: Sequence[Mapping[str, Any]]) -> tuple[str, bool]:
    """(human status, finished?) from the last lifecycle event of a run's stream."""
    life = [e for e in events if e.get("kind") in LIFECYCLE]
    steps = [e["step"] for e in events if e.get("kind") == "step" and "step" in e]
    starts = [e for e in events if e.get("kind") == "start"]
    total = starts[-1].get("max_steps") if starts else None
    where = f"step {steps[-1] if steps else 0}" + (f" of {total}" if total else "")
    if not life:
        return f"no lifecycle events yet ({where})", False
    kind = life[-1]["kind"]
    if kind == "end":
        return f"finished ({where})", True
    if kind in ("interrupted", "stopped"):
        return f"{kind} at {where}; resumable with xrdiag train --resume", False
    if kind == "nonfinite":
        return f"stopped on a non-finite loss at {where}", False
    return f"{_liveness(life[-1])}: no end event yet ({where})", False
