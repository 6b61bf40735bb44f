"""Which eval dir a dashboard target's diagnostics live in, and whether they need computing.

A target is an eval dir, a run dir (its newest complete checkpoint), a checkpoint dir
`RUN/checkpoints/step-N` or its diagnostics dir `RUN/diagnostics/step-N`. Diagnostics are
stale when the checkpoint (with weights) is newer than its results, or there are none.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from xrdiag.core.discover import classify
from xrdiag.core.runs import COMPLETE, RunDir
from xrdiag.errors import UserError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass(frozen=True)
class DiagnosticsSource:
    """Where a target's diagnostics live, and the checkpoint they describe (None for an eval)."""

    label: str
    eval_dir: Path
    checkpoint: Path | None = None
    run_dir: Path | None = None


def resolve_target(target: Path) -> DiagnosticsSource:
    """An eval dir, a run dir (its newest complete checkpoint) or `RUN/checkpoints/step-N`."""
    target = Path(target)
    kind = classify(target)
    parent = target.parent
    if kind == "run":
        latest = RunDir(target).latest_checkpoint()
        done = sorted(p for p in (target / "diagnostics").glob("step-*") if classify(p) == "eval")
        if latest is not None:
            ckpt = latest[1]
            diag = target / "diagnostics" / ckpt.name
            # A weightless newest checkpoint cannot be evaluated: show the newest diagnostics.
            if diag.is_dir() or has_weights(ckpt) or not done:
                return DiagnosticsSource(f"{_run_label(target)}/{ckpt.name}", diag, ckpt, target)
        if done:
            ckpt = target / "checkpoints" / done[-1].name
            return DiagnosticsSource(
                f"{_run_label(target)}/{done[-1].name}",
                done[-1],
                ckpt if (ckpt / COMPLETE).is_file() else None,
                target,
            )
        raise UserError(f"{target}: run has no complete checkpoint and no diagnostics yet")
    if parent.name == "checkpoints" and classify(parent.parent) == "run":
        if not (target / COMPLETE).is_file():
            raise UserError(f"{target}: checkpoint is incomplete (no {COMPLETE} marker)")
        run_dir = parent.parent
        return DiagnosticsSource(
            f"{_run_label(run_dir)}/{target.name}",
            run_dir / "diagnostics" / target.name,
            target,
            run_dir,
        )
    if parent.name == "diagnostics" and classify(parent.parent) == "run":
        run_dir = parent.parent
        ckpt = run_dir / "checkpoints" / target.name
        return DiagnosticsSource(
            f"{_run_label(run_dir)}/{target.name}",
            target,
            ckpt if (ckpt / COMPLETE).is_file() else None,
            run_dir,
        )
    if kind == "eval":
        return DiagnosticsSource(target.name, target)
    raise UserError(
        f"{target}: not an eval dir (manifest.json + results.parquet), a run dir (run.toml) "
        "or a run's checkpoints/step-N"
    )


def _run_label(run: Path) -> str:
    """`variant/seed-s` for a study cell, else the run directory's name."""
    return f"{run.parent.name}/{run.name}" if run.parent.parent.name == "cells" else run.name


def has_weights(checkpoint: Path) -> bool:
    """Whether a checkpoint directory holds model weights (fixtures strip them)."""
    return any((checkpoint / name).is_file() for name in WEIGHT_FILES)


def stale_reason(source: DiagnosticsSource) -> str | None:
    """Why the diagnostics should be (re)computed, or None when they are current or cannot be."""
    ckpt = source.checkpoint
    results = source.eval_dir / "results.parquet"
    if ckpt is None or not has_weights(ckpt):
        return None
    if not results.is_file():
        return "no diagnostics yet"
    if (ckpt / COMPLETE).stat().st_mtime > results.stat().st_mtime:
        return "checkpoint newer than its diagnostics"
    return None


def run_corpus(run_dir: Path | None) -> str:
    """The corpus a run trained on (`[corpus] path` of run.toml), else the bundled default."""
    if run_dir is None:
        return "default"
    try:
        config = tomllib.loads((run_dir / "run.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return "default"
    return str(config.get("corpus", {}).get("path", "default"))
