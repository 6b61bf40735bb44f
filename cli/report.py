"""`xrdiag report` and `xrdiag compare`: parse flags, hand over to report.build and core.compare.

Exit codes: 0 done; 1 a `--fail-if` rule tripped (the offending cells are listed); 2 a user
error (bad input, malformed rule), one line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from xrdiag.cli.console import console, step_progress
from xrdiag.errors import UserError, comma_choices

EXIT_FAIL_IF = 1
DEFAULT_FORMATS = "md,html,json,csv,parquet"


def _formats(text: str) -> tuple[str, ...]:
    from xrdiag.report.build import FORMATS

    return comma_choices("--format", text, FORMATS)


_PATH = click.Path(path_type=Path)


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=_PATH)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True)
def report_command(inputs: tuple[Path, ...], out: Path, formats: str) -> None:
    """Write report.json, tables/, report.md and report.html for eval, run or study dirs.

    A run that is still training is reported as what exists so far, and the report says so.
    """
    from xrdiag.report.build import check_inputs, write_report

    chosen = _formats(formats)
    check_inputs(list(inputs))
    with step_progress() as progress:
        written = write_report(list(inputs), out, chosen, progress=progress)
    for fmt, path in written.items():
        click.echo(f"{fmt}: {path}")


@click.command("compare")
@click.argument("inputs", nargs=-1, required=True, type=_PATH)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the report formats (with the comparison) here.",
)
@click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True)
@click.option("--diff-only", is_flag=True, help="Keep only cells with |delta| > --threshold.")
@click.option("--threshold", type=float, default=0.01, show_default=True)
@click.option(
    "--fail-if",
    "fail_if",
    multiple=True,
    help="Exit 1 when a delta satisfies METRIC OP NUMBER, e.g. 'recall@1 < -0.02'; METRIC is "
    "a metric or its part before '|' (recall@1 covers recall@1|cos|none and the other "
    "variants); a METRIC that matches no compared cell exits 2. Repeatable.",
)
@click.option("--limit", type=int, default=30, show_default=True, help="Cells listed.")
@click.option(
    "--no-reeval",
    is_flag=True,
    help="Refuse instead of re-evaluating when the inputs used different rows.",
)
def compare_command(
    inputs: tuple[Path, ...],
    out: Path | None,
    formats: str,
    diff_only: bool,
    threshold: float,
    fail_if: tuple[str, ...],
    limit: int,
    no_reeval: bool,
) -> None:  # fmt: skip
    """Put checkpoints, eval dirs or runs side by side: every metric cell and its delta B - A.

    The first input is A. Significant marks cells whose bootstrap intervals do not overlap.
    """
    from xrdiag.core.compare import (
        check_rules,
        compare_results,
        failing_cells,
        load_comparable,
        parse_fail_if,
    )
    from xrdiag.report.compare_terminal import print_comparison, print_failures

    if len(inputs) < 2:
        raise UserError("compare: expected at least two inputs (A B [C ...])")
    if not threshold >= 0 or threshold == float("inf"):  # NaN compares false: it would pass
        raise UserError(f"--threshold {threshold}: expected a finite non-negative number")
    if limit < 0:
        raise UserError(f"--limit {limit}: expected a non-negative number of cells")
    rules = [parse_fail_if(text) for text in fail_if]
    chosen = _formats(formats) if out is not None else ()
    with step_progress() as progress:
        frames, labels, notes = load_comparable(
            list(inputs), reevaluate=not no_reeval, progress=progress
        )
    full = compare_results(frames, labels, threshold=threshold)
    check_rules(full, rules)  # before any output: a gate that checks nothing fails loudly
    shown = full.filter(full["exceeds"]) if diff_only else full
    term = console()
    print_comparison(term, shown, notes, limit, threshold, diff_only)
    if out is not None:
        from xrdiag.report.build import write_report

        with step_progress() as progress:
            written = write_report(list(inputs), out, chosen, progress, shown, notes)
        for fmt, path in written.items():
            click.echo(f"{fmt}: {path}")
    tripped = False
    for rule in rules:
        failing = failing_cells(full, rule)
        if failing.height:
            print_failures(console(stderr=True), failing, str(rule))
            tripped = True
    if tripped:
        sys.exit(EXIT_FAIL_IF)
