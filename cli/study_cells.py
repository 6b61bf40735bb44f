"""`xrdiag study plan | run-cell | collect`: a study split into cells for any scheduler.

`plan` prepares the study directory and prints one line per cell (index, variant, seed, the
exact `run-cell` command; also in DIR/plan.json); `run-cell --index I` runs one cell wherever
the directory is shared (a SLURM array task, a Kubernetes Indexed Job pod, `study --jobs`);
`collect` (in cli/study.py, which prints the answer table) evaluates the base model if needed
and aggregates the cells that are done. The engine is core/study/plan.py; this module parses
flags and prints. Also here: the progress view of `study --jobs` (the cells bar plus one line
per running cell).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click

from xrdiag.cli.console import Progress, progress_bars, step_progress

# run-cell's exit status when the cell was interrupted (128 + SIGINT, as a shell reports it):
# not done, so a scheduler retries it; running the same command again resumes it.
INTERRUPTED_EXIT = 130
# run-cell --wait: how often a busy cell is checked again (a stat and a tiny read).
WAIT_S = 5.0

Running = Callable[[Mapping[str, tuple[str, int, "int | None"]]], None]


@contextmanager
def jobs_progress() -> Iterator[tuple[Progress, Running]]:
    """Transient bars on stderr: the current base-eval phase, then cells done / total and one
    line per running cell (its training steps, or `eval`, or `elsewhere` when another process
    runs it), updated as the parallel study reports them."""
    with progress_bars() as bar:
        steps: dict[str, Any] = {}
        cells: dict[str, Any] = {}

        def progress(name: str, done: int, total: int | None) -> None:
            if name not in steps:  # a new phase replaces the previous ones; "cells" stays
                for old in [k for k in steps if k != "cells"]:
                    bar.remove_task(steps.pop(old))
                steps[name] = bar.add_task(name, total=total)
            bar.update(steps[name], completed=done, total=total)

        def running(view: Mapping[str, tuple[str, int, int | None]]) -> None:
            wanted = {f"  {label} {phase}": (step, total)
                      for label, (phase, step, total) in view.items()}  # fmt: skip
            for gone in [k for k in cells if k not in wanted]:
                bar.remove_task(cells.pop(gone))
            for name, (step, total) in wanted.items():
                if name not in cells:
                    cells[name] = bar.add_task(name, total=total)
                bar.update(cells[name], completed=step, total=total)

        yield progress, running


def _echo(message: str) -> None:
    click.echo(message, err=True)


@click.command("plan")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Study directory.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Study TOML (see xrdiag study --print-config).",
)
@click.option(
    "--preset",
    type=click.Choice(["quick", "full", "task"]),
    default=None,
    help="Start from this preset (see xrdiag study --print-config).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
def plan_command(
    out: Path, config_path: Path | None, preset: str | None, overrides: tuple[str, ...]
) -> None:
    """Prepare a study for a scheduler and print its cells: INDEX VARIANT SEED COMMAND.

    Writes study.toml, the evaluation rows and plan.json to --out. Planning an existing study
    again (with its own config, i.e. without --config/--set) only prints its cells.
    """
    from xrdiag.core.layout.dirs import StudyDir
    from xrdiag.core.study.config import load_study_config
    from xrdiag.core.study.plan import PLAN_FILE, plan_study

    given = config_path is not None or bool(overrides) or preset is not None
    stored = StudyDir(out).config_file.is_file()
    cfg = load_study_config(config_path, overrides, preset=preset) if given or not stored else None
    cells = plan_study(cfg, out)
    for cell in cells:
        click.echo(f"{cell.index}\t{cell.variant}\t{cell.seed}\t{cell.command}")
    last = len(cells) - 1
    _echo(
        f"{len(cells)} cells (indices 0-{last}) in {out / PLAN_FILE}; run each once, in any order, "
        f"on any machine that shares {out}; then: xrdiag study collect --out {out}"
    )


def _quiet(_name: str, _done: int, _total: int | None) -> None:
    return None


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@click.command("run-cell")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Study directory.")
@click.option("--index", type=int, required=True, help="The cell's index in the plan (from 0).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for this process (default: the libraries' own choice).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="If another process runs the cell, wait until it is done (then skip) or gone (then "
    "take over) instead of refusing.",
)
def run_cell_command(out: Path, index: int, threads: int | None, wait: bool) -> None:
    """Train and evaluate one cell of a planned study (a done cell is skipped).

    A cell that another live process runs is refused (or, with --wait, waited for). SIGINT or
    SIGTERM checkpoints and exits with status 130; the same command resumes the cell.
    """
    from xrdiag.core.study.claim import CellBusy
    from xrdiag.core.study.plan import run_planned_cell

    if threads is not None:
        from xrdiag.core.study.jobs import limit_threads

        limit_threads(threads)
    # SIGTERM (a scheduler's stop) while evaluating ends like Ctrl-C: the claim is released.
    # While training, the loop's own handler checkpoints first.
    signal.signal(signal.SIGTERM, _interrupt)
    label, waited = f"cell {index}", False
    _echo(f"cell {index} of {out}")
    # Bars only on a terminal: under a scheduler or `study --jobs` stderr is the cell's log.
    bars = step_progress(replace_phases=True) if sys.stderr.isatty() else nullcontext(_quiet)
    try:
        with bars as progress:
            while True:
                try:
                    label, status = run_planned_cell(out, index, progress, _echo)
                    break
                except CellBusy as busy:
                    if not wait:
                        raise
                    if not waited:
                        _echo(f"{busy}; waiting (checking every {WAIT_S:g} s)")
                    waited = True
                    time.sleep(WAIT_S)
    except KeyboardInterrupt:
        status = "interrupted"
    if status == "interrupted":
        _echo(f"{label}: interrupted; run the same command again to resume it")
        sys.exit(INTERRUPTED_EXIT)
    said = {
        "done": "trained and evaluated (DONE)",
        "skipped": "already done; nothing to do",
        "nonfinite": "stopped on a non-finite loss; the study leaves it out",
    }
    _echo(f"{label}: {said.get(status, status)}")
