"""The analysis registry: every diagnostic `xrdiag eval` can run, declared once.

Each entry names its module and function (imported only when it runs, so `xrdiag --help`
stays light), the evaluation options it reads (they key its cache entry together with the
embeddings and its code), whether it is in the default set, whether it needs the encoder (to
embed new texts, e.g. perturbed queries) and whether it writes results or a projection.
The evaluator loops over it; the CLI's default `--analyses`, the study's evaluation, the cache
key and the dashboard's and report's sections all read it. A new analysis is one module with
an `analyse(inputs)` function plus one line below.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from xrdiag.errors import comma_choices

if TYPE_CHECKING:  # the registry itself stays light: `xrdiag --help` reads it
    from collections.abc import Mapping

    import polars as pl

    from xrdiag.analyses.inputs import AnalysisInputs

    # A results (or projection) frame, or frames by name: "results" plus extra outputs that the
    # evaluator writes as <name>.parquet beside results.parquet (retrieval's "queries").
    AnalysisOutput = pl.DataFrame | Mapping[str, pl.DataFrame]

PACKAGE = "xrdiag.analyses"
_SIBLING = re.compile(r"^\s*from xrdiag\.analyses\.(\w+) import", re.MULTILINE)


@dataclass(frozen=True)
class Analysis:
    """One registered analysis (see the module docstring)."""

    name: str
    target: str  # "module:function" inside xrdiag.analyses
    title: str  # its tab in the dashboard, its section in the report
    options: tuple[str, ...] = ()
    default: bool = True
    needs_encoder: bool = False
    output: Literal["results", "projection"] = "results"
    embeds_corpus: bool = True  # False: reads something else (the task's sentence pairs)
    cached: bool = True  # False: its inputs are not all in the cache key (a file's content)

    def function(self) -> Callable[[AnalysisInputs], AnalysisOutput]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)

    def code_hash(self) -> str:
        """sha256 of the source of its module and every analyses module that one imports.

        Part of the cache key: a change of the code is never answered from a stale entry.
        """
        return _code_hash(self.target.split(":")[0])


ANALYSES: tuple[Analysis, ...] = (
    Analysis("retrieval", "retrieval:analyse", "Retrieval",
             ("ks", "bootstrap", "seed", "bias_queries_per_lang", "lir_components", "margin_k",
              "pool", "pool_size", "pool_repeats", "duplicates", "block_size")),
    Analysis("xsim", "xsim:analyse", "xSIM", ("bootstrap", "seed")),
    Analysis("cka", "cka:analyse", "CKA"),
    Analysis("probe", "probes:analyse", "Probes", ("seed", "probe_max_rows")),
    Analysis("geometry", "geometry:analyse", "Geometry", ("seed",)),
    Analysis("projection", "projection:analyse", "Projection",
             ("projection", "seed", "projection_max_points"), output="projection"),
    Analysis("robustness", "robustness:analyse", "Robustness",
             ("noise_kinds", "noise_rate", "noise_seed", "bootstrap", "seed"),
             default=False, needs_encoder=True),
    Analysis("task", "task_accuracy:analyse", "Task", ("task_pairs", "bootstrap", "seed"),
             default=False, needs_encoder=True, embeds_corpus=False, cached=False),
)  # fmt: skip
_BY_NAME = {a.name: a for a in ANALYSES}


def get(name: str) -> Analysis:
    return _BY_NAME[name]


def names() -> tuple[str, ...]:
    """Every registered analysis, in registry order."""
    return tuple(_BY_NAME)


def default_names() -> tuple[str, ...]:
    """The analyses `xrdiag eval` runs unless told otherwise (the others are run by name)."""
    return tuple(a.name for a in ANALYSES if a.default)


def parse_analyses(text: str | Sequence[str]) -> tuple[str, ...]:
    """`retrieval,cka` -> validated tuple; `all` means every analysis."""
    if isinstance(text, str) and text.strip() == "all":
        return names()
    return comma_choices("--analyses", text, names(), " (or all)")


@cache
def _code_hash(module: str) -> str:
    folder = Path(__file__).parent
    seen: list[str] = []
    todo = [module, "schema"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo += _SIBLING.findall((folder / f"{name}.py").read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + (folder / f"{name}.py").read_bytes())
    return digest.hexdigest()
