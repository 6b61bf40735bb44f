"""Where a target's diagnostics live: an eval dir, a run, a checkpoint or its diagnostics.

A target is an eval dir, a run dir (its newest complete checkpoint), a checkpoint dir
`RUN/checkpoints/step-N`, or its diagnostics dir `RUN/diagnostics/step-N`. The dashboard
resolves to the newest checkpoint (computing its diagnostics when missing); `compare` and the
report read diagnostics that exist (`written_diagnostics`). Diagnostics are stale when the
checkpoint (with weights) is newer than its results, or there are none.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from xrdiag.core.layout import names
from xrdiag.core.layout.dirs import EvalDir, RunDir, classify
from xrdiag.errors import UserError

NOT_A_TARGET = (
    "not an eval dir (manifest.json + results.parquet), a run dir (run.toml) "
    "or a run's checkpoints/step-N"
)


@dataclass(frozen=True)
class DiagnosticsSource:
    """Where a target's diagnostics live, and the checkpoint they describe (None for an eval)."""

    label: str
    eval_dir: Path
    checkpoint: Path | None = None
    run_dir: Path | None = None


def run_label(run: Path) -> str:
    """`variant/seed-s` for a study cell, else the run directory's name."""
    if run.parent.parent.name == names.CELLS:
        return f"{run.parent.name}/{run.name}"
    return run.name


def has_weights(checkpoint: Path) -> bool:
    """Whether a checkpoint directory holds model weights (fixtures strip them)."""
    return any((checkpoint / name).is_file() for name in names.WEIGHT_FILES)


def _complete(checkpoint: Path) -> Path | None:
    return checkpoint if (checkpoint / names.COMPLETE).is_file() else None


def resolve_diagnostics(target: Path) -> DiagnosticsSource:
    """The diagnostics of a target (see the module docstring); anything else is a user error."""
    target = Path(target)
    kind = classify(target)
    parent = target.parent
    if kind == "run":
        run = RunDir(target)
        latest = run.latest_checkpoint()
        done = run.evaluated()
        if latest is not None:
            ckpt = latest[1]
            diag = run.diagnostics(ckpt.name).root
            # A weightless newest checkpoint cannot be evaluated: show the newest diagnostics.
            if diag.is_dir() or has_weights(ckpt) or not done:
                return DiagnosticsSource(f"{run_label(target)}/{ckpt.name}", diag, ckpt, target)
        if done:
            name = done[-1].root.name
            return DiagnosticsSource(
                f"{run_label(target)}/{name}",
                done[-1].root,
                _complete(run.checkpoints_dir / name),
                target,
            )
        raise UserError(f"{target}: run has no complete checkpoint and no diagnostics yet")
    if parent.name == names.CHECKPOINTS and classify(parent.parent) == "run":
        if not (target / names.COMPLETE).is_file():
            raise UserError(f"{target}: checkpoint is incomplete (no {names.COMPLETE} marker)")
        run_dir = parent.parent
        diag = RunDir(run_dir).diagnostics(target.name).root
        return DiagnosticsSource(f"{run_label(run_dir)}/{target.name}", diag, target, run_dir)
    if parent.name == names.DIAGNOSTICS and classify(parent.parent) == "run":
        run_dir = parent.parent
        ckpt = _complete(RunDir(run_dir).checkpoints_dir / target.name)
        return DiagnosticsSource(f"{run_label(run_dir)}/{target.name}", target, ckpt, run_dir)
    if kind == "eval":
        return DiagnosticsSource(target.name, target)
    raise UserError(f"{target}: {NOT_A_TARGET}")


def written_diagnostics(path: Path) -> tuple[EvalDir, str, str | None]:
    """Existing diagnostics behind an input, a label for them, and a note (or None).

    An eval dir is itself; a run dir is its newest written diagnostics (noted when the newest
    checkpoint has none yet); a checkpoint dir is `RUN/diagnostics/step-N`.
    """
    path = Path(path)
    kind = classify(path)
    if kind == "eval":
        return EvalDir(path), path.name, None
    if kind == "run":
        run = RunDir(path)
        diag = run.evaluated()
        if not diag:
            raise UserError(f"{path}: run has no diagnostics yet (expected diagnostics/step-N/)")
        name, note = diag[-1].root.name, None
        latest = run.latest_checkpoint()
        if latest is not None and latest[1].name != name:
            note = f"{path.name}: newest checkpoint {latest[1].name} has no diagnostics yet; "
            note += f"using {name}"
        return diag[-1], f"{run_label(path)}@{name}", note
    if kind == "study":
        raise UserError(f"{path}: a study; compare its cells (e.g. {path}/cells/<variant>/seed-0)")
    if path.parent.name == names.CHECKPOINTS and names.step_of(path.name) is not None:
        found = RunDir(path.parent.parent).diagnostics(path.name)
        if found.exists():
            return found, f"{run_label(path.parent.parent)}@{path.name}", None
        raise UserError(f"{path}: checkpoint has no diagnostics (expected {found.root})")
    raise UserError(
        f"{path}: not an eval dir (manifest.json + results.parquet), a run dir (run.toml) "
        "or a checkpoint dir"
    )


def stale_reason(source: DiagnosticsSource) -> str | None:
    """Why the diagnostics should be (re)computed, or None when they are current or cannot be."""
    ckpt = source.checkpoint
    results = EvalDir(source.eval_dir).results
    if ckpt is None or not has_weights(ckpt):
        return None
    if not results.is_file():
        return "no diagnostics yet"
    if (ckpt / names.COMPLETE).stat().st_mtime > results.stat().st_mtime:
        return "checkpoint newer than its diagnostics"
    return None


def run_corpus(run_dir: Path | None) -> str:
    """The corpus a run trained on (`[corpus] path` of run.toml), else the bundled default."""
    if run_dir is None:
        return "default"
    try:
        config = tomllib.loads(RunDir(run_dir).run_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return "default"
    return str(config.get("corpus", {}).get("path", "default"))
