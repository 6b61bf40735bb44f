"""`xrdiag study` and `xrdiag demo`: flags, the plan, progress, and the answer table.

A study runs in this process, or with `--jobs N` as up to N cell processes at once
(core/study/jobs.py). The subcommands that split a study for a scheduler (`plan`, `run-cell`)
and the parallel progress view live in `cli/study_cells.py`; `collect` is here, as it ends
with this module's answer table. Progress goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from xrdiag.cli.console import console, step_progress
from xrdiag.errors import UserError

# Measured wall time of the presets (see the demo's closing note); said up front, not promised.
EXPECTED = {
    "quick": "about 10 minutes on 2 idle CPU cores from an empty cache (~45 s per cell)",
    "full": "not yet timed; by estimate 15-30 minutes on one GPU, hours on a CPU",
    "task": "not yet timed on a GPU; on 2 CPU cores a cell of 80 steps took 7-13 minutes",
}


def _plan(cfg: Any, out: Path, expected: str | None) -> str:
    """What the study will do, in a few lines."""
    base = cfg.base_config()
    p, e = base.protocol, cfg.eval
    frozen = base.model.freeze_layers
    rows = ("every sentence training never saw" if e.held_out
            else f"the {'+'.join(e.splits)} split(s)")  # fmt: skip
    langs = ", ".join(sorted({*e.langs, p.pivot})) if e.langs else "every language"
    cap = f" (<= {e.max_per_domain} ids per domain)" if e.max_per_domain else ""
    lines = [
        f"study -> {out}",
        f"  {len(cfg.variants)} variants ({', '.join(cfg.variants)}) x {len(cfg.seeds)} seeds "
        f"= {len(cfg.cells())} training runs of {base.optim.max_steps} steps "
        f"(batch {base.batches.batch_size}, lower {frozen} layers frozen) on model "
        f"{base.model.name!r}",
        f"  training sees {', '.join(p.train_langs)} x {', '.join(p.train_domains)}; every "
        f"checkpoint and the base model are evaluated on {rows} of {langs}, every domain"
        f"{cap}: recall@1 vs {p.pivot} both ways among the pair's common pool, xSIM, CKA, "
        "probes, geometry, PCA, last layer",
        f"  primary question: {' / '.join(cfg.stats.primary_key())} vs {cfg.baseline}; "
        f"each comparison states its minimum detectable effect",
    ]
    if e.outcome == "task":
        pairs = base.objective.pairs_file or (
            f"a paraphrase task built from the corpus ({', '.join(e.task_pairs)}, <= "
            f"{e.task_max_per_domain} ids per domain)"
        )
        lines[2] = (
            f"  a pair classifier trained on {', '.join(base.objective.train_lang_pairs)} pairs of "
            f"{pairs}; every checkpoint is evaluated on every dev and test pair: zero-shot task "
            "accuracy per language pair and domain, last layer"
        )
    if not cfg.keep_checkpoints:
        lines.append(
            "  each cell's checkpoint is deleted once it is evaluated (events and diagnostics "
            "stay); `xrdiag study --set study.keep_checkpoints=true` keeps them"
        )
    if expected:
        lines.append(f"  expected: {expected}; Ctrl-C stops cleanly and the same command resumes")
    return "\n".join(lines)


def _print_answer(out: Path) -> None:
    """The answer table, then base vs baseline and each variant vs the baseline with interval,
    p, MDE and the verdict sentence, from figures/comparison parquet."""
    import polars as pl
    from rich.markup import escape
    from rich.table import Table

    from xrdiag.core.layout import names
    from xrdiag.core.layout.dirs import StudyDir
    from xrdiag.core.layout.frames import read_frame
    from xrdiag.report.study_summary import answer_table, verdict

    term = console()
    study = StudyDir(out)
    figures = read_frame(study.file(names.FIGURES), "a study's figures (xrdiag study writes it)")
    comparison = read_frame(study.file(names.COMPARISON), "a study's comparison table")
    header, rows = answer_table(figures)
    task = bool(figures.height) and (figures["figure"] == "accuracy").any()
    what = "task accuracy" if task else "recall@1 vs the pivot"
    table = Table(title=f"{what}, last layer (95% CI over seeds and sentence ids)")
    table.add_column("figure", no_wrap=True)
    for row in rows:  # variants as columns: a handful fit a terminal, ten figures do not
        table.add_column(escape(row[0]), justify="right")
    for i, name in enumerate(header[1:], start=1):
        table.add_row(name, *[escape(row[i]) for row in rows])
    term.print(table)
    if "role" not in comparison.columns:
        term.print("comparison.parquet is from an older xrdiag: no calibrated verdicts")
    else:
        for role, title in (("training", "did training change anything?"),
                            ("primary", "the primary question")):  # fmt: skip
            part = comparison.filter(pl.col("role") == role)
            if part.height:
                term.print(f"[bold]{title}[/]")
                for r in part.iter_rows(named=True):
                    term.print(f"  {verdict(r)}", markup=False, highlight=False)
    term.print(
        f"results: {escape(str(out))}  (summary: {escape(str(study.file(names.SUMMARY_MD)))})"
    )


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _run(cfg: Any, out: Path, resume: bool, expected: str | None, again: str) -> None:
    from xrdiag.core.study.runner import run_study
    from xrdiag.report.study_summary import write_study_summary

    click.echo(_plan(cfg, out, expected), err=True)
    with step_progress(replace_phases=True) as progress:
        outcome = run_study(
            cfg, out, resume=resume, progress=progress, echo=lambda m: click.echo(m, err=True)
        )
    if outcome.status == "interrupted":
        click.echo(
            f"interrupted after {outcome.done} of {outcome.total} cells; resume with: {again}",
            err=True,
        )
        return
    write_study_summary(out)
    click.echo(f"finished {outcome.total} cells in {outcome.seconds / 60:.1f} min", err=True)
    _print_answer(out)


def _run_jobs(
    cfg: Any, out: Path, resume: bool, jobs: int, devices: str | None, threads: int | None
) -> None:
    """The study with up to `jobs` cells at once, each in its own process (core/study/jobs.py)."""
    from xrdiag.cli.study_cells import jobs_progress
    from xrdiag.core.study.jobs import parse_devices, run_parallel, threads_per_job
    from xrdiag.report.study_summary import write_study_summary

    visible = parse_devices(devices)
    per_job = threads or threads_per_job(jobs)
    on = f" on {devices}, round-robin" if devices else ""
    click.echo(_plan(cfg, out, None), err=True)
    click.echo(
        f"  {jobs} cells at once{on}, {per_job} CPU thread(s) each; each cell's output goes to "
        "cells/<variant>/seed-<s>.log",
        err=True,
    )
    with jobs_progress() as (progress, running):
        outcome = run_parallel(
            cfg, out, jobs=jobs, resume=resume, devices=visible, threads=threads,
            progress=progress, running=running, echo=lambda m: click.echo(m, err=True),
        )  # fmt: skip
    again = f"xrdiag study --out {out} --resume --jobs {jobs}" + (
        f" --devices {devices}" if devices else ""
    )
    if outcome.status == "interrupted":
        click.echo(
            f"interrupted after {outcome.done} of {outcome.total} cells; resume with: {again}",
            err=True,
        )
        return
    if outcome.status == "failed":
        click.echo(f"{len(outcome.failed)} of {outcome.total} cells failed:", err=True)
        for cell in outcome.failed:
            click.echo(f"  {cell.label} (exit {cell.returncode}): {cell.last_line}", err=True)
            click.echo(f"    log: {cell.log}", err=True)
        click.echo(
            f"{outcome.done} cells are done; retry the failed ones with: {again}  "
            f"(or aggregate the done ones: xrdiag study collect --out {out})",
            err=True,
        )
        sys.exit(1)
    write_study_summary(out)
    click.echo(f"finished {outcome.total} cells in {outcome.seconds / 60:.1f} min", err=True)
    _print_answer(out)


@click.group("study", invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Study TOML (see --print-config); presets and defaults fill what it leaves out.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Study directory.")
@click.option("--resume", is_flag=True, help="Continue the study in --out (finished cells kept).")
@click.option(
    "--preset",
    type=click.Choice(["quick", "full", "task"]),
    default=None,
    help="Start from this preset (default: the config's study.preset, else full).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key, e.g. --set train.optim.max_steps=50 or --set study.seeds=[0,1].",
)
@click.option("--print-config", is_flag=True, help="Print the default study config and exit.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Run up to N cells at once, each in its own process (default: 1, in this process; "
    "with --devices, one per device).",
)
@click.option(
    "--devices",
    default=None,
    metavar="cuda:0,cuda:1,...",
    help="Devices handed to the cells round-robin (each cell sees only its own GPU).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads per process (default: the cores divided among --jobs).",
)
@click.pass_context
def study_command(
    ctx: click.Context,
    config_path: Path | None,
    out: Path | None,
    resume: bool,
    preset: str | None,
    overrides: tuple[str, ...],
    print_config: bool,
    jobs: int | None,
    devices: str | None,
    threads: int | None,
) -> None:
    """Train variants x seeds under one zero-shot protocol, evaluate each, compare to the baseline.

    Writes STUDY_DIR/summary.parquet, figures.parquet, comparison.parquet and summary.md. Ctrl-C
    checkpoints the running cells and stops; --resume continues with the unfinished cells.
    --jobs N runs N cells at once; `plan`, `run-cell` and `collect` split a study for a
    scheduler (a SLURM array, a Kubernetes Indexed Job).
    """
    from xrdiag.core.study.config import default_study_text, load_study_config, read_study_config

    if ctx.invoked_subcommand is not None:
        flags = {"--config": config_path, "--out": out, "--resume": resume, "--preset": preset,
                 "--set": overrides, "--print-config": print_config, "--jobs": jobs,
                 "--devices": devices, "--threads": threads}  # fmt: skip
        given = [flag for flag, value in flags.items() if value]
        if given:
            raise UserError(
                f"xrdiag study {ctx.invoked_subcommand}: {', '.join(given)} goes after the "
                f"subcommand, e.g. xrdiag study {ctx.invoked_subcommand} --out DIR"
            )
        return
    if print_config:
        click.echo(default_study_text(preset or "full"), nl=False)
        return
    if out is None:
        raise UserError("--out: missing; expected the study directory to write (or --print-config)")
    if resume and config_path is None and not overrides and preset is None:
        cfg = read_study_config(out)
    else:
        cfg = load_study_config(config_path, overrides, preset=preset)
    if jobs is None:
        from xrdiag.core.study.jobs import parse_devices

        jobs = max(1, len(parse_devices(devices)))
    if jobs > 1 or devices:  # the presets' times are for one process: not said here
        _run_jobs(cfg, out, resume, jobs, devices, threads)
        return
    if threads is not None:
        from xrdiag.core.study.jobs import limit_threads

        limit_threads(threads)
    expected = EXPECTED.get(cfg.preset) if config_path is None and not overrides else None
    _run(cfg, out, resume, expected, f"xrdiag study --out {out} --resume")


@click.command("collect")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Study directory.")
def collect_command(out: Path) -> None:
    """Evaluate the base model if needed and aggregate the cells that are done.

    Writes summary.parquet, figures.parquet, comparison.parquet and summary.md, as a sequential
    study does, and names the cells that are not done (collect again once they are).
    """
    from xrdiag.core.study.plan import collect_study
    from xrdiag.report.study_summary import write_study_summary

    with step_progress(replace_phases=True) as progress:
        result = collect_study(out, progress, _echo)
    write_study_summary(out)
    if result.left_out:
        _echo(f"left out (non-finite loss): {', '.join(result.left_out)}")
    missing = ", ".join(f"{label} ({state})" for label, state in result.missing)
    _echo(f"collected {result.done} of {result.total} cells" + (
        f"; not done: {missing}" if missing else ""
    ))  # fmt: skip
    _print_answer(out)


def _register_subcommands() -> None:
    from xrdiag.cli.study_cells import plan_command, run_cell_command

    for command in (plan_command, run_cell_command, collect_command):
        study_command.add_command(command)


_register_subcommands()


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Study directory; rerunning on a demo study resumes it.",
)
@click.option(
    "--preset",
    type=click.Choice(["quick", "full"]),
    default="quick",
    show_default=True,
    help="quick: 100 steps per run on 2 CPU cores; full: 300 steps and 5 seeds, for a GPU.",
)
@click.option("--resume", is_flag=True, help="Continue the demo study in --out.")
def demo_command(out: Path, preset: str, resume: bool) -> None:
    """A small real study on the embedded model and bundled corpus: DANN x hybrid, 3 seeds.

    Says what it will do and how long it expects, shows progress, can be interrupted (Ctrl-C)
    and resumed by running it again, and prints the answer table with the results' path.
    """
    from xrdiag.core.layout.dirs import classify
    from xrdiag.core.study.config import load_study_config, read_study_config
    from xrdiag.core.study.presets import GRID_2X2

    if classify(out) == "study":
        cfg = read_study_config(out)
        if cfg.preset != preset:
            click.echo(f"{out} holds a {cfg.preset!r} demo; resuming it as it is", err=True)
        resume = True
    elif resume:
        raise UserError(f"--out {out}: no study to resume; run without --resume to start one")
    else:
        cfg = load_study_config(None, [f"study.variants={GRID_2X2}"], preset=preset)
    again = f"xrdiag demo --out {out}"
    _run(cfg, out, resume, EXPECTED.get(cfg.preset), again)
