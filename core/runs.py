"""The run directory: `run.toml`, `events.jsonl`, `checkpoints/step-NNNNNN/` (DESIGN.md, "Runs").

Checkpoints are written atomically: into a hidden temporary directory first, finished with a
`COMPLETE` marker, then renamed into place, so a run killed at any instant leaves either the
whole checkpoint or none of it. Only complete checkpoints are ever listed or resumed from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrdiag.core.events import EVENTS_FILE
from xrdiag.errors import UserError

RUN_FILE = "run.toml"
CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def step_name(step: int) -> str:
    """`step-000042`: zero-padded so names sort like steps."""
    return f"step-{step:06d}"


def _fsync_dir(path: Path) -> None:
    """Persist a directory entry (a rename) on filesystems that need it; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and a rename: readers never see half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    root: Path

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def events_file(self) -> Path:
        return self.root / EVENTS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints_dir / step_name(step)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints as (step, path), oldest first; partial ones are ignored."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for entry in self.checkpoints_dir.iterdir():
            match = _STEP_DIR.match(entry.name)
            if match and entry.is_dir() and (entry / COMPLETE).is_file():
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        """The newest complete checkpoint, or None."""
        found = self.checkpoints()
        return found[-1] if found else None

    def exists(self) -> bool:
        """Whether this directory already holds a run (a run.toml)."""
        return self.run_file.is_file()

    def check_fresh(self) -> None:
        """A new run needs an absent or empty directory: never mix two runs' events."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root}: exists and is not a directory")
        if self.root.is_dir() and any(self.root.iterdir()):
            hint = " (use --resume to continue it)" if self.exists() else ""
            raise UserError(f"--out {self.root}: directory is not empty{hint}")

    def create(self, run_toml: str) -> None:
        """Create the directory layout and write run.toml."""
        self.check_fresh()
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_file, run_toml)

    def save_checkpoint(
        self,
        step: int,
        fill: Callable[[Path], None],
        keep_last: int,
        info: dict[str, Any] | None = None,
    ) -> Path:
        """Write a checkpoint atomically and keep only the newest `keep_last` complete ones.

        `fill(tmp_dir)` writes the contents; the `COMPLETE` marker (with `info`) is written
        after it returns and its files are synced, then the directory is renamed into place.
        """
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        final = self.checkpoint_dir(step)
        tmp = self.checkpoints_dir / f".tmp-{step_name(step)}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        fill(tmp)
        marker = {"step": step, **(info or {})}
        (tmp / COMPLETE).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        for file in tmp.rglob("*"):
            if file.is_file():
                with file.open("rb+") as fh:
                    os.fsync(fh.fileno())
        if final.exists():  # the same step saved again (e.g. a signal right after a save)
            old = self.checkpoints_dir / f".old-{step_name(step)}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(self.checkpoints_dir)
        self.prune(keep_last)
        return final

    def prune(self, keep_last: int) -> None:
        """Delete all but the newest `keep_last` complete checkpoints, and leftover temporaries.

        Temporaries of a killed writer (`.tmp-*`, `.old-*`) are never complete: they go too.
        """
        for entry in self.checkpoints_dir.iterdir():
            if entry.name.startswith((".tmp-", ".old-")) and not entry.name.endswith(
                f"-{os.getpid()}"
            ):
                shutil.rmtree(entry, ignore_errors=True)
        complete = self.checkpoints()
        for _, path in complete[: max(0, len(complete) - max(1, keep_last))]:
            shutil.rmtree(path, ignore_errors=True)


def git_hash(path: Path) -> str | None:
    """The commit of the git checkout holding `path` (with `+dirty` if modified), or None."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def package_versions(
    names: tuple[str, ...] = ("xrdiag", "torch", "transformers", "numpy"),
) -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
