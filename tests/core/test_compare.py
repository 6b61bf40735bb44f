"""`compare`: cell-by-cell deltas against a naive computation, shared rows, --fail-if, the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import polars as pl
import pytest
from cli_runner import run_cli

from xrdiag.core.compare import (
    KEY_COLUMNS,
    compare_results,
    failing_cells,
    load_comparable,
    parse_fail_if,
)
from xrdiag.core.evaluate import EvalOptions, run_eval
from xrdiag.core.layout.resolve import written_diagnostics
from xrdiag.errors import UserError

OPTS = dict(max_per_domain=5, bootstrap=20, device="cpu", seed=0, ks=(1, 3),
            langs="en,fr,sw,zh", analyses=("retrieval", "cka", "probe"))  # fmt: skip


def make_eval(model: Path, out: Path, **over: object) -> Path:
    run_eval(str(model), "default", out, EvalOptions(**{**OPTS, **over}))  # type: ignore[arg-type]
    return out


def reinitialised(model: Path, out: Path, seed: int) -> Path:
    """The tiny encoder's tokenizer and config with freshly seeded random weights."""
    import torch
    from transformers import BertConfig, BertModel

    shutil.copytree(model, out)
    torch.manual_seed(seed)
    BertModel(BertConfig.from_pretrained(out)).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def evals(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two models on the same rows; model A on a subset of the languages, and on others."""
    root = tmp_path_factory.mktemp("cmp")
    model_b = reinitialised(tiny_model_dir, root / "model-b", seed=1)
    return {
        "a": make_eval(tiny_model_dir, root / "a"),
        "b": make_eval(model_b, root / "b"),
        "a_three": make_eval(tiny_model_dir, root / "a-three", langs="en,fr,sw"),
        "a_other_langs": make_eval(tiny_model_dir, root / "a-ru", langs="ru,hi"),
    }


def naive_compare(a: pl.DataFrame, b: pl.DataFrame, threshold: float) -> dict[tuple, dict]:
    """Delta, significance and exceeds per cell with dicts and plain Python."""
    index_a = {tuple(r[k] for k in KEY_COLUMNS): r for r in a.iter_rows(named=True)}
    out = {}
    for r in b.iter_rows(named=True):
        key = tuple(r[k] for k in KEY_COLUMNS)
        ra = index_a[key]
        delta = r["value"] - ra["value"]
        have = None not in (ra["ci_low"], ra["ci_high"], r["ci_low"], r["ci_high"])
        apart = have and (ra["ci_high"] < r["ci_low"] or r["ci_high"] < ra["ci_low"])
        out[key] = {"delta": delta, "significant": bool(apart), "exceeds": abs(delta) > threshold}
    return out


def test_self_compare_is_all_zero(evals: dict[str, Path]) -> None:
    frames, labels, notes = load_comparable([evals["a"], evals["a"]])
    assert labels == ["a", "a#2"] and notes == []
    cmp = compare_results(frames, labels)
    assert cmp.height == frames[0].height > 100
    assert (cmp["delta"] == 0.0).all() and not cmp["significant"].any() and not cmp["exceeds"].any()
    assert compare_results(frames, labels, diff_only=True).height == 0


def test_deltas_match_a_naive_computation(evals: dict[str, Path]) -> None:
    frames, labels, _ = load_comparable([evals["a"], evals["b"]])
    threshold = 0.02
    cmp = compare_results(frames, labels, threshold=threshold)
    want = naive_compare(frames[0], frames[1], threshold)
    assert cmp.height == len(want)
    for row in cmp.iter_rows(named=True):
        w = want[tuple(row[k] for k in KEY_COLUMNS)]
        assert row["delta"] == pytest.approx(w["delta"], abs=1e-12)
        assert row["significant"] == w["significant"] and row["exceeds"] == w["exceeds"]
        assert row["a"] == "a" and row["b"] == "b"
    assert cmp["exceeds"].any() and not cmp["exceeds"].all()  # the test can tell them apart
    only = compare_results(frames, labels, threshold=threshold, diff_only=True)
    assert only.height == sum(w["exceeds"] for w in want.values())
    assert (only["delta"].abs() > threshold).all()


def test_significance_is_interval_overlap() -> None:
    base = {"analysis": "x", "metric": "m", "layer": 1, "src_lang": None, "tgt_lang": None}
    a = pl.DataFrame([
        {**base, "domain": "d1", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
        {**base, "domain": "d2", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
        {**base, "domain": "d3", "value": 0.5, "ci_low": None, "ci_high": None},
        {**base, "domain": "only-a", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
    ])  # fmt: skip
    b = pl.DataFrame([
        {**base, "domain": "d1", "value": 0.7, "ci_low": 0.61, "ci_high": 0.8},  # apart
        {**base, "domain": "d2", "value": 0.7, "ci_low": 0.6, "ci_high": 0.8},  # touching
        {**base, "domain": "d3", "value": 0.9, "ci_low": None, "ci_high": None},
    ])  # fmt: skip
    cmp = compare_results([a, b], ["A", "B"])
    by = {r["domain"]: r for r in cmp.iter_rows(named=True)}
    assert by["d1"]["significant"] and not by["d2"]["significant"]
    assert not by["d3"]["significant"] and by["d3"]["delta"] == pytest.approx(0.4)
    assert by["only-a"]["delta"] is None and not by["only-a"]["exceeds"]


def test_three_inputs_give_one_block_per_other(evals: dict[str, Path]) -> None:
    frames, labels, _ = load_comparable([evals["a"], evals["b"], evals["a"]])
    cmp = compare_results(frames, labels)
    assert cmp["b"].unique(maintain_order=True).to_list() == ["b", "a#2"]
    assert (cmp.filter(pl.col("b") == "a#2")["delta"] == 0).all()


def test_different_rows_are_reevaluated_on_the_shared_rows(
    evals: dict[str, Path], tmp_path: Path
) -> None:
    a_rows = pl.read_parquet(evals["a"] / "rows.parquet").select("id", "lang")
    s_rows = pl.read_parquet(evals["a_three"] / "rows.parquet").select("id", "lang")
    shared = a_rows.join(s_rows, on=["id", "lang"])
    assert 0 < shared.height < a_rows.height  # A has zh rows too
    frames, labels, notes = load_comparable(
        [evals["a"], evals["a_three"]], work_dir=tmp_path / "work"
    )
    assert any(f"comparing the {shared.height} shared" in n for n in notes)
    for side in ("side-0", "side-1"):
        used = pl.read_parquet(tmp_path / "work" / side / "eval" / "rows.parquet")
        assert set(used.select("id", "lang").iter_rows()) == set(shared.iter_rows())
    # the same model on the same rows: every delta is exactly zero
    cmp = compare_results(frames, labels)
    assert cmp.height > 0 and (cmp["delta"] == 0).all()
    with pytest.raises(UserError, match="different rows"):
        load_comparable([evals["a"], evals["a_three"]], reevaluate=False)


def test_refusals(evals: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="share no corpus row"):
        load_comparable([evals["a"], evals["a_other_langs"]])
    gone = tmp_path / "gone"
    shutil.copytree(evals["a_three"], gone)
    manifest = json.loads((gone / "manifest.json").read_text())
    manifest["model"]["path"] = str(tmp_path / "no-such-model")
    (gone / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not available"):
        load_comparable([evals["a"], gone], work_dir=tmp_path / "w")
    with pytest.raises(UserError, match="not an eval dir"):
        load_comparable([evals["a"], tmp_path])


def test_run_and_checkpoint_inputs(evals: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints" / "step-000004").mkdir(parents=True)
    (run / "checkpoints" / "step-000004" / "COMPLETE").write_text("{}")
    (run / "run.toml").write_text("[meta]\nseed = 0\n")
    with pytest.raises(UserError, match="no diagnostics yet"):
        written_diagnostics(run)
    shutil.copytree(evals["a"], run / "diagnostics" / "step-000002")
    found, label, note = written_diagnostics(run)
    assert found.root.name == "step-000002" and label == "r1@step-000002"
    assert note and "step-000004 has no diagnostics" in note
    shutil.copytree(evals["b"], run / "diagnostics" / "step-000004")
    found, label, _ = written_diagnostics(run)
    assert (found.root, label) == (run / "diagnostics" / "step-000004", "r1@step-000004")
    ckpt = written_diagnostics(run / "checkpoints" / "step-000004")
    assert ckpt[0].root == run / "diagnostics" / "step-000004"


# --------------------------------------------------------------------------- --fail-if


@pytest.mark.parametrize(
    ("text", "metric", "op", "bound"),
    [("recall@1 < -0.02", "recall@1", "<", -0.02),
     ("mrr|cos|none>=1e-3", "mrr|cos|none", ">=", 1e-3),
     ("  linear_cka != 0 ", "linear_cka", "!=", 0.0), ("pad<=.5", "pad", "<=", 0.5)],
)  # fmt: skip
def test_parse_fail_if(text: str, metric: str, op: str, bound: float) -> None:
    rule = parse_fail_if(text)
    assert (rule.metric, rule.op) == (metric, op) and math.isclose(rule.bound, bound)


@pytest.mark.parametrize(
    "text", ["recall@1", "recall@1 < ", "< 0.1", "recall@1 << 0.1", "recall@1 < abc",
             "__import__('os') < 1", "recall@1 < 0.1; rm -rf /", ""],
)  # fmt: skip
def test_malformed_fail_if(text: str) -> None:
    with pytest.raises(UserError, match="expected METRIC OP NUMBER"):
        parse_fail_if(text)


def test_failing_cells_match_naive(evals: dict[str, Path]) -> None:
    frames, labels, _ = load_comparable([evals["a"], evals["b"]])
    cmp = compare_results(frames, labels)
    rule = parse_fail_if("recall@1 < -0.05")
    got = failing_cells(cmp, rule)
    want = [
        r for r in cmp.iter_rows(named=True)
        if r["metric"].split("|")[0] == "recall@1" and r["delta"] is not None and r["delta"] < -0.05
    ]  # fmt: skip
    assert got.height == len(want) > 0
    exact = failing_cells(cmp, parse_fail_if("recall@1|cos|none < -0.05"))
    assert 0 < exact.height < got.height and set(exact["metric"]) == {"recall@1|cos|none"}


# --------------------------------------------------------------------------- CLI


def test_cli_compare(
    evals: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = str(evals["a"]), str(evals["b"])
    code, out, _ = run_cli(["compare", a, a, "--fail-if", "recall@1 < -0.0001"], capsys)
    assert code == 0 and "b vs a" not in out and "a#2 vs a" in out
    code, out, _ = run_cli(["compare", a, a, "--diff-only"], capsys)
    assert code == 0 and "no cell changed by more than 0.01" in out
    code, out, err = run_cli(["compare", a, b, "--fail-if", "recall@1 < -0.05"], capsys)
    assert code == 1 and "--fail-if recall@1 < -0.05" in err and "offending cells" in err
    code, _, err = run_cli(["compare", a, b, "--fail-if", "recall@1 <"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "--fail-if" in err
    code, _, err = run_cli(["compare", a], capsys)
    assert code == 2 and "at least two inputs" in err
    code, out, _ = run_cli(
        ["compare", a, b, "--out", str(tmp_path / "o"), "--format", "md,json", "--diff-only"],
        capsys,
    )
    assert code == 0 and (tmp_path / "o" / "report.md").is_file()
    from xrdiag.report.record import load_record

    record = load_record(tmp_path / "o" / "report.json")
    assert record.comparison is not None and (record.comparison["delta"].abs() > 0.01).all()
    assert "Comparison (delta = B - A)" in (tmp_path / "o" / "report.md").read_text()
