"""`python -m xrdiag` runs the command line."""

from __future__ import annotations

from xrdiag.cli import main

if __name__ == "__main__":
    main()
