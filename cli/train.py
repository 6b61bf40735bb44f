"""`xrdiag train`: parse the flags, load and validate the config, run the loop.

User errors print one line and exit 2, before anything is written. `accelerate launch -m xrdiag
train ...` runs it in every process; only the main one reports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from xrdiag.errors import UserError

EXIT_NONFINITE = 1


@click.command("train")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML config (see --print-config); defaults for every key left out.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory: run.toml, events.jsonl, checkpoints/ (must be new unless --resume).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --out from its newest complete checkpoint."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key, e.g. --set dann.lambda_max=0.5 (repeatable; a leading "
    "'method.' is accepted: method.dann.lambda_max=0.5).",
)
@click.option("--print-config", is_flag=True, help="Print the complete commented default config.")
def train_command(
    config_path: Path | None,
    out: Path | None,
    resume: bool,
    overrides: tuple[str, ...],
    print_config: bool,
) -> None:
    """Fine-tune an encoder (contrastive or pair classification; RS-RP, RS-DA, FGSM/PGD, DANN,
    hybrid batches), writing events and checkpoints to a run directory.

    SIGINT/SIGTERM finish the current step, write a checkpoint and exit 0; --resume continues.
    A NaN/inf loss stops the run (exit 1), keeping the last good checkpoint.
    """
    from xrdiag.core.training.config import default_config_text, load_config

    if print_config:
        click.echo(default_config_text(), nl=False)
        return
    if out is None:
        raise UserError("--out: missing; expected the run directory to write (or --print-config)")
    from xrdiag.core.layout.dirs import RunDir
    from xrdiag.core.training.loop import read_run_config, train

    if resume and config_path is None and not overrides:
        cfg = read_run_config(RunDir(out))
    else:
        cfg = load_config(config_path, overrides)
    result = train(cfg, out, resume=resume, echo=lambda m: click.echo(m, err=True))
    if not _main_process():
        sys.exit(EXIT_NONFINITE if result.status == "nonfinite" else 0)
    if result.status == "nonfinite":
        click.echo(
            f"xrdiag: training stopped: non-finite loss at step {result.step + 1}; "
            f"last good checkpoint: {result.checkpoint}",
            err=True,
        )
        sys.exit(EXIT_NONFINITE)
    click.echo(f"{result.status} at step {result.step}: {result.checkpoint}")


def _main_process() -> bool:
    """False in the other processes of `accelerate launch`: only the main one reports."""
    from accelerate import PartialState

    return PartialState().is_main_process
