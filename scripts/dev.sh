#!/usr/bin/env bash
# The two commands of README.md. Each makes (or reuses) .venv, installs xrdiag into it, then:
#   bash scripts/dev.sh demo   runs the main job on the embedded defaults
#   bash scripts/dev.sh test   runs the test suite
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${XRDIAG_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
# torch is pinned by pyproject to <2.14, which resolves to the local CPU wheel on this machine.
# The repository root is the package, so setuptools' editable install always adds a note that
# folders named like the package may shadow it; it is information, not a problem: filtered.
PYTHONWARNINGS="ignore:Editable installation" python -m pip install --quiet -e ".[dev]"

case "${1:-}" in
  demo)
    shift
    # The demo study on the embedded model and the bundled corpus (DANN x hybrid batches,
    # 3 seeds; about ten minutes on two idle CPU cores; rerun to resume after Ctrl-C).
    xrdiag demo "$@"
    ;;
  test)
    shift
    python -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test [args]" >&2
    exit 2
    ;;
esac
