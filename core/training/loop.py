"""The training loop: one optimiser step at a time, events as it goes, resumable checkpoints.

`train(cfg, out)` builds the pairs under the zero-shot protocol, the model (with frozen
embeddings / lower layers as configured), the hybrid batch sampler, the objective and the
robust / domain-adversarial extras (core/training/step.py computes one batch's loss), then
steps AdamW with warm-up and decay, gradient accumulation and clipping. Everything random is
seeded and checkpointed (weights, optimiser, scheduler, sampler, RNGs, heads), so a resumed
run reaches the weights of an uninterrupted one. SIGINT/SIGTERM finish the step, checkpoint,
and return; a non-finite loss or gradient stops the run without writing a checkpoint.

Under `accelerate launch` every process runs this loop; only the main process writes run.toml,
events.jsonl and checkpoints and runs the dev evaluation, and the processes agree on stopping
(a signal in any of them, a non-finite loss in any of them) before acting on it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xrdiag.core.events import EventWriter
from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.layout.lock import RunLock
from xrdiag.core.provenance import git_hash, package_versions
from xrdiag.core.training.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    config_to_toml,
)
from xrdiag.core.training.model_setup import any_process, make_accelerator
from xrdiag.core.training.step import StepModel
from xrdiag.errors import UserError


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: `finished`, `interrupted` (signal), `stopped` (stop_after), `nonfinite`."""

    status: str
    step: int
    checkpoint: Path | None


def run_toml(cfg: TrainConfig, meta: dict[str, Any]) -> str:
    """The resolved config followed by a `[meta]` table (seed, versions, git hash, sizes)."""
    lines = ["", "[meta]"]
    scalars = {k: v for k, v in meta.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in meta.items() if isinstance(v, dict)}
    lines += [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]  # valid TOML scalars
    for name, table in tables.items():
        lines += ["", f"[meta.{name}]"]
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items()]
    return config_to_toml(cfg).rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def read_run_config(run: RunDir) -> TrainConfig:
    """The config a run was started with, from its run.toml (the `[meta]` table set aside)."""
    try:
        data = tomllib.loads(run.run_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--resume: {run.root} has no run.toml; expected a run directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{run.run_file}: invalid TOML ({exc})") from None
    data.pop("meta", None)
    return config_from_dict(data, str(run.run_file))


class _NoEvents:
    """The event writer of a non-main process: writes nothing."""

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"kind": kind, **fields}

    def __enter__(self) -> _NoEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _StopFlag:
    """Set by SIGINT/SIGTERM: the loop finishes its step, checkpoints and returns.

    A second signal interrupts at once (KeyboardInterrupt), without a checkpoint; one within
    DUPLICATE_S of the first is the same event delivered twice (under `accelerate launch`,
    Ctrl-C reaches a worker from the terminal and again from the launcher) and is ignored.
    """

    DUPLICATE_S = 0.5

    def __init__(self) -> None:
        self.signal: str | None = None
        self._at = 0.0

    def __call__(self, signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if self.signal is not None:
            if now - self._at < self.DUPLICATE_S:
                return
            raise KeyboardInterrupt  # a second Ctrl-C: the user wants out now
        self.signal, self._at = signal.Signals(signum).name, now


@contextmanager
def _signals(flag: _StopFlag) -> Iterator[None]:
    """Route SIGINT/SIGTERM to `flag` while training (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def train(
    cfg: TrainConfig,
    out: Path | str,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train under `cfg` into run directory `out` (fresh, or continued with `resume`).

    `stop_after` ends the run (with a checkpoint) once that many steps are done, as a signal
    would; the schedule still follows `optim.max_steps`, so resuming continues the same run.
    Every user mistake (config, corpus, model) is raised before anything is written.
    """
    run = RunDir(Path(out))
    accelerator = make_accelerator(cfg.run)
    if resume:
        if not run.exists():
            raise UserError(
                f"--resume: {run.root} holds no run (no run.toml); start it without --resume"
            )
        stored = read_run_config(run)
        if config_to_dict(stored) != config_to_dict(cfg):
            raise UserError(
                f"--resume: the config differs from {run.run_file}; resume with the run's own "
                "config (omit --config/--set) or start a new --out"
            )
    else:
        run.check_fresh()
    # One writer per run directory (core/layout/lock.py): the main process holds the lock for
    # the whole run. A resumed run is locked before anything is read; a fresh one once its
    # config, corpus and model are checked (nothing is written for a mistake), just before its
    # directory is created.
    lock = RunLock(run.root, command=_command())
    try:
        if resume:
            _acquire(lock, accelerator)
        return _train_locked(cfg, run, accelerator, resume, stop_after, echo, lock)
    finally:
        lock.release()


def _acquire(lock: RunLock, accelerator: Any) -> None:
    """Take the lock in the main process; a refusal there stops every process (none waits)."""
    refused = None
    if accelerator.is_main_process:
        try:
            lock.acquire()
        except UserError as exc:
            refused = exc
    if any_process(accelerator, refused is not None):
        raise refused or UserError(f"{lock.run_dir}: another process holds the run lock")


def _command() -> str:
    return " ".join(["xrdiag", *sys.argv[1:]])[:200] if sys.argv else "xrdiag train"


def _resume_hint(run: RunDir, latest: tuple[int, Path] | None) -> str:
    """What --resume can do when the newest checkpoint's files turn out to be damaged."""
    if latest is None:
        return ""
    earlier = [path for step, path in run.checkpoints() if step < latest[0]]
    if not earlier:
        return "; no earlier checkpoint: start the run again in a new --out"
    return (f"; the previous complete checkpoint is {earlier[-1].name}: move {latest[1]} out of "
            "checkpoints/ and --resume again to continue from it")  # fmt: skip


def _train_locked(
    cfg: TrainConfig,
    run: RunDir,
    accelerator: Any,
    resume: bool,
    stop_after: int | None,
    echo: Callable[[str], None] | None,
    lock: RunLock,
) -> TrainResult:
    """`train` under the run's lock (taken here for a fresh run)."""
    import torch

    main = accelerator.is_main_process
    accelerator.wait_for_everyone()  # every process has checked before the main one writes
    latest = run.latest_checkpoint() if resume else None
    torch.manual_seed(cfg.run.seed)
    random.seed(cfg.run.seed)
    np.random.seed(cfg.run.seed)
    model = StepModel(cfg, weights=latest[1] if latest else None, accelerator=accelerator,
                      damaged_hint=_resume_hint(run, latest))  # fmt: skip
    say = (echo or (lambda _m: None)) if main else (lambda _m: None)
    if not resume:
        _acquire(lock, accelerator)
        if main:
            run.check_fresh()  # another writer may have started it since the first check
    if not resume and main:
        meta = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": cfg.run.seed,
            "model_path": model.model_path,
            "corpus_fingerprint": model.corpus_fingerprint,
            "n_train_pairs": model.n_pairs,
            "n_dev_sentences": model.dev.height,
            "git": git_hash(Path(__file__).parent) or "unknown",
            "versions": package_versions(),
        }
        run.create(run_toml(cfg, meta))
    accelerator.wait_for_everyone()
    step = model.restore(latest[1]) if latest is not None else 0
    flag = _StopFlag()
    writer = EventWriter(run.events_file) if main else _NoEvents()
    with writer as events, _signals(flag):
        procs = {"processes": accelerator.num_processes,
                 "mixed_precision": cfg.run.mixed_precision, **_process()}  # fmt: skip
        if resume:
            events.write("resume", step=step, checkpoint=str(latest[1]) if latest else None,
                         **procs)  # fmt: skip
        else:
            events.write("start", step=0, max_steps=cfg.optim.max_steps, n_pairs=model.n_pairs,
                         device=model.device, trainable_params=model.trainable_params,
                         **procs)  # fmt: skip
            if main and cfg.run.eval_at_start:
                events.write("eval", step=0, **model.evaluate())
        result = _loop(cfg, run, model, events, step, flag, stop_after, say)
    if accelerator.num_processes > 1:
        accelerator.wait_for_everyone()
        accelerator.end_training()  # destroys the process group
    return result


