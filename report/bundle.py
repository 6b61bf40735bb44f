"""What the report writers render: each loaded input (`Source`) and all of them (`Bundle`).

`build.py` loads eval, run and study directories into these; `markdown.py`, `html.py` and the
table and JSON writers only read them, so the formats never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl


@dataclass
class Source:
    """One input as loaded: its results (long schema) and what its kind adds."""

    path: Path
    kind: str  # eval | run | study
    label: str
    results: pl.DataFrame
    manifest: dict[str, Any] | None = None
    projection: pl.DataFrame | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None  # run.toml or study.toml
    status: str | None = None
    finished: bool = True
    notes: list[str] = field(default_factory=list)
    figures: pl.DataFrame | None = None
    comparison: pl.DataFrame | None = None

    def headline_results(self) -> pl.DataFrame:
        """The results the pivots show: a run's newest diagnostics; a study's base model."""
        if self.kind == "run" and self.results.height:
            return self.results.filter(pl.col("checkpoint") == self.results["checkpoint"].max())
        if self.kind == "study" and "variant" in self.results.columns:
            return self.results.filter(pl.col("variant") == "base")
        return self.results


@dataclass
class Bundle:
    """Everything a writer renders: the sources, their pivots, all rows, a comparison, notes."""

    sources: list[Source]
    pivots: dict[str, dict[str, pl.DataFrame]]
    results: pl.DataFrame
    comparison: pl.DataFrame | None
    notes: list[str]
    out_dir: Path
    # tables/ files an earlier report into out_dir wrote (read before this one writes any)
    earlier_tables: set[str] = field(default_factory=set)
