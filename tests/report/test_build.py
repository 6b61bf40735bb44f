"""`xrdiag report` end to end on real eval, run and study dirs: every format, and their quality."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cli_runner import run_cli
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from xrdiag.cli import cli
from xrdiag.errors import UserError
from xrdiag.report.build import combined_results, load_source, write_report
from xrdiag.report.record import load_record
from xrdiag.report.tables import recall_lang_domain

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "source", "wbr"}


class _Balance(HTMLParser):
    """Tag balance with the HTML5 tokenizer: every opened element closed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def assert_offline_and_well_formed(html: str) -> None:
    """No external URL of any kind, parses as XML, and balanced for the HTML tokenizer."""
    lowered = html.lower()
    for needle in ("http:", "https:", "@import", "url(", "ftp:", "data:"):
        assert needle not in lowered, needle
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", lowered)
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", lowered)
    ET.fromstring(html)  # raises on any unclosed tag, bad entity or duplicate attribute
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.errors == [] and parser.stack == []


def assert_markdown_tables_valid(md: str) -> int:
    """Every table: a header, a separator row of --- cells, same cell count on every row."""
    tables, lines = 0, md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            counts = [len(re.split(r"(?<!\\)\|", row)) - 2 for row in block]
            assert len(set(counts)) == 1, block[:3]
            assert len(block) >= 2 and re.fullmatch(r"\|( -{3,}:? \|)+", block[1]), block[1]
            assert all(row.endswith("|") for row in block)
            tables += 1
        i += 1
    return tables


