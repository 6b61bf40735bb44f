"""One process per study cell: a claim held while a cell trains, is evaluated and gets DONE.

Cells run in separate processes (`xrdiag study --jobs N`, or one `xrdiag study run-cell` per
scheduler task), so two processes can be handed the same cell: a scheduler's retry, a
`--jobs` study started on a study that a SLURM array is running. Training alone is not the
whole cell: its evaluation and DONE marker come after the training loop has ended, so the
claim covers all of it, and a second process is refused with one line naming the holder.

The claim is a file next to the cell's run directory (`cells/<variant>/seed-<s>.claim`), not
inside it: a fresh run directory must be empty. It works like the run lock: an exclusive
`flock`, which the kernel drops however the holder dies, and a JSON line (pid, host, since,
command) that readers (the dashboard, the `--jobs` parent) use to tell a live holder from a
dead one the way `core/layout/status.py` does for runs: on this host by probing the pid,
across hosts (a shared filesystem) by freshness, which is why the holder touches the file
every HEARTBEAT_S. A claim whose holder is dead is taken over: at once on this host (the free
flock proves it), after STALE_S without a heartbeat from another host (a pod or node killed
outright: a successor on another host is refused until then).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrdiag.core.layout.lock import drop_lock_file, same_file
from xrdiag.core.layout.status import pid_alive
from xrdiag.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the pid alone decides
    fcntl = None  # type: ignore[assignment]

CLAIM_SUFFIX = ".claim"
HEARTBEAT_S = 30.0
# Six missed heartbeats: NFS may cache a file's mtime for up to a minute (actimeo), and a
# claim is far more regular than a run's events (status.REMOTE_FRESH_S), written per step.
STALE_S = 6 * HEARTBEAT_S


def claim_path(cell: Path) -> Path:
    """`cells/<variant>/seed-<s>.claim` for the cell run directory `cells/<variant>/seed-<s>`."""
    return cell.with_name(cell.name + CLAIM_SUFFIX)


class CellBusy(UserError):
    """The cell is claimed by another live process (`run-cell --wait` waits instead)."""


@dataclass(frozen=True)
class ClaimHolder:
    """The process a claim file names, and whether it is alive (as far as can be told)."""

    pid: int | None
    host: str | None
    since: float | None
    command: str | None
    alive: bool

    def describe(self) -> str:
        """`pid 4242 on node-1 since 2026-01-01 12:00:00`."""
        who = f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'}"
        if self.since:
            who += time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return who


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def claim_holder(cell: Path, now: float | None = None) -> ClaimHolder | None:
    """Who claims the cell run directory `cell`, or None when nobody does (or ever did)."""
    path = claim_path(cell)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    data = _read(path)
    if not data:
        return None
    pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    host = data.get("host") if isinstance(data.get("host"), str) else None
    since = data.get("since") if isinstance(data.get("since"), int | float) else None
    command = data.get("command") if isinstance(data.get("command"), str) else None
    if host in (None, socket.gethostname()):
        alive = pid_alive(pid)
    else:  # another host: its heartbeat keeps the file fresh while it lives
        alive = (time.time() if now is None else now) - mtime < STALE_S
    return ClaimHolder(pid, host, since, command, alive)


class CellClaim:
    """The exclusive right to run one cell; a context manager.

    `acquire()` raises CellBusy, a one-line UserError naming the holder, while another live
    process holds the cell; `release()` removes the file. Not reentrant.
    """

    def __init__(self, cell: Path, label: str, command: str | None = None) -> None:
        self.cell = Path(cell)
        self.label = label
        self.path = claim_path(self.cell)
        self.command = command or " ".join(["xrdiag", *sys.argv[1:]])[:200]
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> CellClaim:
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this claim")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # a releasing holder may unlink the file under us: open it again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            holder = claim_holder(self.cell)
            if not _try_lock(fd) or (holder is not None and holder.alive and (
                fcntl is None or holder.host != socket.gethostname()
            )):  # fmt: skip
                os.close(fd)
                raise self._refusal(claim_holder(self.cell) or holder)
            if same_file(fd, self.path):
                self._claim(fd)
                return self
            os.close(fd)
        raise UserError(f"{self.path}: could not claim the cell (the file keeps changing)")

    def _refusal(self, holder: ClaimHolder | None) -> CellBusy:
        who = holder.describe() if holder is not None else "another process"
        return CellBusy(
            f"cell {self.label}: being run by {who}; wait for it to finish or stop it "
            "(one process per cell)"
        )

    def _claim(self, fd: int) -> None:
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": round(time.time(), 3), "command": self.command}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        """Stop the heartbeat, remove the file, then drop the kernel lock (idempotent)."""
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=2)
        fd, self._fd = self._fd, None
        drop_lock_file(fd, self.path)

    def __enter__(self) -> CellClaim:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    """The kernel lock; free once its holder is dead (always True without fcntl)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
