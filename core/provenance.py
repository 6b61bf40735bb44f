"""Where numbers came from: the git commit of the code and the versions of the packages."""

from __future__ import annotations

import subprocess
from pathlib import Path

# The packages that decide a run's or an evaluation's numbers.
RUN_PACKAGES = ("xrdiag", "torch", "transformers", "numpy")
EVAL_PACKAGES = ("xrdiag", "torch", "transformers", "numpy", "polars", "scikit-learn", "umap-learn")


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
    names: tuple[str, ...] = RUN_PACKAGES, missing: str | None = None
) -> dict[str, str]:
    """Installed versions of `names`; a missing package is left out, or given `missing`."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            if missing is not None:
                out[name] = missing
    return out


def absolute_source(source: str | None) -> str:
    """A corpus source as it can be found again from any directory: a local path made absolute.

    `default` and `hf:` datasets name themselves; a test-set scheme keeps its scheme
    (`tatoeba:/abs/dir`). A relative path typed in one directory would name another file when
    `compare` re-reads it from elsewhere, so the manifest keeps this form as well as the typed one.
    """
    from xrdiag.core.corpus.testsets import split_scheme

    if source is None or source in ("", "default") or source.startswith("hf:"):
        return source or "default"
    scheme = split_scheme(source)
    if scheme is not None:
        return f"{scheme[0]}:{scheme[1].resolve()}"
    return str(Path(source).expanduser().resolve())
