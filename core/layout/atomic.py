"""Writes that readers never see half of: a temporary sibling, then a rename over the target."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
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
    """Write a text file through a temporary sibling and a rename (synced to disk)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc).

    Elsewhere it is read by setting and restoring it, which is what `os.umask` offers.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(root: Path) -> None:
    """Give `root` and every file and directory below it the modes the umask allows.

    Some writers (safetensors via `save_pretrained`, `tempfile.mkstemp`) create files 0600
    whatever the umask; outputs a user shares with a group must not depend on which one wrote.
    """
    mask = current_umask()
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        if path.is_symlink():
            continue
        mode = 0o777 if path.is_dir() else 0o666
        os.chmod(path, mode & ~mask)


def temporary_sibling(path: Path) -> Path:
    """A new, empty file beside `path` to write into, created with the umask's modes.

    `tempfile.mkstemp` would create it 0600 and the rename would keep that.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path}: no free temporary name beside it")


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """`write(tmp)` into a temporary file in the same directory, then rename it over `path`."""
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # whatever mode the writer left
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
