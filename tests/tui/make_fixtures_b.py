"""Regenerate tests/tui/fixtures_b/: the Diagnostics, Compare and Study screens' fixtures.

Run as `python tests/tui/make_fixtures_b.py`. The eval directories are real `run_eval` outputs of
tiny randomly initialised encoders (three seeds, so checkpoints differ); the study directory is
laid out per the study contract (DESIGN/preamble) around them. Its figures.parquet and
comparison.parquet are fixture numbers summarised from those results by this script (the study
runner is not what is under test here); the screens only display them.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures_b"
LANGS = "ar,en,es-419,fr,ru,zh"
SEEN_LANGS = ("en", "es-419", "fr")
SEEN_DOMAINS = ("conversation", "medical", "news")
VARIANTS = {"contrastive": 1, "dann+hybrid": 2}
STEP = "step-000008"


def evaluate(model: Path, out: Path, layers: str) -> None:
    from xrdiag.core.evaluate import EvalOptions, run_eval

    options = EvalOptions(layers=layers, langs=LANGS, max_per_domain=10, bootstrap=50, device="cpu")
    run_eval(str(model), "default", out, options)


def freeze(root: Path, tmp: Path) -> None:
    """No temporary paths or clock times in the committed text files."""
    for path in root.rglob("manifest.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model"]["path"] = data["model"]["name"] = Path(data["model"]["path"]).name
        data["created"] = "2026-01-01T00:00:00+0000"
        data["timings_s"] = {k: 0.0 for k in data.get("timings_s", {})}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in {".toml", ".json"}:
            text = path.read_text(encoding="utf-8").replace(str(tmp), ".")
            path.write_text(text, encoding="utf-8")


def make_run(cell: Path, model: Path, variant: str) -> None:
    """A finished run dir: run.toml, events, a weightless checkpoint and its diagnostics."""
    cell.mkdir(parents=True)
    (cell / "run.toml").write_text(
        f'[meta]\nseed = 0\nvariant = "{variant}"\n[corpus]\npath = "default"\n', encoding="utf-8"
    )
    events = [
        {"kind": "start", "time": 1767225600.0, "step": 0, "max_steps": 8},
        {"kind": "checkpoint", "time": 1767225616.0, "step": 8, "path": f"checkpoints/{STEP}"},
        {"kind": "end", "time": 1767225617.0, "step": 8},
    ]
    (cell / "events.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events), encoding="utf-8"
    )
    ckpt = cell / "checkpoints" / STEP
    ckpt.mkdir(parents=True)
    (ckpt / "COMPLETE").write_text("", encoding="utf-8")
    shutil.copy(model / "config.json", ckpt / "config.json")
    evaluate(model, cell / "diagnostics" / STEP, "last")
    (cell / "DONE").write_text(json.dumps({"variant": variant, "seed": 0}) + "\n")


def quadrant_figures(variant: str, results: object) -> list[dict[str, object]]:
    """Fixture figures: mean recall@1 of the top layer per seen/unseen language x domain."""
    import polars as pl

    assert isinstance(results, pl.DataFrame)
    top = results["layer"].max()
    recall = results.filter((pl.col("metric") == "recall@1|cos|none") & (pl.col("layer") == top))
    rows: list[dict[str, object]] = []

    def add(figure: str, lang: str, domain: str, part: pl.DataFrame) -> None:
        values = part["value"]
        rows.append(
            {
                "variant": variant,
                "figure": figure,
                "lang": lang,
                "domain": domain,
                "value": float(values.mean()),  # type: ignore[arg-type]
                "ci_low": float(values.quantile(0.1)),  # type: ignore[arg-type]
                "ci_high": float(values.quantile(0.9)),  # type: ignore[arg-type]
                "n": int(part["n"].sum()),
            }
        )

    plain = recall.filter(pl.col("domain") != "all")
    add("recall@1", "all", "all", recall.filter(pl.col("domain") == "all"))
    for lang_q in ("seen", "unseen"):
        lang_in = pl.col("src_lang").is_in(SEEN_LANGS) & pl.col("tgt_lang").is_in(SEEN_LANGS)
        for dom_q in ("seen", "unseen"):
            dom_in = pl.col("domain").is_in(SEEN_DOMAINS)
            part = plain.filter(
                (lang_in if lang_q == "seen" else ~lang_in)
                & (dom_in if dom_q == "seen" else ~dom_in)
            )
            add("quadrant_recall@1", lang_q, dom_q, part)
    return rows


def main() -> None:
    import polars as pl

    sys.path.insert(0, str(HERE.parent))
    from conftest import build_tiny_encoder

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = {
            seed: build_tiny_encoder(tmp / f"tiny-seed{seed}", seed=seed) for seed in (0, 1, 2)
        }
        evaluate(models[0], OUT / "eval", "all")
        evaluate(models[1], OUT / "eval-other", "all")
        study = OUT / "study"
        study.mkdir()
        (study / "study.toml").write_text(
            '[study]\nbaseline = "contrastive"\nvariants = ["contrastive", "dann+hybrid"]\n'
            "seeds = [0]\n",
            encoding="utf-8",
        )
        evaluate(models[0], study / "base", "last")
        figures: list[dict[str, object]] = []
        summaries = [
            pl.read_parquet(study / "base" / "results.parquet").with_columns(
                variant=pl.lit("base"), seed=pl.lit(None, pl.Int64)
            )
        ]
        figures += quadrant_figures("base", summaries[0])
        for variant, seed in VARIANTS.items():
            cell = study / "cells" / variant / "seed-0"
            make_run(cell, models[seed], variant)
            res = pl.read_parquet(cell / "diagnostics" / STEP / "results.parquet")
            figures += quadrant_figures(variant, res)
            summaries.append(
                res.with_columns(
                    checkpoint=pl.lit(f"{variant}/seed-0"),
                    variant=pl.lit(variant),
                    seed=pl.lit(0, pl.Int64),
                )
            )
        pl.concat(summaries, how="vertical_relaxed").write_parquet(study / "summary.parquet")
        fig = pl.DataFrame(figures)
        fig.write_parquet(study / "figures.parquet")
        base = fig.filter(pl.col("variant") == "contrastive").select(
            "figure", "lang", "domain", value_baseline="value"
        )
        comp = (
            fig.filter(~pl.col("variant").is_in(["contrastive"]))
            .join(base, on=["figure", "lang", "domain"])
            .with_columns(
                baseline=pl.lit("contrastive"), delta=pl.col("value") - pl.col("value_baseline")
            )
            .with_columns(
                ci_low=pl.col("delta") - 0.02,
                ci_high=pl.col("delta") + 0.02,
                p_value=pl.when(pl.col("delta").abs() > 0.02).then(0.01).otherwise(0.5),
            )
            .with_columns(p_adjusted=(pl.col("p_value") * 4).clip(upper_bound=1.0))
            .with_columns(significant=pl.col("p_adjusted") < 0.05)
            .select(
                "variant",
                "baseline",
                "figure",
                "lang",
                "domain",
                "value",
                "value_baseline",
                "delta",
                "ci_low",
                "ci_high",
                "p_value",
                "p_adjusted",
                "significant",
            )
        )
        comp.write_parquet(study / "comparison.parquet")
        (study / "summary.md").write_text("# fixture study\n", encoding="utf-8")
        freeze(OUT, tmp)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
