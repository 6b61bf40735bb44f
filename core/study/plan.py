"""A study split for a scheduler: plan once, run each cell anywhere, collect at the end.

`plan_study` prepares the study directory (study.toml, the evaluation rows, a task study's
pairs) and writes
`plan.json`: one entry per cell with its index, variant, seed, run directory, log and the exact
`xrdiag study run-cell` command. Any scheduler that can run N copies of a command with an index
(a SLURM array, a Kubernetes Indexed Job, GNU parallel, `study --jobs`) runs the cells;
`run_planned_cell` is idempotent (a DONE cell is skipped) and refuses a cell another live
process runs (core/study/claim.py). `collect_study` evaluates the base model if needed and
aggregates whatever cells are done, naming the others: the same files a sequential study
writes, computed from the same cell directories.

The cell index is the position in `StudyConfig.cells()` (variants in config order, then seeds),
read back from study.toml by every process, so the plan and the runs always agree.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xrdiag.core.layout.atomic import write_text_atomic
from xrdiag.core.layout.dirs import StudyDir, done_marker
from xrdiag.core.study.cells import cell_label, cell_log, cell_state
from xrdiag.core.study.config import StudyConfig, read_study_config, study_to_toml
from xrdiag.core.study.runner import (
    Progress,
    _eval_corpus,
    _prepare,
    cell_dir,
    prepare_shared,
    run_cell,
    task_file,
)
from xrdiag.errors import UserError

PLAN_FILE = "plan.json"
PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedCell:
    """One cell of the plan: what `run-cell --index` runs and where it writes."""

    index: int
    variant: str
    seed: int
    dir: Path
    command: str


def run_cell_command(out: Path, index: int) -> str:
    """The shell command that runs cell `index` of the study in `out` (an absolute path, so
    a scheduler may start it from any directory)."""
    return f"xrdiag study run-cell --out {shlex.quote(str(Path(out).resolve()))} --index {index}"


def planned_cells(cfg: StudyConfig, out: Path) -> list[PlannedCell]:
    return [
        PlannedCell(i, v, s, cell_dir(out, v, s), run_cell_command(out, i))
        for i, (v, s) in enumerate(cfg.cells())
    ]


def plan_study(cfg: StudyConfig | None, out: Path) -> list[PlannedCell]:
    """Prepare the study in `out` (or check it: planning again is harmless) and write plan.json.

    `cfg` None: the study's own study.toml. A config that differs from a stored one is refused,
    as `--resume` refuses it: cells already run would belong to another study.
    """
    out = Path(out)
    study = StudyDir(out)
    if study.config_file.is_file():
        stored = read_study_config(out)
        if cfg is not None and study_to_toml(cfg) != study_to_toml(stored):
            raise UserError(
                f"--out {out}: the config differs from {study.config_file}; plan it without "
                "--config/--set (the study's own config) or use a new --out"
            )
        cfg = stored
    elif cfg is None:
        raise UserError(f"--out {out}: no {study.config_file.name}; give --config/--set/--preset")
    else:
        _prepare(cfg, out, resume=False)
    _eval_corpus(cfg, out)
    if cfg.eval.outcome == "task":
        task_file(cfg, out)  # built once here, not by every cell at once
    cells = planned_cells(cfg, out)
    doc = {
        "version": PLAN_VERSION,
        "study": str(out.resolve()),
        "cells": [
            {
                "index": c.index,
                "variant": c.variant,
                "seed": c.seed,
                "dir": c.dir.relative_to(out).as_posix(),
                "log": cell_log(c.dir).relative_to(out).as_posix(),
                "command": c.command,
            }
            for c in cells
        ],  # fmt: skip
        "collect": f"xrdiag study collect --out {shlex.quote(str(out.resolve()))}",
    }
    write_text_atomic(out / PLAN_FILE, json.dumps(doc, indent=1) + "\n")
    return cells


def study_of(out: Path) -> StudyConfig:
    """The config of a planned (or started) study; a missing one says how to plan it."""
    if not StudyDir(Path(out)).config_file.is_file():
        raise UserError(
            f"--out {out}: no study here (no study.toml); run `xrdiag study plan --out {out}` first"
        )
    return read_study_config(Path(out))


def cell_at(cfg: StudyConfig, index: int) -> tuple[str, int]:
    """(variant, seed) of cell `index`; an index outside the plan is the user's error."""
    cells = cfg.cells()
    if not 0 <= index < len(cells):
        raise UserError(
            f"--index {index}: the study has {len(cells)} cells; expected 0 to {len(cells) - 1}"
        )
    return cells[index]


def run_planned_cell(
    out: Path, index: int, progress: Progress, echo: Callable[[str], None]
) -> tuple[str, str]:
    """Run cell `index` of the study in `out`: (its label, run_cell's status)."""
    out = Path(out)
    cfg = study_of(out)
    variant, seed = cell_at(cfg, index)
    _eval_corpus(cfg, out)  # planned already; written atomically if a process gets here first
    return f"{variant}/seed-{seed}", run_cell(cfg, out, variant, seed, progress, echo)


@dataclass
class Collected:
    """What `collect_study` aggregated: cells done, cells missing (label, state), files."""

    done: int
    total: int
    missing: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # DONE but not aggregated (non-finite)
    files: dict[str, Path] = field(default_factory=dict)


def collect_study(out: Path, progress: Progress, echo: Callable[[str], None]) -> Collected:
    """Evaluate the base model if needed, aggregate every DONE cell, name the others."""
    from xrdiag.core.study.aggregate import aggregate_study

    out = Path(out)
    cfg = study_of(out)
    cells = [cell_dir(out, v, s) for v, s in cfg.cells()]
    result = Collected(done=0, total=len(cells))
    for cell in cells:
        marker = done_marker(cell)
        if marker is not None and marker.get("status") == "done":
            result.done += 1
        elif marker is not None:  # trained to a non-finite loss: the study leaves it out
            result.left_out.append(cell_label(cell))
        else:
            result.missing.append((cell_label(cell), cell_state(cell).describe()))
    if result.done == 0:
        raise UserError(
            f"--out {out}: no cell is done yet ({len(cells)} planned); run them with "
            "`xrdiag study run-cell`, then collect"
        )
    prepare_shared(cfg, out, progress, echo)
    result.files = aggregate_study(out, cfg)
    return result
