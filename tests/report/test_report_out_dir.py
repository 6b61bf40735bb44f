"""`report --out DIR` never deletes or overwrites a file xrdiag did not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrdiag.errors import UserError
from xrdiag.report.build import write_report


def test_a_users_files_survive_a_report_into_their_folder(eval_a: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "mydata.csv").write_text("a,b\n1,2\n")
    (out / "notes.md").write_text("# my notes\n")
    write_report([eval_a], out, ("md", "csv", "parquet"))
    write_report([eval_a], out, ("md", "csv", "parquet"))  # again: replaces its own files
    assert (out / "tables" / "mydata.csv").read_text() == "a,b\n1,2\n"
    assert (out / "notes.md").read_text() == "# my notes\n"
    assert (out / "tables" / "results.csv").is_file()


def test_an_earlier_reports_stale_tables_still_go(
    eval_a: Path, run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    write_report([eval_a, run_dir], out, ("csv",))
    assert any("run-a" in p.name for p in (out / "tables").glob("*.csv"))
    write_report([eval_a], out, ("csv",))  # the run's tables are not this report's
    assert not any("run-a" in p.name for p in (out / "tables").glob("*.csv"))


@pytest.mark.parametrize("name", ["report.md", "report.html", "report.json"])
def test_a_report_file_xrdiag_did_not_write_is_not_overwritten(
    name: str, eval_a: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("my own report\n")
    with pytest.raises(UserError, match=f"{name} exists and was not written by xrdiag"):
        write_report([eval_a], out, ("md", "html", "json"))
    assert (out / name).read_text() == "my own report\n"
    assert [p.name for p in out.iterdir()] == [name]
