"""A model's fingerprint: the cache key's model part, from the content of its files.

Local directories hash their config, tokenizer and weight files; a hub id, its revision. The
hash of a large file is memoised in xrdiag's cache and trusted only while the file is provably
the one it was made from (see `_file_sha256`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def model_fingerprint(model_path: str, config: Any = None) -> str:
    """sha256 over a local model's config, tokenizer and weights; for a hub id, its revision."""
    path = Path(model_path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(path.iterdir()):
            if file.is_file() and file.suffix in (".json", ".safetensors", ".model", ".txt"):
                digest.update(file.name.encode() + b"\0")
                digest.update(_file_sha256(file).encode())
        return digest.hexdigest()
    revision = getattr(config, "_commit_hash", None) or "unknown"
    digest.update(f"hub:{model_path}@{revision}".encode())
    return digest.hexdigest()


def _file_sha256(file: Path) -> str:
    """sha256 of a file's content, memoised in the cache so that large weights hash once.

    The memo is only a shortcut: it is used while the file's identity and change times are
    those it was made from (device, inode, size, mtime and ctime). Rewriting weights in place
    and restoring their mtime (as `cp -p`, `rsync -t` or a careless script do) still moves the
    ctime, which no user call can set back, so the file is hashed again. The memo lives in
    xrdiag's cache, never beside the user's model files.
    """
    from xrdiag.cache.paths import default_cache_dir

    stat = file.stat()
    where_key = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:32]
    sidecar = default_cache_dir() / "file-hashes" / where_key
    stamp = f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"
    try:
        saved_stamp, saved_hash = sidecar.read_text().split()
        if saved_stamp == stamp:
            return saved_hash
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with file.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    value = h.hexdigest()
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_name(sidecar.name + f".{os.getpid()}.tmp")
        tmp.write_text(f"{stamp} {value}")
        os.replace(tmp, sidecar)
    except OSError:
        pass  # an unwritable cache: hash again next time
    return value
