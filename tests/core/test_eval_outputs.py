"""What `eval --out` may write over, and how it leaves the directory.

A user's folder is never overwritten; an earlier evaluation is replaced with --overwrite only,
and as one set (no output of the earlier run survives to pass for the new one's); every file
honours the umask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run_cli

from xrdiag.cli import main

FAST = ["--langs", "en,fr", "--max-per-domain", "2", "--bootstrap", "0", "--ks", "1",
        "--device", "cpu"]  # fmt: skip


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run_cli(argv, capsys)
    return code, err


def evaluate(model: Path, out: Path, *extra: str, analyses: str = "retrieval") -> list[str]:
    return ["eval", "--model", str(model), "--out", str(out), "--analyses", analyses, *FAST,
            *extra]  # fmt: skip


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_users_folder_is_never_overwritten(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.parquet").write_bytes(b"my own results")
    (mine / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        code, err = cli(evaluate(tiny_model_dir, mine, *extra), capsys)
        assert code == 2 and err.strip().count("\n") == 0, err
        assert "not an xrdiag eval directory" in err and "notes.txt" in err
    assert (mine / "results.parquet").read_bytes() == b"my own results"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "results.parquet"]


def test_an_earlier_eval_is_replaced_with_overwrite_only_and_as_one_set(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ev"
    code, err = cli(evaluate(tiny_model_dir, out, analyses="retrieval,projection"), capsys)
    assert code == 0, err
    assert (out / "projection.parquet").is_file()
    before = (out / "manifest.json").read_bytes()
    code, err = cli(evaluate(tiny_model_dir, out), capsys)
    assert code == 2 and "--overwrite" in err and err.strip().count("\n") == 0
    assert (out / "manifest.json").read_bytes() == before
    code, err = cli(evaluate(tiny_model_dir, out, "--overwrite"), capsys)
    assert code == 0, err
    assert not (out / "projection.parquet").exists()  # the earlier run's, not this one's
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "queries.parquet", "results.parquet", "rows.parquet"
    ]  # fmt: skip
    # the report of the replaced eval shows no projection either
    from xrdiag.report.build import load_eval

    assert load_eval(out).projection is None


def test_eval_and_embed_outputs_honour_the_umask(
    tiny_model_dir: Path, tmp_path: Path, umask_022: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ev"
    code, err = cli(evaluate(tiny_model_dir, out, analyses="retrieval,projection"), capsys)
    assert code == 0, err
    npz = tmp_path / "e.npz"
    code, err = cli(["embed", "--model", str(tiny_model_dir), "--out", str(npz), "--langs",
                     "en,fr", "--max-per-domain", "2", "--device", "cpu"], capsys)  # fmt: skip
    assert code == 0, err
    files = [*out.iterdir(), npz]
    assert len(files) == 6
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file


def test_checkpoints_honour_the_umask(
    tiny_model_dir: Path, tmp_path: Path, umask_022: None
) -> None:
    """save_pretrained writes its safetensors 0600; a checkpoint's files follow the umask."""
    from transformers import AutoModel

    from xrdiag.core.layout.dirs import RunDir

    model = AutoModel.from_pretrained(tiny_model_dir)
    run = RunDir(tmp_path / "run")
    path = run.save_checkpoint(1, lambda tmp: model.save_pretrained(tmp), keep_last=1)
    files = [p for p in path.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "--seed -1: expected an integer between 0 and"),
        (["--seed", str(2**40)], "--seed 1099511627776: expected an integer between 0 and"),
        (["--bootstrap", "-5"], "--bootstrap -5: expected an integer at least 0"),
        (["--ks", "0"], "--ks 0: expected an integer at least 1"),
        (["--bias-queries-per-lang", "-1"], "--bias-queries-per-lang -1"),
        (["--projection-max-points", "1"], "--projection-max-points 1"),
        (["--probe-max-rows", "0"], "--probe-max-rows 0"),
        (["--pool", "domain", "--pool-size", "1"], "--pool-size 1"),
        (["--margin-k", "0"], "--margin-k 0"),
    ],
)
def test_numeric_options_are_checked_before_any_work(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model that does not exist: the option is refused before anything is loaded."""
    code, err = cli(["eval", "--model", str(tmp_path / "no-model"), "--out",
                     str(tmp_path / "ev"), *flags], capsys)  # fmt: skip
    assert code == 2 and err.strip().count("\n") == 0 and message in err, err
    assert not (tmp_path / "ev").exists()


def test_compare_refuses_a_threshold_or_limit_that_would_hide_every_cell(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ev"
    assert cli(evaluate(tiny_model_dir, out), capsys)[0] == 0
    for flags, message in ((["--threshold", "nan"], "--threshold nan"),
                           (["--limit", "-1"], "--limit -1")):  # fmt: skip
        code, err = cli(["compare", str(out), str(out), *flags], capsys)
        assert code == 2 and message in err and err.strip().count("\n") == 0, err


def test_paths_with_rich_markup_are_printed_as_text(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`[/]` in a path is a closing tag to rich: printed raw it was a MarkupError traceback."""
    root = tmp_path / "x["
    out = root / "]ev"  # the path reads .../x[/]ev: a closing tag with nothing to close
    code, err = cli(evaluate(tiny_model_dir, out), capsys)
    assert code == 0, err
    npz = str(root / "]e.npz")
    code, err = cli(["embed", "--model", str(tiny_model_dir), "--out", npz, "--langs", "en,fr",
                     "--max-per-domain", "2", "--device", "cpu"], capsys)  # fmt: skip
    assert code == 0, err
    for argv in (["compare", str(out), str(out), "--fail-if", "recall@1 > -9"],):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 1
        printed = capsys.readouterr()
        assert "MarkupError" not in printed.err and "--fail-if recall@1 > -9" in printed.err
