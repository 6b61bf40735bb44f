"""Run a click command the way every xrdiag entry point does.

User errors become one line on stderr and exit code 2, never a traceback; shared by `xrdiag`
(cli.py) and the standalone training entry point (core/training/cli_train.py).
"""

from __future__ import annotations

import sys

import click

from xrdiag.errors import UserError


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