def test_report_of_eval_run_and_study(
    eval_a: Path, run_dir: Path, study_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    written = write_report([eval_a, run_dir, study_dir], out)
    assert set(written) == {"md", "html", "json", "csv", "parquet"}
    html = (out / "report.html").read_text()
    assert_offline_and_well_formed(html)
    # a layer selector with one panel per CKA layer (tiny encoder: layers 0, 1, 2)
    assert html.count('class="layer-select"') >= 2
    for layer in (0, 1, 2):
        assert f'data-layer="{layer}"' in html
    root = ET.fromstring(html)
    for select in root.iter("select"):
        panels = [e for e in root.iter() if e.get("data-panel") == select.get("data-group")]
        assert [p.get("data-layer") for p in panels] == ["0", "1", "2"]
        assert all(p.tag == "div" for p in panels)  # the script hides panels, never the select
    assert "training loss and components" in html and "recall@1 by variant" in html
    assert "<svg" in html and "prefers-color-scheme: dark" in html
    md = (out / "report.md").read_text()
    assert md.index("Headline findings") < md.index("### Recall@1")
    assert assert_markdown_tables_valid(md) >= 8
    # JSON round trip: every row of every input comes back equal
    sources = [load_source(p) for p in (eval_a, run_dir, study_dir)]
    record = load_record(out / "report.json")
    assert_frame_equal(record.results, combined_results(sources))
    assert record.meta["schema_version"] == 1
    inputs = {i["kind"]: i for i in record.meta["inputs"]}
    assert inputs["eval"]["model_fingerprint"] and inputs["eval"]["corpus_fingerprint"]
    assert inputs["eval"]["seeds"] == [0] and inputs["run"]["finished"] is True
    assert set(record.extra) == {
        "figures:study-a",
        "study_comparison:study-a",
        "training_steps:run-a",
        "training_evals:run-a",
    }
    assert_frame_equal(
        record.extra["figures:study-a"], pl.read_parquet(study_dir / "figures.parquet")
    )
    env = record.meta["environment"]
    assert env["python"] and env["versions"]["torch"] and env["device"] == "cpu"
    # tables: the long results and the pivots, in parquet and csv
    assert_frame_equal(pl.read_parquet(out / "tables" / "results.parquet"), record.results)
    assert (out / "tables" / "results.csv").is_file()
    pivot = pl.read_parquet(out / "tables" / "recall_lang_domain__model-a.parquet")
    assert_frame_equal(pivot, recall_lang_domain(pl.read_parquet(eval_a / "results.parquet")))


def test_pivot_in_md_matches_naive_mean(eval_a: Path, tmp_path: Path) -> None:
    """The md's recall@1 table equals a naive mean over target languages, to 3 decimals."""
    write_report([eval_a], tmp_path, formats=("md",))
    md = (tmp_path / "report.md").read_text()
    res = pl.read_parquet(eval_a / "results.parquet")
    top = res["layer"].max()
    assert top == 2  # the tiny encoder has layers 0..2; the pivot reads the top one
    rows = res.filter(
        (pl.col("metric") == "recall@1|cos|none")
        & (pl.col("src_lang") == "fr")
        & (pl.col("layer") == top)
    )
    want = {}
    for domain in set(rows["domain"]):
        vals = rows.filter(pl.col("domain") == domain)["value"].to_list()
        want[domain] = sum(vals) / len(vals)
    section = md[md.index("### Recall@1") :]
    header = next(line for line in section.splitlines() if line.startswith("| lang"))
    fr = next(line for line in section.splitlines() if line.startswith("| fr |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in fr.strip("|").split("|")]
    for col, text in zip(cols[1:], cells[1:], strict=True):
        assert float(text) == pytest.approx(want[col], abs=5e-4)


def test_running_run_is_reported_as_so_far(running_run: Path, tmp_path: Path) -> None:
    written = write_report([running_run], tmp_path, formats=("md", "html", "json"))
    md = written["md"].read_text()
    assert "has not finished" in md and "step 2 of 4" in md
    assert "has not finished" in written["html"].read_text()
    record = load_record(written["json"])
    assert record.meta["inputs"][0]["finished"] is False
    assert_offline_and_well_formed(written["html"].read_text())


def test_bad_inputs_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="not an eval dir"):
        write_report([tmp_path], tmp_path / "out")
    code, _, err = run_cli(["report", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and "not an eval dir" in err
    code, _, err = run_cli(["report", str(tmp_path), "--out", "o", "--format", "pdf"], capsys)
    assert code == 2 and "--format pdf" in err and err.count("\n") == 1


def test_cli_report(eval_a: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["report", str(eval_a), "--out", str(tmp_path), "--format", "md,json"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.json").is_file()
    assert not (tmp_path / "report.html").exists()


# --------------------------------------------------------------------------- large input

LANGS = ["ar", "bn", "en", "es-419", "fa", "fr", "hi", "id", "pt-BR", "ru", "sw", "ti", "zh"]
DOMAINS = ["conversation", "encyclopedia", "medical", "news", "official", "travel"]


def _synthetic_cell(
    rng: np.random.Generator, name: str, variant: str, seed: int | None
) -> pl.DataFrame:
    rows = []
    for domain in [*DOMAINS, "all"]:
        for src in LANGS:
            for tgt in LANGS:
                if src != tgt:
                    for metric in ("recall@1|cos|none", "mrr|cos|none"):
                        v = float(rng.uniform(0.3, 0.95))
                        rows.append(
                            ("retrieval", metric, 12, src, tgt, domain, v, v - 0.05, v + 0.05, 50)
                        )
                if src < tgt:
                    v = float(rng.uniform(0.5, 0.9))
                    rows.append(("cka", "linear_cka", 12, src, tgt, domain, v, None, None, 50))
    for layer in range(13):
        for metric in ("lang_probe_acc", "domain_probe_acc"):
            v = float(rng.uniform(0.2, 0.99))
            rows.append(("probe", metric, layer, None, None, "all", v, v - 0.02, v + 0.02, 600))
            rows.append(("cka", "linear_cka", layer, "en", "fr", "all", v, None, None, 50))
    cols = [
        "analysis",
        "metric",
        "layer",
        "src_lang",
        "tgt_lang",
        "domain",
        "value",
        "ci_low",
        "ci_high",
        "n",
    ]
    frame = pl.DataFrame(rows, schema=cols, orient="row")
    return frame.with_columns(
        pl.lit(name).alias("checkpoint"),
        pl.col("layer").cast(pl.Int32),
        pl.lit(variant).alias("variant"),
        pl.lit(seed, dtype=pl.Int64).alias("seed"),
    )


def test_large_study_report_stays_small(tmp_path: Path) -> None:
    """8 variants x 3 seeds x 13 languages x 6 domains: html, md, json a few MB at most.

    The CSV dump of every long row (tables/*.csv) grows with the rows (~9 MB here, exact
    floats); the report proper and the Parquet tables stay small.
    """
    rng = np.random.default_rng(0)
    root = tmp_path / "big"
    root.mkdir()
    variants = [f"variant-{k}" for k in range(8)]
    (root / "study.toml").write_text(
        f"[study]\nbaseline = 'variant-0'\nvariants = {variants}\nseeds = [0, 1, 2]\n"
    )
    parts = [_synthetic_cell(rng, "base", "base", None)]
    parts += [_synthetic_cell(rng, f"{v}/seed-{s}", v, s) for v in variants for s in range(3)]
    summary = pl.concat(parts)
    summary.write_parquet(root / "summary.parquet")
    figs = [(v, f, scope, d, float(rng.uniform(0.4, 0.9)), 0.3, 0.95, 100)
            for v in ["base", *variants] for f in ("recall@1", "domain_gap", "lang_probe_acc")
            for scope, d in [("all", "all"), *[(x, "all") for x in LANGS],
                             *[("all", x) for x in DOMAINS]]]  # fmt: skip
    pl.DataFrame(
        figs,
        schema=["variant", "figure", "lang", "domain", "value", "ci_low", "ci_high", "n"],
        orient="row",
    ).write_parquet(root / "figures.parquet")
    written = write_report([root], tmp_path / "out")
    sizes = {fmt: path.stat().st_size for fmt, path in written.items()}
    files = [f for f in (tmp_path / "out").rglob("*") if f.is_file() and f.suffix != ".csv"]
    total = sum(f.stat().st_size for f in files)
    print(f"large study: {summary.height} rows; sizes {sizes}; total {total}")
    assert summary.height > 60_000
    assert sizes["html"] < 3_000_000 and sizes["json"] < 4_000_000 and sizes["md"] < 1_000_000
    assert sizes["parquet"] < 3_000_000 and total < 6_000_000
    assert_offline_and_well_formed(written["html"].read_text())
    assert load_record(written["json"]).results.height == summary.height


def test_comparison_section(eval_a: Path, run_dir: Path, tmp_path: Path) -> None:
    from xrdiag.core.compare import compare_results, load_comparable

    frames, labels, notes = load_comparable([eval_a, run_dir])
    assert notes == []  # the run's diagnostics used the same rows
    cmp = compare_results(frames, labels)
    written = write_report([eval_a, run_dir], tmp_path, ("md", "html"), comparison=cmp)
    html = written["html"].read_text()
    assert_offline_and_well_formed(html)
    assert "Comparison (delta = B - A)" in html and "delta recall@1" in html
    assert_markdown_tables_valid(written["md"].read_text())


def test_long_run_curves_are_thinned_not_the_tables(tmp_path: Path) -> None:
    """5,000 steps: the html draws at most a few hundred points; tables keep every step."""
    from xrdiag.core.events import EventWriter

    run = tmp_path / "long"
    run.mkdir()
    (run / "run.toml").write_text("[meta]\nseed = 3\n")
    with EventWriter(run / "events.jsonl", fsync=False) as events:
        events.write("start", step=0, max_steps=5000)
        for step in range(1, 5001):
            comps = {"contrastive": 2.0 / step, "dann": 0.1}
            events.write("step", step=step, loss=2.0 / step + 0.1, lr=1e-4, components=comps)
        events.write("end", step=5000)
    written = write_report([run], tmp_path / "out", ("html", "parquet", "json"))
    html = written["html"].read_text()
    assert_offline_and_well_formed(html)
    assert len(html) < 400_000 and html.count("<polyline") >= 3
    steps = pl.read_parquet(tmp_path / "out" / "tables" / "training_steps.parquet")
    assert steps.height == 5000 and steps["loss"][-1] == pytest.approx(2.0 / 5000 + 0.1)
    assert load_record(written["json"]).meta["inputs"][0]["seeds"] == [3]


def test_rewriting_a_report_drops_tables_it_no_longer_has(
    eval_a: Path, run_dir: Path, tmp_path: Path
) -> None:
    """A report written over an earlier one leaves no table of the earlier inputs behind."""
    out = tmp_path / "rep"
    write_report([eval_a, run_dir], out, formats=("csv",))
    before = {p.name for p in (out / "tables").iterdir()}
    assert any("__" in name for name in before)  # per-input tables of a two-input report
    write_report([eval_a], out, formats=("csv",))
    after = {p.name for p in (out / "tables").iterdir()}
    assert after and not any("__" in name for name in after)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_results_without_pool_load_and_the_report_says_so(eval_a: Path, tmp_path: Path) -> None:
    """An eval written before `pool` was recorded still reports; its pool is unknown (null),
    and the report names why its per-domain figures are not comparable."""
    old = tmp_path / "old-eval"
    shutil.copytree(eval_a, old)
    frame = pl.read_parquet(old / "results.parquet")
    assert frame["pool"].drop_nulls().len() > 0  # a current eval records it
    frame.drop("pool").write_parquet(old / "results.parquet")
    written = write_report([old], tmp_path / "rep", formats=("md", "parquet"))
    md = written["md"].read_text()
    assert "pool unknown" in md
    sizes = pl.read_parquet(tmp_path / "rep" / "tables" / "retrieval_sizes.parquet")
    assert sizes["pool_max"].null_count() == sizes.height
    current = write_report([eval_a], tmp_path / "rep2", formats=("md", "parquet"))
    assert "pool unknown" not in current["md"].read_text()
    sizes = pl.read_parquet(tmp_path / "rep2" / "tables" / "retrieval_sizes.parquet")
    assert sizes["pool_min"].to_list() == sizes["pool_max"].to_list()  # one pool per pair set
