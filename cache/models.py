"""The converted models in the cache (the embedded default): what `cache info` counts and what
`cache clear` removes, with the file-hash memo and the verified-weights markers beside them.

A converted model is rebuilt from its source on next use, so clearing it is always safe; a
damaged one (truncated weights, a zeroed file) is repaired this way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from xrdiag.cache.paths import default_cache_dir, models_dir

# Small bookkeeping beside the arrays: content hashes of model files, and markers of weights
# that loaded cleanly (core/encoding). Both are recomputed when missing.
MEMO_DIRS = ("file-hashes", "verified-models")


def _size(path: Path) -> int:
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(base) / name).lstat().st_size
            except OSError:
                pass
    return total


def converted_models(root: Path | None = None) -> list[Path]:
    """Every directory under the models folder (finished, partial or left by a crash)."""
    folder = models_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())


def models_info(root: Path | None = None) -> dict[str, Any]:
    """How many converted models the cache holds and their bytes."""
    found = converted_models(root)
    return {
        "models_root": str(models_dir(root)),
        "models": len(found),
        "models_bytes": sum(_size(p) for p in found),
    }


def clear_models(root: Path | None = None) -> int:
    """Remove every converted model and the memo folders; return how many models went."""
    found = converted_models(root)
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    base = root or default_cache_dir()
    for name in MEMO_DIRS:
        shutil.rmtree(base / name, ignore_errors=True)
    return len(found)
