"""What kind of xrdiag directory a path is: an evaluation, a training run, or a study.

The report, `compare` and the dashboard all accept any of the three; they tell them apart by
the file each kind is defined by (DESIGN.md, "Runs"), never by the directory's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Kind = Literal["eval", "run", "study"]

EVAL_FILES = ("manifest.json", "results.parquet")
RUN_FILE = "run.toml"
STUDY_FILE = "study.toml"


def classify(path: Path) -> Kind | None:
    """`study` (has study.toml), `run` (run.toml), `eval` (manifest.json + results.parquet)."""
    if not path.is_dir():
        return None
    if (path / STUDY_FILE).is_file():
        return "study"
    if (path / RUN_FILE).is_file():
        return "run"
    if all((path / name).is_file() for name in EVAL_FILES):
        return "eval"
    return None
