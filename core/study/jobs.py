"""`xrdiag study --jobs N`: up to N cells at once, each an `xrdiag study run-cell` process.

Processes, not threads or a multiprocessing pool: a cell runs the very command a scheduler
runs (core/study/plan.py), a crash, a leak or a CUDA context stays in its own process, and its
stdout and stderr go to its own log (`cells/<variant>/seed-<s>.log`). The parent evaluates the
base model first, keeps up to N cells running, reports cells done and the running cells'
steps (read from their events.jsonl), and aggregates once every cell is done, exactly as the
sequential study does (same cell configs, same DONE markers, same aggregate).

Threads: N processes that each use every core would oversubscribe the CPU, so each gets
max(1, cores // N) (OMP/MKL/OpenBLAS through the environment, torch through `--threads`).
Devices: `--devices cuda:0,cuda:1` gives cells GPUs round-robin through CUDA_VISIBLE_DEVICES,
each cell seeing its GPU as its only one. The config's device stays `auto`, so each cell's
run.toml is what a sequential study writes and any process, on any GPU, can resume any cell
(the training loop refuses to resume a run whose config differs, device included).

Stopping: children run in their own session, so a terminal's Ctrl-C reaches the parent alone,
which forwards one SIGINT to each child: the training loop checkpoints and the cell exits,
and `--resume` continues the study. A second signal is forwarded too (children stop at once,
without a checkpoint), a third kills them. A cell that exits with an error is reported with its
log; the others go on; the study then ends `failed`, naming them, and is not aggregated.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrdiag.core.events import EventTail
from xrdiag.core.layout.dirs import RunDir, done_marker
from xrdiag.core.study.cells import cell_label, cell_log
from xrdiag.core.study.claim import claim_holder
from xrdiag.core.study.config import StudyConfig
from xrdiag.core.study.runner import Progress, StudyOutcome, _prepare, cell_dir, prepare_shared
from xrdiag.errors import UserError

POLL_S = 0.5
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Running cells for the view: label -> (phase, step, max_steps); phase train, eval or elsewhere.
Running = Callable[[Mapping[str, tuple[str, int, int | None]]], None]


@dataclass(frozen=True)
class FailedCell:
    """A cell whose process exited with an error: its exit code, log and the log's last line."""

    label: str
    returncode: int
    log: Path
    last_line: str = ""


