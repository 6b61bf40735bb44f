"""`report` and `compare` on eval and run directories whose files were damaged or replaced:
one line naming the file and exit 2, never a traceback; odd shapes of optional records degrade
the record, not the report."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from cli_runner import run_cli


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run_cli(argv, capsys)
    return code, err


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def other_table(path: Path) -> None:
    pl.DataFrame({"a": [1, 2]}).write_parquet(path)


def text_values(path: Path) -> None:
    pl.read_parquet(path).with_columns(pl.lit("high").alias("value")).write_parquet(path)


def doubled(path: Path) -> None:
    frame = pl.read_parquet(path)
    pl.concat([frame, frame]).write_parquet(path)


def not_json(path: Path) -> None:
    path.write_text("[")


def json_list(path: Path) -> None:
    path.write_text("[1, 2]")


# (file, damage, message, commands that must refuse it)
CASES: dict[str, tuple[str, Callable[[Path], None], str, tuple[str, ...]]] = {
    "truncated results": ("results.parquet", truncate, "not a readable Parquet", ("r", "c")),
    "empty results": ("results.parquet", empty, "not a readable Parquet", ("r", "c")),
    "results of another schema": ("results.parquet", other_table, "lacks columns", ("r", "c")),
    "results with text values": ("results.parquet", text_values, "column 'value'", ("r", "c")),
    "results with cells twice": ("results.parquet", doubled, "metric cell twice", ("c",)),
    "truncated rows": ("rows.parquet", truncate, "not a readable Parquet", ("c",)),
    "rows of another schema": ("rows.parquet", other_table, "lacks columns", ("c",)),
    "truncated projection": ("projection.parquet", truncate, "not a readable Parquet", ("r",)),
    "manifest not JSON": ("manifest.json", not_json, "unreadable JSON", ("r",)),
    "manifest a list": ("manifest.json", json_list, "expected a JSON object", ("r",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_eval_dir_is_one_line_exit_2(
    case: str, eval_a: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, damage, message, commands = CASES[case]
    broken = shutil.copytree(eval_a, tmp_path / "broken")
    if not (broken / name).exists():
        pl.DataFrame({"x": [0.0], "y": [0.0]}).write_parquet(broken / name)
    damage(broken / name)
    argv = {
        "r": ["report", str(broken), "--out", str(tmp_path / "out")],
        "c": ["compare", str(eval_a), str(broken)],
    }
    for command in commands:
        code, err = cli(argv[command], capsys)
        assert code == 2, (command, err)
        assert err.strip().count("\n") == 0 and "Traceback" not in err, err
        assert str(broken / name) in err and message in err, err


def test_odd_shapes_of_records_degrade_the_record_not_the_report(
    run_dir: Path, eval_a: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = shutil.copytree(run_dir, tmp_path / "run")
    text = (run / "run.toml").read_text().replace("[meta", "[meta_old")
    (run / "run.toml").write_text("meta = 3\n" + text)
    with (run / "events.jsonl").open("a") as fh:
        fh.write(json.dumps({"kind": "step", "step": "x", "components": 3, "time": "t"}) + "\n")
    ev = shutil.copytree(eval_a, tmp_path / "ev")
    manifest = json.loads((ev / "manifest.json").read_text())
    manifest.update(model=3, rows=[], seed="zero", options=5)
    (ev / "manifest.json").write_text(json.dumps(manifest))
    code, err = cli(["report", str(run), str(ev), "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {i["kind"] for i in record["inputs"]} == {"run", "eval"}


def test_a_damaged_study_figures_file_is_one_line(tmp_path: Path) -> None:
    """The answer table `study`/`demo` print at the end reads figures.parquet as a user file."""
    from xrdiag.cli.study import _print_answer
    from xrdiag.errors import UserError

    fixtures = Path(__file__).parents[1] / "tui" / "fixtures" / "study-demo"
    study = shutil.copytree(fixtures, tmp_path / "study")
    truncate(study / "figures.parquet")
    with pytest.raises(UserError, match="figures.parquet: not a readable Parquet file"):
        _print_answer(study)
