"""A run killed with -9 and resumed from an older checkpoint wrote some steps twice; the report
keeps the last event of each step (and of each dev evaluation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from xrdiag.core.events import latest_per_step
from xrdiag.report.build import load_run, pivots


def resumed_copy(run_dir: Path, out: Path) -> Path:
    """The real run's events as if killed after its last step and resumed from step 2."""
    root = shutil.copytree(run_dir, out)
    events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
    body = [e for e in events if e["kind"] in ("step", "eval")]
    redo = [{**e, "loss": 50.0 + e["step"]} if e["kind"] == "step" else e
            for e in body if e["step"] > 2]  # fmt: skip
    resume = {"kind": "resume", "step": 2, "pid": 1, "host": "h", "time": 0.0}
    lines = [events[0], *body, resume, *redo, events[-1]]
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return root


def test_training_steps_list_each_step_once_as_last_written(run_dir: Path, tmp_path: Path) -> None:
    src = load_run(resumed_copy(run_dir, tmp_path / "resumed"))
    tables = pivots(src)
    steps = tables["training_steps"]
    assert steps["step"].to_list() == [1, 2, 3, 4]
    assert steps.filter(steps["step"] > 2)["loss"].to_list() == [53.0, 54.0]
    evals = tables["training_evals"]["step"].to_list()
    assert evals == sorted(set(evals))


def test_latest_per_step_drops_every_superseded_attempt() -> None:
    events = [{"kind": "step", "step": s} for s in (1, 2, 3, 4, 5)]
    events += [{"kind": "resume"}, *({"kind": "step", "step": s, "again": 1} for s in (3, 4))]
    kept = latest_per_step(events)
    assert [(e.get("step"), e.get("again")) for e in kept] == [
        (1, None), (2, None), (None, None), (3, 1), (4, 1)
    ]  # fmt: skip
