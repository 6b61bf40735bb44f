"""`xrdiag ui`: open the dashboard (bare `xrdiag` does the same)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("ui")
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to look for runs, studies and evaluations (default: the group's --runs, ./runs).",
)
@click.pass_context
def ui_command(ctx: click.Context, runs_dir: Path | None) -> None:
    """Open the terminal dashboard on a runs directory."""
    from xrdiag.tui.app import run_app

    if runs_dir is None:
        parent = ctx.parent.params.get("runs_dir") if ctx.parent is not None else None
        runs_dir = Path(parent) if parent is not None else Path("runs")
    run_app(runs_dir)
