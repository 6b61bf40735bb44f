"""The pivots against naive loops over the long rows of a real evaluation and a real run."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from xrdiag.core.events import read_events
from xrdiag.core.layout.status import status_line
from xrdiag.report import run_tables, tables
from xrdiag.report.build import load_source, pivots


@pytest.fixture(scope="module")
def results(eval_a: Path) -> pl.DataFrame:
    return pl.read_parquet(eval_a / "results.parquet")


def test_recall_lang_domain_is_mean_over_targets(results: pl.DataFrame) -> None:
    grid = tables.recall_lang_domain(results, layer=1)
    assert grid.columns[-1] == "all" and grid.columns[0] == "lang"
    sums: dict[tuple[str, str], list[float]] = {}
    for r in results.iter_rows(named=True):
        if r["metric"] == "recall@1|cos|none" and r["layer"] == 1:
            sums.setdefault((r["src_lang"], r["domain"]), []).append(r["value"])
    assert grid.height * (grid.width - 1) == len(sums)
    for row in grid.iter_rows(named=True):
        for domain, value in row.items():
            if domain != "lang":
                vals = sums[(row["lang"], domain)]
                assert value == pytest.approx(sum(vals) / len(vals), abs=1e-12)


def test_cka_matrix_is_the_pair_rows(results: pl.DataFrame) -> None:
    assert tables.cka_layers(results) == [0, 1, 2]
    m = tables.cka_lang_lang(results, 2)
    langs = m["lang"].to_list()
    assert m.columns[1:] == langs and len(langs) == 18
    assert tables.cka_metric(results) == "debiased_cka"  # the summaries' estimator
    rows = results.filter(
        (pl.col("metric") == "debiased_cka") & (pl.col("layer") == 2) & (pl.col("domain") == "all")
    )
    assert rows.height == 18 * 17 / 2
    for r in rows.iter_rows(named=True):
        i, j = langs.index(r["src_lang"]), langs.index(r["tgt_lang"])
        assert m[i, j + 1] == m[j, i + 1] == r["value"]
    assert all(m[i, i + 1] == 1.0 for i in range(len(langs)))
    means = tables.cka_by_layer(results)
    assert means.filter(pl.col("layer") == 2)["mean_cka"][0] == pytest.approx(rows["value"].mean())


def test_probe_by_layer(results: pl.DataFrame) -> None:
    probes = tables.probe_by_layer(results)
    assert probes["layer"].to_list() == [0, 1, 2]
    for r in results.filter(pl.col("metric").is_in(tables.PROBE_METRICS)).iter_rows(named=True):
        row = probes.filter(pl.col("layer") == r["layer"]).row(0, named=True)
        assert row[r["metric"]] == r["value"]
        assert row[f"ci_low_{r['metric']}"] == r["ci_low"]


def test_run_tables_follow_the_events(run_dir: Path) -> None:
    events = read_events(run_dir / "events.jsonl")
    steps = run_tables.step_table(events)
    step_events = [e for e in events if e["kind"] == "step"]
    assert steps["step"].to_list() == [e["step"] for e in step_events] == [1, 2, 3, 4]
    assert steps["loss"].to_list() == [e["loss"] for e in step_events]
    assert steps["c_contrastive"].to_list() == [e["components"]["contrastive"] for e in step_events]
    evals = run_tables.eval_table(events)
    eval_events = [e for e in events if e["kind"] == "eval"]
    assert evals["step"].to_list() == [e["step"] for e in eval_events] == [0, 2, 4]
    assert evals["recall@1_mean"].to_list() == [e["recall@1"]["mean"] for e in eval_events]
    assert status_line(events) == ("finished (step 4 of 4)", True)
    assert status_line(events[:3])[1] is False
    import os
    import socket

    start = {"kind": "start", "max_steps": 9, "pid": os.getpid(), "host": socket.gethostname()}
    assert status_line([start]) == (f"still training (process {os.getpid()}): no end event yet "
                                   "(step 0 of 9)", False)  # fmt: skip
    gone = {**start, "pid": 2**22 + 12345}  # above the largest possible pid_max (2**22): never live
    assert status_line([gone])[0].startswith(f"crashed (process {2**22 + 12345} is gone)")
    elsewhere = {**start, "host": "another-host"}
    assert status_line([elsewhere])[0].startswith("still training on another-host or crashed")


def test_study_pivots_average_seeds(study_dir: Path) -> None:
    src = load_source(study_dir)
    piv = pivots(src)
    assert {"recall_lang_domain__base", "recall_lang_domain__tuned", "variants"} <= set(piv)
    variants = piv["variants"]
    assert variants["variant"].to_list() == ["base", "contrastive", "tuned"]
    tuned = variants.filter(pl.col("variant") == "tuned").row(0, named=True)
    assert tuned["baseline"] == "contrastive" and tuned["significant"] is False
    mean = tables.seed_mean(src.results.filter(pl.col("variant") == "tuned"))
    assert mean.height == src.results.filter(pl.col("variant") == "tuned").height  # one seed
