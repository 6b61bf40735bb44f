"""`xrdiag ARGV` in this process through the real entry point, for tests of the command line.

On the test path through pyproject's `pythonpath`; pytest collects only test_*.py.
"""

from __future__ import annotations

import pytest

from xrdiag.cli import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `xrdiag ARGV` (user errors: one line, exit 2)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
