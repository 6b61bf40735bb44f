"""Run directories: layout, atomic checkpoints, keep-last-K, newest complete checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xrdiag.core.layout.atomic import write_text_atomic
from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.layout.names import COMPLETE, step_name
from xrdiag.errors import UserError


def _fill(text: str):  # noqa: ANN202
    def fill(d: Path) -> None:
        (d / "weights.txt").write_text(text)

    return fill


def test_layout_and_fresh_check(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create("a = 1\n")
    assert run.run_file.read_text() == "a = 1\n"
    assert run.checkpoints_dir.is_dir()
    assert run.exists()
    with pytest.raises(UserError, match="--resume"):
        RunDir(tmp_path / "run").create("a = 2\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        RunDir(tmp_path / "other").check_fresh()
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        RunDir(tmp_path / "file").check_fresh()


def test_step_names_sort_like_steps() -> None:
    assert step_name(7) == "step-000007"
    names = [step_name(s) for s in (5, 50, 500, 1_000_000)]
    assert sorted(names) == names


def test_keep_last_and_latest(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for step in (10, 20, 30, 40):
        run.save_checkpoint(step, _fill(f"w{step}"), keep_last=2)
    assert [s for s, _ in run.checkpoints()] == [30, 40]
    step, path = run.latest_checkpoint()  # type: ignore[misc]
    assert step == 40 and (path / "weights.txt").read_text() == "w40"
    assert (path / COMPLETE).is_file()
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["step-000030", "step-000040"]


def test_same_step_saved_twice_replaces(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.save_checkpoint(5, _fill("a"), keep_last=3)
    run.save_checkpoint(5, _fill("b"), keep_last=3)
    assert [(s, (p / "weights.txt").read_text()) for s, p in run.checkpoints()] == [(5, "b")]


def test_partial_checkpoints_are_ignored_and_pruned(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.save_checkpoint(10, _fill("ok"), keep_last=2)
    # a writer killed mid-way: a temporary dir, and a step dir without its marker
    (run.checkpoints_dir / ".tmp-step-000020-99999").mkdir()
    (run.checkpoints_dir / "step-000030").mkdir()
    assert run.latest_checkpoint()[0] == 10  # type: ignore[index]
    run.save_checkpoint(40, _fill("next"), keep_last=2)
    assert not (run.checkpoints_dir / ".tmp-step-000020-99999").exists()
    assert [s for s, _ in run.checkpoints()] == [10, 40]


def test_failing_fill_leaves_no_checkpoint(tmp_path: Path) -> None:
    run = RunDir(tmp_path)

    def boom(d: Path) -> None:
        (d / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run.save_checkpoint(3, boom, keep_last=2)
    assert run.checkpoints() == []
    assert run.latest_checkpoint() is None


def test_sigkill_during_fill_leaves_previous_checkpoint(tmp_path: Path) -> None:
    """A process killed while writing a checkpoint: the previous one is still the newest."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from xrdiag.core.layout.dirs import RunDir
        run = RunDir(Path({str(tmp_path)!r}))
        run.save_checkpoint(1, lambda d: (d / "w").write_text("one"), keep_last=2)
        def die(d):
            (d / "w").write_text("two, half written")
            os.kill(os.getpid(), signal.SIGKILL)
        run.save_checkpoint(2, die, keep_last=2)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert done.returncode == -9
    run = RunDir(tmp_path)
    step, path = run.latest_checkpoint()  # type: ignore[misc]
    assert step == 1 and (path / "w").read_text() == "one"


def test_write_text_atomic_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.toml"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(tmp_path) == ["f.toml"]
