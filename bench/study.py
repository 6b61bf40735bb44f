"""How much the frozen prefix saves a study: the quick preset with and without reusing it.

The same study (the quick preset's model, data, protocol and evaluation; `--seeds` and
`--variants` to shorten it) runs twice from an empty cache each time: once as it is, where
the embeddings and the lower 11 blocks run once per sentence for every cell, and once with
`train.model.reuse_frozen_prefix = false`, where every training step and every evaluation runs
the whole model. It prints both wall times and `frozen-prefix speed-up: X.XX` (the peer is the
full forward), then checks that the two studies' recall@1 figures agree to float rounding.

Run: python bench/study.py [--seeds 0,1,2] [--variants baseline,dann_domain,hybrid,dann_hybrid]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def run(out: Path, cache: Path, reuse: bool, seeds: str, variants: str) -> float:
    """Wall time of one quick study from an empty cache."""
    from xrdiag.core.study.config import load_study_config
    from xrdiag.core.study.runner import run_study

    os.environ["XRDIAG_CACHE_DIR"] = str(cache)
    sets = [f"study.seeds=[{seeds}]", f"study.variants={variants.split(',')!r}".replace("'", '"'),
            f"train.model.reuse_frozen_prefix={'true' if reuse else 'false'}"]  # fmt: skip
    cfg = load_study_config(None, sets, preset="quick")
    start = time.perf_counter()
    outcome = run_study(cfg, out)
    assert outcome.status == "finished", outcome
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default="baseline,dann_domain,hybrid,dann_hybrid")
    args = parser.parse_args()
    import polars as pl

    root = Path(tempfile.mkdtemp(prefix="xrdiag-bench-study-"))
    try:
        times = {}
        for reuse in (False, True):
            name = "prefix" if reuse else "full"
            times[name] = run(root / name, root / f"cache-{name}", reuse, args.seeds,
                              args.variants)  # fmt: skip
            print(f"{name}: {times[name]:.1f} s", flush=True)
        print(f"frozen-prefix speed-up: {times['full'] / times['prefix']:.2f}")
        figures = {n: pl.read_parquet(root / n / "figures.parquet") for n in times}
        keys = ["variant", "figure", "lang", "domain"]
        joined = figures["full"].join(figures["prefix"], on=keys, suffix="_prefix")
        gap = (joined["value"] - joined["value_prefix"]).abs().max()
        print(f"largest difference between the two studies' figures: {gap:.2e}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
