"""Where a report may be written: never over a file xrdiag did not write.

`report --out DIR` (and `compare --out`) writes report.md, report.html, report.json and
tables/. A report replaces an earlier report's files, but a user's own `report.md` in that
folder, or a CSV of theirs in `DIR/tables/`, is not an earlier report's: the report is refused
before anything is written, and stale tables are removed only when a report listed them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from xrdiag.core.layout.atomic import write_text_atomic
from xrdiag.errors import UserError

# What each of our files starts with (report.json: its "schema" key), read from the first KiB.
_SIGNATURES = {
    "report.md": ("# xrdiag report",),
    "report.html": ("<title>xrdiag report</title>",),
    "report.json": ('"schema": "xrdiag-report"',),
}
TABLES_LIST = ".xrdiag-tables"  # the tables/ files the last report wrote, one name a line


def _written_by_us(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(1024).decode("utf-8", "replace")
    except OSError:
        return False
    return any(sig in head for sig in _SIGNATURES[path.name])


def check_report_dir(out_dir: Path) -> None:
    """Refuse (one line) when `out_dir` holds a report file xrdiag did not write."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a directory")
    for name in _SIGNATURES:
        path = out_dir / name
        if path.exists() and not _written_by_us(path):
            raise UserError(
                f"--out {out_dir}: {name} exists and was not written by xrdiag; choose a new "
                "or empty directory"
            )


def earlier_tables(folder: Path) -> set[str]:
    """The table files an earlier report listed as its own.

    A report written before the listing existed left none: its tables are those beside one of
    its report files (the tables/ folder of a directory xrdiag reported into).
    """
    try:
        return set((folder / TABLES_LIST).read_text(encoding="utf-8").split("\n")) - {""}
    except OSError:
        pass
    if any((folder.parent / name).is_file() for name in _SIGNATURES) and folder.is_dir():
        return {p.name for p in folder.iterdir() if p.suffix in (".csv", ".parquet")}
    return set()


def record_tables(folder: Path, names: Iterable[str]) -> None:
    """List the table files of reports here that still exist (read by the next report)."""
    existing = sorted(n for n in set(names) if (folder / n).exists())
    write_text_atomic(folder / TABLES_LIST, "\n".join(existing) + "\n")
