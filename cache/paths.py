"""Where xrdiag keeps its cache: `XRDIAG_CACHE_DIR`, else the platform's user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "XRDIAG_CACHE_DIR"


def default_cache_dir() -> Path:
    """The cache root; `--cache-dir` on the command line sets `XRDIAG_CACHE_DIR` for the run."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("xrdiag", appauthor=False))


def embeddings_dir(root: Path | None = None) -> Path:
    """Content-addressed embedding arrays live here."""
    return (root or default_cache_dir()) / "embeddings"


def models_dir(root: Path | None = None) -> Path:
    """Converted models (the embedded default) live here."""
    return (root or default_cache_dir()) / "models"
