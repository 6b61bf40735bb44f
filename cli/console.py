"""Terminal output shared by the commands: a stderr console and the step progress bars.

Every command (eval, embed, study, demo, report, compare) reports long steps the same way,
through a `progress(name, done, total)` callback that the engine calls and never renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Progress = Callable[[str, int, "int | None"], None]


def console(stderr: bool = False) -> Any:
    """A rich console (rich is imported here, not at start-up)."""
    from rich.console import Console

    return Console(stderr=stderr)


def progress_bars() -> Any:
    """Transient bars on stderr (description, bar, done/total, elapsed): every command's view."""
    from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    return Bars(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    )


@contextmanager
def step_progress(replace_phases: bool = False) -> Iterator[Progress]:
    """One transient line per named step on stderr: a bar when the total is known.

    With `replace_phases`, a step whose first word differs from the previous steps' removes
    them (a study shows the cells bar plus the current cell's phase, not every past phase);
    a step named "cells" always stays.
    """
    with progress_bars() as bar:
        tasks: dict[str, Any] = {}

        def update(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                if replace_phases:
                    group = name.split(" ")[0]
                    for old in [k for k in tasks if k != "cells" and not k.startswith(group)]:
                        bar.remove_task(tasks.pop(old))
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield update
