"""Study cells in separate processes: `study --jobs N`, and plan / run-cell / collect.

The tiny study (2 variants x 2 seeds, 3 steps) is run three ways, through the real command line
in real subprocesses, and must give the very same aggregate as the sequential `run_study`:
training is seeded and deterministic on a CPU, and every process here uses one CPU thread
(a different thread count changes float reductions in the last bits, not the method).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from xrdiag.core.events import read_events
from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.layout.status import FINISHED, INTERRUPTED, RUNNING
from xrdiag.core.study.cells import cell_log, cell_state
from xrdiag.core.study.claim import CellClaim, claim_path
from xrdiag.core.study.config import load_study_config
from xrdiag.core.study.jobs import (
    _Child,
    _least_used,
    check_devices,
    parse_devices,
    threads_per_job,
)
from xrdiag.core.study.runner import cell_dir, run_study
from xrdiag.errors import UserError

AGGREGATES = ("summary.parquet", "figures.parquet", "comparison.parquet")
TIMEOUT = 600  # generous: the machine is shared; no test asserts a time


def tiny_sets(tiny: Path, *extra: str) -> list[str]:
    return [
        f"train.model.name={tiny}",
        "train.model.freeze_layers=0",
        "train.model.max_length=24",
        "train.corpus.max_per_domain=20",
        "train.optim.max_steps=3",
        "train.optim.warmup_steps=0",
        "train.protocol.dev_max_per_domain=3",
        'study.variants=["baseline","hybrid"]',
        "study.seeds=[0,1]",
        "eval.max_per_domain=6",
        "eval.bootstrap=20",
        "eval.max_length=24",
        *extra,
    ]


def study_toml(tmp: Path, body: str = "") -> Path:
    path = tmp / "study.toml"
    path.write_text('[study]\npreset = "quick"\n' + body, encoding="utf-8")
    return path


def xrdiag(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "xrdiag", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def with_sets(sets: list[str]) -> list[str]:
    return [arg for item in sets for arg in ("--set", item)]


def assert_same_aggregates(a: Path, b: Path) -> None:
    for name in AGGREGATES:
        assert_frame_equal(pl.read_parquet(a / name), pl.read_parquet(b / name), check_exact=True)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sequential study, in this process, on one CPU thread like every cell process."""
    import torch

    tmp = tmp_path_factory.mktemp("sequential")
    cfg = load_study_config(study_toml(tmp), tiny_sets(tiny_model_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = run_study(cfg, tmp / "out")
    finally:
        torch.set_num_threads(threads)
    assert outcome.status == "finished" and outcome.done == 4
    return tmp / "out"


def test_study_jobs_matches_the_sequential_study(
    reference: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "par"
    config = study_toml(tmp_path)
    sets = with_sets(tiny_sets(tiny_model_dir))
    res = xrdiag("study", "--out", str(out), "--config", str(config), *sets, "--jobs", "2",
                 "--threads", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 cells at once, 1 CPU thread(s) each" in res.stderr
    assert "finished 4 cells" in res.stderr
    assert (out / "summary.md").is_file()
    assert_same_aggregates(reference, out)
    for variant in ("baseline", "hybrid"):
        for seed in (0, 1):
            cell = cell_dir(out, variant, seed)
            log = cell_log(cell).read_text(encoding="utf-8")
            assert "study run-cell" in log and "--threads 1" in log
            assert "trained and evaluated (DONE)" in log
            assert not claim_path(cell).exists()  # released by each cell process
            assert cell_state(cell).status == FINISHED


def test_plan_run_cell_collect_matches_the_sequential_study(
    reference: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "split"
    config = study_toml(tmp_path)
    res = xrdiag("study", "plan", "--out", str(out), "--config", str(config),
                 *with_sets(tiny_sets(tiny_model_dir)))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line.split("\t") for line in res.stdout.splitlines()]
    assert [(i, v, s) for i, v, s, _ in lines] == [
        ("0", "baseline", "0"), ("1", "baseline", "1"), ("2", "hybrid", "0"), ("3", "hybrid", "1")
    ]  # fmt: skip
    assert lines[2][3] == f"xrdiag study run-cell --out {out.resolve()} --index 2"
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert [c["command"] for c in plan["cells"]] == [line[3] for line in lines]
    assert plan["cells"][3]["dir"] == "cells/hybrid/seed-1"
    assert (out / "study.toml").is_file() and (out / "eval-corpus.parquet").is_file()
    again = xrdiag("study", "plan", "--out", str(out))  # the study's own config: harmless
    assert again.returncode == 0 and again.stdout == res.stdout

    first = xrdiag("study", "run-cell", "--out", str(out), "--index", "3", "--threads", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    partial = xrdiag("study", "collect", "--out", str(out))
    assert partial.returncode == 0, partial.stderr[-3000:]
    said = " ".join(partial.stderr.split())
    assert "collected 1 of 4 cells; not done: baseline/seed-0 (pending)" in said
    assert "hybrid/seed-0 (pending)" in said and (out / "comparison.parquet").is_file()

    # the other three at once, as a scheduler would start them, plus a repeat of a done one
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xrdiag",
                "study",
                "run-cell",
                "--out",
                str(out),
                "--index",
                str(i),
                "--threads",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for i in (0, 1, 2, 3)
    ]
    results = [p.communicate(timeout=TIMEOUT) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
    assert "hybrid/seed-1: already done; nothing to do" in results[3][1]
    final = xrdiag("study", "collect", "--out", str(out))
    assert final.returncode == 0, final.stderr[-3000:]
    assert "collected 4 of 4 cells" in final.stderr and "not done" not in final.stderr
    assert_same_aggregates(reference, out)


def test_run_cell_refuses_or_waits_for_a_cell_another_process_runs(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    res = xrdiag("study", "plan", "--out", str(out), "--config", str(study_toml(tmp_path)),
                 *with_sets(tiny_sets(tiny_model_dir)))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    cell = cell_dir(out, "baseline", 1)
    with CellClaim(cell, "baseline/seed-1"):
        refused = xrdiag("study", "run-cell", "--out", str(out), "--index", "1")
        state = cell_state(cell)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]  # after run-cell's "cell 1 of DIR"
    assert f"cell baseline/seed-1: being run by pid {os.getpid()} on" in line
    assert state.status == RUNNING and state.phase == "train"
    assert not cell.exists()  # nothing was written by the refused process
    # --wait: waits while the claim is held, then finds the cell done by its holder
    log = tmp_path / "wait.log"
    with CellClaim(cell, "baseline/seed-1"), log.open("w") as fh:
        waiter = subprocess.Popen(
            [sys.executable, "-m", "xrdiag", "study", "run-cell", "--out", str(out), "--index",
             "1", "--wait"],
            stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while "waiting" not in log.read_text() and waiter.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        cell.mkdir(parents=True)
        (cell / "DONE").write_text(json.dumps({"status": "done"}), encoding="utf-8")
    assert waiter.wait(timeout=TIMEOUT) == 0, log.read_text()
    said = log.read_text()
    assert said.count("being run by pid") == 1 and "waiting (checking every 5 s)" in said
    assert "baseline/seed-1: already done; nothing to do" in said
    bad = xrdiag("study", "run-cell", "--out", str(out), "--index", "4")
    assert bad.returncode == 2 and "--index 4: the study has 4 cells; expected 0 to 3" in bad.stderr
    nothing = xrdiag("study", "run-cell", "--out", str(tmp_path / "nope"), "--index", "0")
    assert nothing.returncode == 2 and "study plan --out" in nothing.stderr


def test_a_failed_cell_is_named_with_its_log_and_the_others_finish(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A variant whose model does not exist fails in its own process (exit 2 there); the
    baseline cell still finishes, and the study exits 1 naming the cell and its log."""
    out = tmp_path / "s"
    config = study_toml(tmp_path, '\n[variants.broken]\nmodel.name = "/nonexistent/model"\n')
    sets = tiny_sets(tiny_model_dir, 'study.variants=["baseline","broken"]', "study.seeds=[0]")
    res = xrdiag("study", "--out", str(out), "--config", str(config), *with_sets(sets),
                 "--devices", "cpu,cpu", "--threads", "1")  # fmt: skip
    assert res.returncode == 1, res.stderr[-3000:]
    log = cell_log(cell_dir(out, "broken", 0))
    said = " ".join(res.stderr.split())
    assert "1 of 2 cells failed:" in said and "broken/seed-0 (exit 2)" in said
    assert f"log: {log}" in said and "/nonexistent/model" in said
    assert "CUDA_VISIBLE_DEVICES=''" in log.read_text(encoding="utf-8")  # --devices cpu
    assert cell_state(cell_dir(out, "baseline", 0)).status == FINISHED
    assert not (out / "summary.parquet").exists()  # an incomplete study is not aggregated


def test_ctrl_c_stops_every_cell_cleanly(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGINT to the parent alone (as a terminal's Ctrl-C, since the cells run in their own
    session): each running cell checkpoints and exits, claims are released, the parent says
    how to resume and exits 0."""
    out = tmp_path / "s"
    sets = tiny_sets(
        tiny_model_dir,
        "train.optim.max_steps=5000",
        "train.run.checkpoint_every=100000",
        "study.keep_checkpoints=true",
    )
    config = study_toml(tmp_path)
    args = [sys.executable, "-m", "xrdiag", "study", "--out", str(out), "--config", str(config),
            *with_sets(sets), "--jobs", "2", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    cells = [cell_dir(out, "baseline", 0), cell_dir(out, "baseline", 1)]
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if all(cell_state(c).step for c in cells):  # both cells are training
            break
        time.sleep(0.2)
    pids = {read_events(RunDir(c).events_file)[0]["pid"] for c in cells}
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr[-3000:]
    assert "interrupted after 0 of 4 cells; resume with: xrdiag study --out" in stderr
    assert "--resume --jobs 2" in stderr
    for cell in cells:
        kinds = [e["kind"] for e in read_events(RunDir(cell).events_file)]
        assert kinds[-1] == "interrupted"  # the training loop's own clean stop
        assert RunDir(cell).latest_checkpoint() is not None
        assert not claim_path(cell).exists()
        assert cell_state(cell).status == INTERRUPTED
    assert not any(_alive(pid) for pid in pids)
    assert not cell_dir(out, "hybrid", 0).exists()  # nothing new started after the signal


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_devices_and_threads(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert parse_devices("cuda:0, cuda:1,cpu") == ["0", "1", ""]
    assert parse_devices(None) == []
    with pytest.raises(UserError, match="expected cuda:N or cpu"):
        parse_devices("gpu0")
    assert threads_per_job(2, cores=2) == 1 and threads_per_job(4, cores=2) == 1
    assert threads_per_job(3, cores=16) == 5
    pinned = load_study_config(study_toml(tmp_path),
                               tiny_sets(tiny_model_dir, "train.run.device=cpu"))  # fmt: skip
    with pytest.raises(UserError, match="train.run.device = 'cpu'"):
        check_devices(pinned, ["0", "1"])
    check_devices(pinned, [])  # no --devices: the config decides

    def on(*devices: str) -> list[_Child]:  # cells running on these devices
        return [_Child(i, tmp_path, None, None, d) for i, d in enumerate(devices)]  # type: ignore[arg-type]

    assert _least_used(["0", "1"], on()) == "0"
    assert _least_used(["0", "1"], on("0")) == "1"
    assert _least_used(["0", "1"], on("1")) == "0"  # the cell on cuda:0 ended first: it is free
    assert _least_used(["0", "1"], on("0", "1", "1")) == "0"
    assert _least_used([], on("0")) is None


def test_a_task_study_plans_its_pairs_once_and_collects_without_a_base_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A task-accuracy study: plan builds task.parquet (the cells then only read it), there is
    no base model to evaluate, and collect aggregates the predictions of the done cells."""
    out = tmp_path / "task"
    config = tmp_path / "task.toml"
    config.write_text('[study]\npreset = "task"\n', encoding="utf-8")
    sets = [
        f"train.model.name={tiny_model_dir}", "train.model.freeze_layers=0",
        "train.model.max_length=32", "train.optim.max_steps=3", "train.optim.warmup_steps=0",
        "train.batches.batch_size=8", "train.corpus.max_per_domain=20", "study.seeds=[0,1]",
        'study.variants=["baseline"]', 'eval.langs=["fr"]', "eval.task_max_per_domain=12",
        "eval.bootstrap=20",
    ]  # fmt: skip
    res = xrdiag("study", "plan", "--out", str(out), "--config", str(config), *with_sets(sets))
    assert res.returncode == 0, res.stderr[-3000:]
    task = out / "task.parquet"
    assert task.is_file() and len(res.stdout.splitlines()) == 2
    built = task.stat().st_mtime_ns
    cell = xrdiag("study", "run-cell", "--out", str(out), "--index", "1", "--threads", "1")
    assert cell.returncode == 0, cell.stderr[-3000:]
    collected = xrdiag("study", "collect", "--out", str(out))
    assert collected.returncode == 0, collected.stderr[-3000:]
    assert "collected 1 of 2 cells; not done: baseline/seed-0 (pending)" in collected.stderr
    assert task.stat().st_mtime_ns == built  # built once, by plan
    assert not (out / "base").exists()
    figures = pl.read_parquet(out / "figures.parquet")
    assert "accuracy" in set(figures["figure"])
