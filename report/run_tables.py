"""A run's training curves as tables: one row per step, one row per dev evaluation.

Reshapings of events.jsonl for the report and the dashboard; values are what the training loop
wrote (non-finite numbers kept as floats), nothing is computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from xrdiag.core.events import latest_per_step


def step_table(events: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per step: step, loss, lr, grad_norm, lambda, samples_per_s, components.

    Steps a resumed run redid appear once, as last written (`core.events.latest_per_step`).
    """
    rows = []
    for e in latest_per_step([dict(e) for e in events], ("step",)):
        if e.get("kind") != "step" or not isinstance(e.get("step"), int):
            continue
        row = {k: _num(e.get(k)) for k in ("loss", "lr", "grad_norm", "lambda", "samples_per_s")}
        row["step"] = int(e["step"])
        for name, v in _mapping(e.get("components")).items():
            row[f"c_{name}"] = _num(v)
        rows.append(row)
    if not rows:
        return pl.DataFrame()
    cols = list(dict.fromkeys(k for r in rows for k in r))
    frame = pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], orient="row")
    return frame.select("step", *(c for c in cols if c != "step")).sort("step")


def eval_table(events: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per dev evaluation: step, recall@1 mean / seen / unseen, CKA, probe accuracy.

    An evaluation a resumed run redid appears once, as last written.
    """
    rows = []
    for e in latest_per_step([dict(e) for e in events], ("eval",)):
        if e.get("kind") != "eval" or not isinstance(e.get("step"), int):
            continue
        row: dict[str, Any] = {"step": int(e["step"])}
        for k, v in _mapping(e.get("recall@1")).items():
            row[f"recall@1_{k}"] = _num(v)
        row["cka_mean"] = _num(_mapping(e.get("cka")).get("mean"))
        row["lang_probe_acc"] = _num(_mapping(e.get("lang_probe")).get("acc"))
        row["domain_probe_acc"] = _num(_mapping(e.get("domain_probe")).get("acc"))
        task = _mapping(_mapping(e.get("task")).get("accuracy"))
        for part in ("mean", "mono", "cross"):
            if part in task:
                row[f"task_accuracy_{part}"] = _num(task[part])
        rows.append(row)
    if not rows:
        return pl.DataFrame()
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], orient="row").sort("step")


def _mapping(value: Any) -> Mapping[str, Any]:
    """An event's nested object, or empty when a hand-edited or foreign event has another type."""
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    """Event numbers; JSON-safe non-finite strings ("nan", "inf") become floats."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None
