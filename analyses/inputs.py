"""What every registered analysis receives (`analyses/registry.py`): one frozen dataclass."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl


@dataclass(frozen=True)
class AnalysisInputs:
    """What an analysis gets: embeddings per layer, the rows they belong to, the options.

    `meta` has one row per embedding row (id, lang, domain, split); `texts` the same rows' text.
    `embed` turns a frame of such rows (with text) into embeddings of the same layers, through
    the evaluator's encoder and cache; `lexicon` loads the shipped synonym lexicon. Both are
    set only for analyses that declare `needs_encoder`. `pairs` (a labelled sentence-pairs
    frame) and `predict` (the evaluated checkpoint's classifier over such a frame) are set for
    the task analysis; `top_layer` is the model's last layer.
    """

    layers: Mapping[int, np.ndarray]
    meta: pl.DataFrame
    options: Mapping[str, Any]
    pivot: str | None = None
    texts: Sequence[str] | None = None
    embed: Callable[[pl.DataFrame, str], Mapping[int, np.ndarray]] | None = None
    lexicon: Callable[[], Mapping[str, Sequence[str]]] | None = None
    progress: Callable[[str, int, int | None], None] = field(default=lambda name, done, total: None)
    pairs: pl.DataFrame | None = None
    predict: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    top_layer: int = 0
