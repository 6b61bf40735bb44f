"""Eval, run and study directories: what kind a path is, and where each of its files lives.

The report, `compare` and the dashboard accept any of the three and tell them apart by the
file each kind is defined by, never by the directory's name. Checkpoints are written
atomically: into a hidden temporary directory first, finished with a `COMPLETE` marker, then
renamed into place, so a run killed at any instant leaves either the whole checkpoint or none
of it; only complete checkpoints are ever listed or resumed from.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xrdiag.core.layout import names
from xrdiag.core.layout.atomic import fsync_dir, honour_umask
from xrdiag.errors import UserError

Kind = Literal["eval", "run", "study"]


def classify(path: Path) -> Kind | None:
    """`study` (has study.toml), `run` (run.toml), `eval` (manifest.json + results.parquet)."""
    if not path.is_dir():
        return None
    if (path / names.STUDY_FILE).is_file():
        return "study"
    if (path / names.RUN_FILE).is_file():
        return "run"
    if (path / names.MANIFEST).is_file() and (path / names.RESULTS).is_file():
        return "eval"
    return None


@dataclass(frozen=True)
class EvalDir:
    """An evaluation's outputs: results, the rows used, the projection, the manifest."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / names.RESULTS

    @property
    def manifest(self) -> Path:
        return self.root / names.MANIFEST

    @property
    def rows(self) -> Path:
        return self.root / names.ROWS

    @property
    def projection(self) -> Path:
        return self.root / names.PROJECTION

    def output(self, name: str) -> Path:
        """Where an analysis' extra output `name` (projection, queries) is written."""
        return self.root / f"{name}.parquet"

    def outputs(self) -> list[Path]:
        """The files an evaluation writes that exist here (the manifest apart)."""
        known = [self.results, self.rows, self.projection, self.queries, self.predictions]
        return [p for p in known if p.is_file()]

    @property
    def queries(self) -> Path:
        return self.root / names.QUERIES

    @property
    def predictions(self) -> Path:
        return self.root / names.PREDICTIONS

    def exists(self) -> bool:
        """Whether the evaluation finished (the manifest is written last)."""
        return classify(self.root) == "eval"

    def check_target(self, overwrite: bool) -> None:
        """Whether an evaluation may write here; refuse (UserError) where it would lose data.

        A new or empty directory is fine. A directory holding an earlier evaluation (finished,
        or only eval output files left by an interrupted one) is replaced with `overwrite`
        only. Any other non-empty directory is refused whatever the flag: its
        `results.parquet` may be a user's own file.
        """
        root = self.root
        if root.exists() and not root.is_dir():
            raise UserError(f"--out {root}: exists and is not a directory")
        entries = [p.name for p in root.iterdir()] if root.is_dir() else []
        if not entries:
            return
        ours = [n for n in entries if n in names.EVAL_OUTPUTS or _eval_temporary(n)]
        if classify(root) == "eval" or len(ours) == len(entries):
            if not overwrite:
                raise UserError(
                    f"--out {root}: holds an earlier evaluation; pass --overwrite to replace "
                    "it, or choose a new directory"
                )
            return
        foreign = sorted(set(entries) - set(ours))
        raise UserError(
            f"--out {root}: directory is not empty and is not an xrdiag eval directory (it "
            f"holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); expected a "
            "new or empty directory"
        )

    def read_manifest(self) -> dict[str, Any]:
        """manifest.json as a dict; unreadable or not an object is a one-line user error."""
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.manifest}: unreadable ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.manifest}: expected a JSON object")
        return data


def _eval_temporary(name: str) -> bool:
    """A temporary file of an interrupted atomic write of an eval output (`.results.parquet.*`)."""
    return (
        name.startswith(".")
        and name.endswith(".tmp")
        and any(name.startswith(f".{output}.") for output in names.EVAL_OUTPUTS)
    )


