"""One writer per run directory: a lock file naming the process that holds it.

Two `train --resume` of one run at once would interleave `events.jsonl` (every step twice, two
`end` events) and race on its checkpoints. The writer holds `RUN/LOCK` for as long as it writes:
an exclusive `flock` on the file, which the kernel drops when the process dies however it dies
(kill -9 included), and in the file a JSON line with its pid, host, start time and command, so
that a refusal and the dashboard can say who holds it.

A lock left by a process that died is taken over: on this host the free `flock` proves the
holder gone, whatever its pid now names (pids are reused). A lock whose content names another
host cannot be probed from here; it is refused with a message saying how to clear it. Where
`flock` does not exist the pid alone decides (a dead pid on this host is stale).

Readers never take the lock (a probe would make a starting writer fail); they read the file
with `lock_holder`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrdiag.core.layout import names
from xrdiag.core.layout.status import pid_alive
from xrdiag.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LockHolder:
    """Who a lock file names, and whether that process is known to be alive."""

    pid: int | None
    host: str | None
    since: float | None
    command: str | None
    alive: bool | None  # None: another host, cannot be probed from here

    def describe(self) -> str:
        """`pid 4242 on node-1` (+ `, gone` when known dead)."""
        who = f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'}"
        return who + (", gone" if self.alive is False else "")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _holder(data: dict[str, Any]) -> LockHolder:
    pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    host = data.get("host") if isinstance(data.get("host"), str) else None
    since = data.get("since") if isinstance(data.get("since"), int | float) else None
    command = data.get("command") if isinstance(data.get("command"), str) else None
    alive = pid_alive(pid) if host == socket.gethostname() else None
    return LockHolder(pid, host, since, command, alive)


def lock_holder(run_dir: Path) -> LockHolder | None:
    """The process a run's lock file names, or None when the run is not locked."""
    path = Path(run_dir) / names.LOCK
    if not path.is_file():
        return None
    data = _read(path)
    return _holder(data) if data else None


class RunLock:
    """The exclusive right to write a run directory; a context manager.

    `acquire()` raises a one-line UserError naming the holder when a live process (or one on
    another host) holds it; `release()` removes the file. Not reentrant: a second RunLock on
    the same directory in the same process is refused like any other writer.
    """

    def __init__(self, run_dir: Path, command: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / names.LOCK
        self.command = command or " ".join(["xrdiag", *sys.argv[1:]])[:200]
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this RunLock")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # the file may be removed under us by a releasing holder
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not self._try_lock(fd):
                os.close(fd)
                self._refuse(_holder(_read(self.path)))
            if same_file(fd, self.path):
                self._claim(fd)
                return self
            os.close(fd)  # we locked a file a releasing holder had just unlinked: again
        raise UserError(f"{self.path}: could not take the run lock (it keeps changing)")

    def _try_lock(self, fd: int) -> bool:
        """The kernel lock (free once its holder is dead), or the pid check without fcntl."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
        data = _read(self.path)
        if not data:
            return True
        holder = _holder(data)
        if holder.host not in (None, socket.gethostname()):
            self._refuse(holder, fd)
        return fcntl is not None or not holder.alive or holder.pid == os.getpid()

    def _refuse(self, holder: LockHolder, fd: int | None = None) -> None:
        if fd is not None:
            os.close(fd)
        since = (
            time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(holder.since))
            if holder.since
            else ""
        )
        if holder.alive is None and holder.host:
            raise UserError(
                f"{self.run_dir}: run is locked by {holder.describe()}{since}, another host; "
                f"if that process is gone, delete {self.path}"
            )
        raise UserError(
            f"{self.run_dir}: run is being written by {holder.describe()}{since}; "
            "wait for it to end or stop it (one writer per run)"
        )

    def _claim(self, fd: int) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": round(time.time(), 3),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file, then drop the kernel lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        drop_lock_file(fd, self.path)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def drop_lock_file(fd: int, path: Path) -> None:
    """Remove the lock file while it is still the one `fd` holds, then close `fd`, which drops
    the flock (removing first: no one can take the lock and see the file vanish under them)."""
    try:
        if same_file(fd, path):
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file `fd` has open (a lock file another process
    replaced after taking it over is not ours to remove)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
