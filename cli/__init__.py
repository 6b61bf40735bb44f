"""The `xrdiag` command line: the group, `main`, and one module per command.

Commands parse flags, call the engine (`core/`) and print through `cli/console.py` or the
report's terminal views; no metric logic lives here. User errors become one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from xrdiag import __version__
from xrdiag.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, prog_name="xrdiag")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache directory (default: XRDIAG_CACHE_DIR or the platform cache).",
)
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where the dashboard looks for runs, studies and evaluations.",
)
@click.pass_context
def cli(ctx: click.Context, cache_dir: Path | None, runs_dir: Path) -> None:
    """Cross-lingual alignment and robustness diagnostics for multilingual encoders.

    With no command, opens the dashboard on --runs (the same as `xrdiag ui`).
    """
    if cache_dir is not None:
        os.environ["XRDIAG_CACHE_DIR"] = str(cache_dir)
    if ctx.invoked_subcommand is None:
        from xrdiag.tui.app import run_app

        run_app(runs_dir)


def _register_commands() -> None:
    """One module per command; none imports anything heavy at module level."""
    from xrdiag.cli.cache import cache
    from xrdiag.cli.corpus import corpus
    from xrdiag.cli.embed import embed
    from xrdiag.cli.eval import eval_command
    from xrdiag.cli.report import compare_command, report_command
    from xrdiag.cli.study import demo_command, study_command
    from xrdiag.cli.task import task
    from xrdiag.cli.train import train_command
    from xrdiag.cli.ui import ui_command

    for command in (corpus, embed, eval_command, cache, train_command, study_command,
                    demo_command, report_command, compare_command, ui_command,
                    task):  # fmt: skip
        cli.add_command(command)


_register_commands()


def run_command(command: click.Command, argv: list[str] | None, prog_name: str) -> None:
    """Invoke `command` with `argv`; exit 2 on a UserError, 130 on Ctrl-C."""
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except UserError as exc:
        click.echo(f"xrdiag: error: {exc}", err=True)
        sys.exit(UserError.exit_code)
    except click.exceptions.Abort:
        click.echo("xrdiag: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    run_command(cli, argv, "xrdiag")