def _loop(
    cfg: TrainConfig,
    run: RunDir,
    model: StepModel,
    events: EventWriter | _NoEvents,
    step: int,
    flag: _StopFlag,
    stop_after: int | None,
    say: Callable[[str], None],
) -> TrainResult:
    """Optimiser steps until max_steps, a signal, `stop_after`, or a non-finite loss."""
    o, r = cfg.optim, cfg.run
    acc = model.accelerator
    main = acc.is_main_process
    saved: Path | None = None
    while step < o.max_steps:
        stats = model.optimiser_step(step)
        if stats["nonfinite"]:
            events.write("nonfinite", step=step + 1, **stats["nonfinite"],
                         message="loss or gradient is NaN/inf; stopped, last good checkpoint kept",
                         checkpoint=_latest_str(run))  # fmt: skip
            say(f"step {step + 1}: non-finite loss or gradient; stopped ({_latest_str(run)})")
            return TrainResult("nonfinite", step, _latest_path(run))
        step += 1
        if step % r.log_every == 0 or step == o.max_steps:
            events.write("step", step=step, **stats["event"])
        if main and (step % r.eval_every == 0 or (step == o.max_steps and r.eval_at_end)):
            ev = events.write("eval", step=step, **model.evaluate())
            loss = stats["event"]["loss"]
            task = (ev.get("task") or {}).get("accuracy", {}).get("mean")
            extra = f", dev task accuracy {task:.3f}" if task is not None else ""
            say(f"step {step}: loss {loss:.4f}, dev recall@1 {ev['recall@1']['mean']:.3f}{extra}")
        if any_process(acc, flag.signal is not None) and flag.signal is None:
            flag.signal = "SIGTERM"  # another process was signalled: stop with it
        stop = flag.signal or (
            "stop_after" if stop_after is not None and step >= stop_after else None
        )
        if step % r.checkpoint_every == 0 or step == o.max_steps or stop:
            if main:
                saved = run.save_checkpoint(step, model.saver(step), r.keep_last, {"seed": r.seed})
                events.write("checkpoint", step=step, path=str(saved))
            else:
                saved = run.checkpoint_dir(step)
            acc.wait_for_everyone()  # nobody runs ahead of a checkpoint being written
        if stop:
            status = "stopped" if stop == "stop_after" else "interrupted"
            events.write(status, step=step, signal=flag.signal, checkpoint=str(saved))
            say(f"{status} at step {step}; checkpoint {saved}")
            return TrainResult(status, step, saved)
    events.write("end", step=step, checkpoint=str(saved) if saved else _latest_str(run))
    return TrainResult("finished", step, saved or _latest_path(run))


def _process() -> dict[str, Any]:
    """Who writes this run: a viewer tells "running" from "crashed" by probing this pid."""
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname()}


def _latest_path(run: RunDir) -> Path | None:
    latest = run.latest_checkpoint()
    return latest[1] if latest else None


def _latest_str(run: RunDir) -> str | None:
    path = _latest_path(run)
    return str(path) if path else None
