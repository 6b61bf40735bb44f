"""A full `xrdiag eval` on the embedded defaults: cold cache vs warm cache, encoding vs analyses.

Goals: the analyses, projection aside, add at most 20 % to the encoding time; a warm
rerun is at least 30x faster than a cold one.

    python bench/eval.py            # the whole bundled corpus (13 languages, 39,923 sentences)
    python bench/eval.py --max-per-domain 100   # 13 languages, 7,644 sentences
    python bench/eval.py --quick    # 4 languages, 30 ids per domain
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", default="last")
    parser.add_argument("--max-per-domain", type=int, default=None, help="cap ids per domain")
    parser.add_argument("--analyses", default="retrieval,cka,probe,geometry,projection")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # A fresh cache makes the first run cold; the embedded model is converted before timing.
        os.environ["XRDIAG_CACHE_DIR"] = str(Path(tmp) / "cache")
        from xrdiag.analyses.registry import parse_analyses
        from xrdiag.core.encoding.embedded_model import embedded_model_dir
        from xrdiag.core.evaluate import EvalOptions, run_eval

        embedded_model_dir()
        options = EvalOptions(
            analyses=parse_analyses(args.analyses),
            layers=args.layers,
            device="cpu",
            max_per_domain=30 if args.quick else args.max_per_domain,
            **({"langs": "en,fr,zh,ar"} if args.quick else {}),
        )
        runs = {}
        for label in ("cold", "warm"):
            start = time.perf_counter()
            outcome = run_eval("default", "default", Path(tmp) / label, options)
            runs[label] = (time.perf_counter() - start, outcome)

    cold_s, cold = runs["cold"]
    warm_s, warm = runs["warm"]
    rows = cold.manifest["rows"]["n"]
    print(f"rows: {rows}  layers: {cold.manifest['layers']}  analyses: {args.analyses}")
    for label, (seconds, outcome) in runs.items():
        steps = "  ".join(f"{k} {v:.2f}s" for k, v in outcome.timings.items())
        print(f"{label:5s} {seconds:8.2f} s   {steps}")
    encode = cold.timings["encode"]
    analyses = sum(
        v for k, v in cold.timings.items() if k not in ("load", "encode", "projection", "total")
    )
    print(f"encoding: {encode:.2f} s ({rows / encode:.1f} sentences/s)")
    print(f"analyses without projection: {analyses:.2f} s")
    print(f"analyses / encoding: {analyses / encode:.2f} (goal <= 0.20)")
    print(f"projection: {cold.timings.get('projection', 0.0):.2f} s cold, "
          f"{warm.timings.get('projection', 0.0):.2f} s warm (cached)")  # fmt: skip
    print(f"warm embeddings from cache: {warm.manifest['embeddings_from_cache']}")
    print(f"warm speed-up: {cold_s / warm_s:.1f}x (goal >= 30x)")


if __name__ == "__main__":
    main()
