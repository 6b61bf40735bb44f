"""Start-up stays light: building the app and painting 50 runs imports neither torch nor
transformers (checked in a fresh interpreter, where nothing else imported them first)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "sklearn", "umap", "scipy")

SCRIPT = """
import asyncio, json, sys, time
t0 = time.perf_counter()
import xrdiag.cli  # the path `xrdiag` takes: every command registered, none imported heavily
from xrdiag.tui.app import XrdiagApp
app = XrdiagApp(sys.argv[1])
built = time.perf_counter() - t0

async def paint():
    async with app.run_test(size=(120, 36)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        return len(app.screen.shown)

rows = asyncio.run(paint())
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print(json.dumps({"heavy": heavy, "rows": rows, "import_and_build_s": built,
                  "first_paint_s": time.perf_counter() - t0}))
"""


def test_startup_imports_no_torch_or_transformers(fixture_runs: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i in range(50):
        shutil.copytree(fixture_runs / "finished-dann", runs / f"run-{i:02d}")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(runs), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(report)  # timings are reported, never asserted
    assert report["rows"] == 50
    assert report["heavy"] == []