@dataclass
class JobsOutcome(StudyOutcome):
    """A parallel study's outcome: `finished`, `interrupted` or `failed` (with the cells)."""

    failed: list[FailedCell] = field(default_factory=list)


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a scheduler's allocation)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """CPU threads per cell process so that `jobs` of them share the cores without fighting."""
    return max(1, (cores or available_cores()) // max(1, jobs))


def limit_threads(threads: int) -> None:
    """Make this process use `threads` CPU threads: the BLAS/OpenMP pools (read when a library
    loads, hence the environment) and torch's intra-op pool."""
    import torch

    for name in THREAD_VARS:
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


def parse_devices(text: str | None) -> list[str]:
    """`cuda:0,cuda:1,cpu` -> the CUDA_VISIBLE_DEVICES value of each (`0`, `1`, empty)."""
    if not text:
        return []
    found = []
    for part in (p.strip() for p in text.split(",")):
        if part == "cpu":
            found.append("")
        elif part.startswith("cuda:") and part[5:].isdigit():
            found.append(part[5:])
        else:
            raise UserError(
                f"--devices {text}: {part!r}; expected cuda:N or cpu, e.g. cuda:0,cuda:1"
            )
    return found


def check_devices(cfg: StudyConfig, devices: Sequence[str]) -> None:
    """Devices are handed out through CUDA_VISIBLE_DEVICES: the config must not pin one."""
    if not devices:
        return
    pinned = {"train.run.device": cfg.base_config().run.device, "eval.device": cfg.eval.device}
    for key, value in pinned.items():
        if value != "auto":
            raise UserError(
                f"--devices: the study sets {key} = {value!r}; --devices needs it to be 'auto' "
                "(each cell sees only its own device)"
            )


@dataclass
class _Child:
    index: int
    cell: Path
    proc: subprocess.Popen[bytes]
    tail: EventTail
    device: str | None = None
    max_steps: int | None = None
    step: int = 0
    trained: bool = False

    @property
    def label(self) -> str:
        return cell_label(self.cell)

    def poll_events(self) -> None:
        for event in self.tail.poll():
            kind = event.get("kind")
            if kind == "start" and isinstance(event.get("max_steps"), int):
                self.max_steps = event["max_steps"]
            if isinstance(event.get("step"), int):
                self.step = event["step"]
            self.trained = kind == "end" or (self.trained and kind not in ("start", "resume"))


class _Signals:
    """Counts SIGINT/SIGTERM/SIGHUP sent to the parent; the loop forwards them to children."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _signum: int, _frame: Any) -> None:
        self.count += 1


@contextmanager
def _catch(flag: _Signals) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hangup = [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []  # the terminal closed
    wanted = [signal.SIGINT, signal.SIGTERM, *hangup]
    old = {s: signal.signal(s, flag) for s in wanted}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def cell_command(out: Path, index: int, threads: int) -> list[str]:
    """The child's argv: this interpreter running `xrdiag study run-cell`."""
    return [sys.executable, "-m", "xrdiag", "study", "run-cell", "--out", str(Path(out).resolve()),
            "--index", str(index), "--threads", str(threads)]  # fmt: skip


def _launch(out: Path, index: int, cell: Path, threads: int, device: str | None) -> _Child:
    env = {**os.environ, **{name: str(threads) for name in THREAD_VARS}, "PYTHONUNBUFFERED": "1"}
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    argv = cell_command(out, index, threads)
    log = cell_log(cell)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        where = f" CUDA_VISIBLE_DEVICES={device!r}" if device is not None else ""
        fh.write(f"=== {stamp}{where} {shlex.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent, which forwards it
        )  # fmt: skip
    return _Child(index, cell, proc, EventTail(RunDir(cell).events_file, tolerant=True), device)


def _last_line(log: Path) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = [ln for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def run_parallel(
    cfg: StudyConfig,
    out: Path,
    *,
    jobs: int,
    resume: bool = False,
    devices: Sequence[str] = (),
    threads: int | None = None,
    progress: Progress | None = None,
    running: Running | None = None,
    echo: Callable[[str], None] | None = None,
) -> JobsOutcome:
    """Evaluate the base model, run every unfinished cell in up to `jobs` processes, aggregate.

    `devices`: CUDA_VISIBLE_DEVICES values handed to cells round-robin (`parse_devices`);
    `threads`: CPU threads per cell (default: the cores divided among the jobs).
    """
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: expected 1 or more")
    check_devices(cfg, devices)
    report: Progress = progress or (lambda _n, _d, _t: None)
    show: Running = running or (lambda _r: None)
    say = echo or (lambda _m: None)
    out = Path(out)
    started = time.perf_counter()
    _prepare(cfg, out, resume)
    cells = [cell_dir(out, v, s) for v, s in cfg.cells()]
    total = len(cells)
    per_job = threads or threads_per_job(jobs)
    try:
        prepare_shared(cfg, out, report, say)
    except KeyboardInterrupt:
        return JobsOutcome("interrupted", out, _count_done(cells), total, {}, _since(started))
    queue = [i for i, cell in enumerate(cells) if done_marker(cell) is None]
    done = total - len(queue)
    report("cells", done, total)
    children: dict[int, _Child] = {}
    failed: list[FailedCell] = []
    flag = _Signals()
    forwarded = 0
    with _catch(flag):
        try:
            while queue or children:
                for index, child in list(children.items()):
                    child.poll_events()
                    code = child.proc.poll()
                    if code is None:
                        continue
                    del children[index]
                    marker = done_marker(child.cell)
                    if code == 0 and marker is not None:
                        done += 1
                        report("cells", done, total)
                        if marker.get("status") != "done":
                            say(f"cell {child.label}: {marker.get('status')} (left out of the "
                                "aggregate, as in a sequential study)")  # fmt: skip
                    elif not flag.count:
                        log = cell_log(child.cell)
                        failed.append(FailedCell(child.label, code, log, _last_line(log)))
                        say(f"cell {child.label} failed (exit {code}); log: {log}")
                if flag.count > forwarded:
                    forwarded = flag.count
                    queue.clear()
                    if forwarded == 1:
                        say("stopping: each running cell checkpoints and exits (again: at once)")
                    for child in children.values():
                        _signal(child.proc, signal.SIGINT if forwarded < 3 else signal.SIGKILL)
                elsewhere: list[int] = []
                while queue and len(children) < jobs:
                    index = queue.pop(0)
                    cell = cells[index]
                    if done_marker(cell) is not None:  # finished by another process meanwhile
                        done += 1
                        report("cells", done, total)
                        continue
                    holder = claim_holder(cell)
                    if holder is not None and holder.alive:  # run elsewhere: check again later
                        elsewhere.append(index)
                        continue
                    device = _least_used(devices, children.values())
                    children[index] = _launch(out, index, cell, per_job, device)
                    say(f"cell {cell_label(cell)} started" + (
                        f" on cuda:{device}" if device else " on cpu" if device == "" else ""
                    ))  # fmt: skip
                queue[:0] = elsewhere
                show(_view(children, [cells[i] for i in elsewhere]))
                if queue or children:
                    time.sleep(POLL_S)
        finally:
            _stop_all(children)
    show({})
    seconds = _since(started)
    if flag.count:
        return JobsOutcome("interrupted", out, _count_done(cells), total, {}, seconds)
    if failed:
        return JobsOutcome("failed", out, done, total, {}, seconds, failed)
    from xrdiag.core.study.aggregate import aggregate_study

    files = aggregate_study(out, cfg)
    return JobsOutcome("finished", out, done, total, files, _since(started))


def _least_used(devices: Sequence[str], running: Iterable[_Child]) -> str | None:
    """The device with the fewest running cells (the first such): round-robin that stays even
    when cells finish out of order."""
    if not devices:
        return None
    load = Counter(child.device for child in running)
    return min(devices, key=lambda d: (load[d], devices.index(d)))


def _view(
    children: Mapping[int, _Child], elsewhere: Sequence[Path]
) -> dict[str, tuple[str, int, int | None]]:
    view = {
        c.label: ("eval" if c.trained else "train", c.step, c.max_steps) for c in children.values()
    }
    view.update({cell_label(cell): ("elsewhere", 0, None) for cell in elsewhere})
    return view


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _stop_all(children: Mapping[int, _Child], grace_s: float = 60.0) -> None:
    """Children still running when the parent leaves its loop (an error in the parent): ask
    them to checkpoint and exit, then kill what is left after `grace_s`."""
    if not children:
        return
    for child in children.values():
        _signal(child.proc, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for child in children.values():
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def _count_done(cells: Sequence[Path]) -> int:
    return sum(done_marker(cell) is not None for cell in cells)


def _since(started: float) -> float:
    return time.perf_counter() - started
