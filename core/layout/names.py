"""File and directory names of eval, run and study directories (DESIGN.md, "Runs")."""

from __future__ import annotations

import re

# An eval directory (`xrdiag eval --out`, a run's `diagnostics/step-N`, a study's `base`).
RESULTS = "results.parquet"
MANIFEST = "manifest.json"
ROWS = "rows.parquet"
PROJECTION = "projection.parquet"
QUERIES = "queries.parquet"  # per-query gold ranks of the primary retrieval figure
PREDICTIONS = "predictions.parquet"  # the task analysis: the classifier's prediction per pair
EVAL_OUTPUTS = (RESULTS, ROWS, PROJECTION, QUERIES, PREDICTIONS, MANIFEST)

# A run directory (`xrdiag train --out`, a study's cell).
RUN_FILE = "run.toml"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS = "checkpoints"
DIAGNOSTICS = "diagnostics"
COMPLETE = "COMPLETE"  # a checkpoint's marker, written last
LOCK = "LOCK"  # held by the one process writing the run (core/layout/lock.py)
# Files that make a checkpoint evaluable (fixtures strip them to stay small).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")

# A study directory (`xrdiag study --out`).
STUDY_FILE = "study.toml"
BASE = "base"  # the untouched model's eval dir, and its name among the variants
CELLS = "cells"
DONE = "DONE"  # a cell's marker: trained and evaluated
EVAL_CORPUS = "eval-corpus.parquet"
TASK = "task.parquet"  # a task-accuracy study's pairs, built from the corpus
SUMMARY = "summary.parquet"
FIGURES = "figures.parquet"
COMPARISON = "comparison.parquet"
SUMMARY_MD = "summary.md"

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def step_name(step: int) -> str:
    """`step-000042`: zero-padded so names sort like steps."""
    return f"step-{step:06d}"


def step_of(name: str) -> int | None:
    """The step of a `step-NNNNNN` name, or None for any other name."""
    match = _STEP_DIR.match(name)
    return int(match.group(1)) if match else None
