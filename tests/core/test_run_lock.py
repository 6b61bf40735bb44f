"""One writer per run directory: the lock refuses a second writer and is taken over when stale."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.layout.lock import RunLock, lock_holder
from xrdiag.errors import UserError

HOLD = """
import sys, time
from pathlib import Path
from xrdiag.core.layout.lock import RunLock
lock = RunLock(Path(sys.argv[1]), command="xrdiag train --resume").acquire()
print("locked", flush=True)
sys.stdin.read()  # hold it until told (or killed)
"""


def holder_process(run: Path) -> subprocess.Popen[str]:
    """A separate process that takes the lock and holds it; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunLock(run, command="xrdiag train") as lock:
        assert lock.held and (run / "LOCK").is_file()
        with pytest.raises(UserError) as info:
            RunLock(run).acquire()
        text = str(info.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in text and "\n" not in text
        holder = lock_holder(run)
        assert holder is not None and holder.pid == os.getpid() and holder.alive is True
        assert holder.command == "xrdiag train"
    assert not (run / "LOCK").exists() and lock_holder(run) is None
    with RunLock(run):  # released: free again
        pass


def test_another_process_holds_it_until_killed_then_it_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = holder_process(run)
    try:
        with pytest.raises(UserError, match=f"pid {proc.pid} on "):
            RunLock(run).acquire()
        holder = lock_holder(run)
        assert holder is not None and holder.pid == proc.pid and holder.alive
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9: no cleanup, the LOCK file stays
        proc.wait()
    assert (run / "LOCK").is_file()
    stale = lock_holder(run)
    assert stale is not None and stale.alive is False and "gone" in stale.describe()
    with RunLock(run):
        holder = lock_holder(run)
        assert holder is not None and holder.pid == os.getpid()


def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    record = {"pid": dead_pid(), "host": socket.gethostname(), "since": 1.0}
    (run / "LOCK").write_text(json.dumps(record))
    with RunLock(run):
        assert json.loads((run / "LOCK").read_text())["pid"] == os.getpid()


def test_a_lock_of_another_host_is_refused_with_how_to_clear_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "LOCK").write_text(json.dumps({"pid": 1234, "host": "elsewhere-node"}))
    with pytest.raises(UserError, match="pid 1234 on elsewhere-node.*another host.*delete"):
        RunLock(run).acquire()
    holder = lock_holder(run)
    assert holder is not None and holder.alive is None


def test_a_corrupt_lock_file_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "LOCK").write_bytes(b"\x00\xff garbage")
    assert lock_holder(run) is None
    with RunLock(run):
        assert lock_holder(run) is not None


def test_a_fresh_run_may_be_created_under_its_own_lock(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with RunLock(run.root):
        run.create("[meta]\nseed = 0\n")
        assert run.exists()
    other = RunDir(tmp_path / "other")
    other.root.mkdir()
    (other.root / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        other.check_fresh()
