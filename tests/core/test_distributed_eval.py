"""`xrdiag eval` shared by the processes of `accelerate launch` (gloo on the CPU): the same
results as one process, one writer, and user errors that end every process without a hang.

The equality test goes through the real launcher. The others start the two processes by hand
with the environment torchrun gives them (RANK, WORLD_SIZE, MASTER_ADDR, …), each in its own
working directory and cache, so what each process wrote and said can be told apart.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.cache.store import ArrayStore
from xrdiag.cli import main

TIMEOUT_S = 240  # a hang fails the test instead of blocking the suite

# 5 domains x 5 ids x 3 languages = 75 rows: an odd count, so the two shares differ in size.
SLICE = ["--langs", "en,fr,ru", "--domains", "medical,travel,news,encyclopedia,conversation",
         "--max-per-domain", "5", "--seed", "0"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eval_args(model: Path, out: Path | str, *extra: str) -> list[str]:
    return ["eval", "--model", str(model), "--out", str(out), *SLICE, *extra]


def keys(cache: Path) -> set[str]:
    return {entry.key for entry in ArrayStore(cache / "embeddings").entries()}


def test_two_processes_give_the_results_of_one(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every layer, every analysis (robustness embeds more texts on the main process alone
    while the worker waits): the same rows and results, and the same cache entries."""
    extra = ["--layers", "all", "--bootstrap", "50", "--json", "--analyses",
             "retrieval,xsim,cka,probe,geometry,projection,robustness"]  # fmt: skip
    two, one = tmp_path / "two", tmp_path / "one"
    launcher = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
        str(free_port()), "-m", "xrdiag", *eval_args(tiny_model_dir, two, *extra),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XRDIAG_CACHE_DIR": str(tmp_path / "cache-2")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["rows"] == 75  # one summary: the main process's
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["encoding"]["processes"] == 2
    assert manifest["embeddings_from_cache"] == [] and manifest["analyses_from_cache"] == []

    monkeypatch.setenv("XRDIAG_CACHE_DIR", str(tmp_path / "cache-1"))
    main(eval_args(tiny_model_dir, one, *extra))  # one process, in this one
    assert json.loads((one / "manifest.json").read_text())["encoding"]["processes"] == 1

    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    for name in ("rows.parquet", "queries.parquet"):
        assert pl.read_parquet(two / name).equals(pl.read_parquet(one / name))
    a, b = pl.read_parquet(two / "results.parquet"), pl.read_parquet(one / "results.parquet")
    labels = ["checkpoint", "analysis", "metric", "layer", "src_lang", "tgt_lang", "domain"]
    assert a.height > 1000 and a.select(labels).equals(b.select(labels))
    assert a["analysis"].n_unique() == 6  # the projection has a file of its own
    close(a, b, ["value", "ci_low", "ci_high", "n", "pool"])
    a, b = (pl.read_parquet(d / "projection.parquet") for d in (two, one))
    assert a.drop("x", "y").equals(b.drop("x", "y"))
    close(a, b, ["x", "y"])
    # the cache key holds no process count: both runs stored the same entries
    assert keys(tmp_path / "cache-2") == keys(tmp_path / "cache-1")


def close(a: pl.DataFrame, b: pl.DataFrame, columns: list[str]) -> None:
    for column in columns:
        x, y = (f[column].cast(pl.Float64).to_numpy() for f in (a, b))
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5, equal_nan=True, err_msg=column)


def launch_by_hand(argv: list[str], root: Path) -> list[tuple[int, str, str, Path]]:
    """Both processes of a 2-process launch, each in its own directory with its own cache:
    (exit code, stdout, stderr, directory) per rank. A process still running after
    TIMEOUT_S is killed and fails the test."""
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        where = root / f"rank{rank}"
        where.mkdir(parents=True)
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "OMP_NUM_THREADS": "1", "XRDIAG_CACHE_DIR": str(where / "cache")}  # fmt: skip
        procs.append(
            subprocess.Popen([sys.executable, "-m", "xrdiag", *argv], cwd=where, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )  # fmt: skip
    results = []
    try:
        for rank, proc in enumerate(procs):
            out, err = proc.communicate(timeout=TIMEOUT_S)
            results.append((proc.returncode, out, err, root / f"rank{rank}"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_bad_input_is_one_line_and_exit_2(tiny_model_dir: Path, tmp_path: Path) -> None:
    argv = eval_args(tiny_model_dir, "ev", "--analyses", "retrieval")
    argv[argv.index("en,fr,ru")] = "en,xx"
    (rc0, _, err0, _), (rc1, out1, err1, worker_dir) = launch_by_hand(argv, tmp_path)
    assert rc0 == 2 and lines(err0) == [lines(err0)[0]]
    assert lines(err0)[0].startswith("xrdiag: error: --langs")
    assert rc1 == 2 and out1 == "" and lines(err1) == []  # the worker fails silently
    assert list(worker_dir.iterdir()) == []


def test_a_failure_after_the_encoding_ends_the_worker_too(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The task analysis without its pairs fails on the main process after the worker has
    encoded its share, handed it over and waits: the main process's status reaches the worker,
    which exits 2 without a word, having written nothing (a relative --out and a cache of its
    own: its directory stays empty, while the main process cached the gathered embeddings).
    The success path ends the same way with status 0 (the launcher test)."""
    argv = eval_args(tiny_model_dir, "ev", "--analyses", "retrieval,task", "--bootstrap", "0")
    (rc0, _, err0, main_dir), (rc1, out1, err1, worker_dir) = launch_by_hand(argv, tmp_path)
    assert rc0 == 2 and len(lines(err0)) == 1 and "--task" in err0
    assert rc1 == 2 and out1 == "" and lines(err1) == []
    assert keys(main_dir / "cache") and not (main_dir / "ev").exists()
    assert list(worker_dir.iterdir()) == []


def test_a_plain_run_never_sets_up_processes(tmp_path: Path) -> None:
    """Without a launch, sharing_processes reads the environment only: no Accelerate, no
    torch.distributed (transformers may import Accelerate itself when it loads a model)."""
    code = (
        "import sys\n"
        "from xrdiag.core.encoding.distributed import sharing_processes\n"
        "with sharing_processes('auto') as p:\n"
        "    assert p is None\n"
        "print(sorted(m for m in ('accelerate', 'torch') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"