@dataclass(frozen=True)
class RunDir:
    """A training run: run.toml, events.jsonl, checkpoints/step-N/, diagnostics/step-N/."""

    root: Path

    @property
    def run_file(self) -> Path:
        return self.root / names.RUN_FILE

    @property
    def events_file(self) -> Path:
        return self.root / names.EVENTS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / names.CHECKPOINTS

    @property
    def diagnostics_dir(self) -> Path:
        return self.root / names.DIAGNOSTICS

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints_dir / names.step_name(step)

    def diagnostics(self, name: str) -> EvalDir:
        """The eval dir of a checkpoint (`step-N`), written or not."""
        return EvalDir(self.diagnostics_dir / name)

    def evaluated(self) -> list[EvalDir]:
        """Finished diagnostics of this run's checkpoints, oldest first."""
        if not self.diagnostics_dir.is_dir():
            return []
        found = [
            EvalDir(p)
            for p in self.diagnostics_dir.iterdir()
            if names.step_of(p.name) is not None and classify(p) == "eval"
        ]
        return sorted(found, key=lambda d: d.root.name)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints as (step, path), oldest first; partial ones are ignored."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for entry in self.checkpoints_dir.iterdir():
            step = names.step_of(entry.name)
            if step is not None and entry.is_dir() and (entry / names.COMPLETE).is_file():
                found.append((step, entry))
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
        # The writer's own lock may already be there: taking it comes first.
        if self.root.is_dir() and any(p.name != names.LOCK for p in self.root.iterdir()):
            hint = " (use --resume to continue it)" if self.exists() else ""
            raise UserError(f"--out {self.root}: directory is not empty{hint}")

    def create(self, run_toml: str) -> None:
        """Create the directory layout and write run.toml."""
        from xrdiag.core.layout.atomic import write_text_atomic

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
        tmp = self.checkpoints_dir / f".tmp-{names.step_name(step)}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        fill(tmp)
        honour_umask(tmp)  # save_pretrained writes its safetensors 0600
        marker = {"step": step, **(info or {})}
        (tmp / names.COMPLETE).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        for file in tmp.rglob("*"):
            if file.is_file():
                with file.open("rb+") as fh:
                    os.fsync(fh.fileno())
        if final.exists():  # the same step saved again (e.g. a signal right after a save)
            old = self.checkpoints_dir / f".old-{names.step_name(step)}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(self.checkpoints_dir)
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


@dataclass(frozen=True)
class StudyDir:
    """A study: study.toml, the base model's eval, one run dir per cell, the aggregates."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / names.STUDY_FILE

    @property
    def base(self) -> EvalDir:
        return EvalDir(self.root / names.BASE)

    @property
    def eval_corpus(self) -> Path:
        return self.root / names.EVAL_CORPUS

    @property
    def task(self) -> Path:
        return self.root / names.TASK

    @property
    def cells_dir(self) -> Path:
        return self.root / names.CELLS

    def cell(self, variant: str, seed: int) -> RunDir:
        return RunDir(self.cells_dir / variant / f"seed-{seed}")

    def variant_cells(self, variant: str) -> list[Path]:
        """A variant's cell run dirs (`cells/<variant>/seed-<s>`) that exist, by seed."""
        found = [p for p in (self.cells_dir / variant).glob("seed-*") if p.is_dir()]
        return sorted(found, key=lambda p: int(p.name.split("-", 1)[1] or 0))

    def cell_dirs(self) -> list[Path]:
        """Every cell directory that exists, by variant then seed name."""
        return sorted(p for p in self.cells_dir.glob("*/seed-*") if p.is_dir())

    def file(self, name: str) -> Path:
        """An aggregate (names.SUMMARY, FIGURES, COMPARISON, SUMMARY_MD) of the study."""
        return self.root / name


def done_marker(cell: Path) -> dict[str, Any] | None:
    """A study cell's DONE marker (trained and evaluated), or None when absent or unreadable."""
    try:
        data = json.loads((cell / names.DONE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
