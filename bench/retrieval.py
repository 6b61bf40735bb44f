"""Benchmark: cross-lingual recall@k by xrdiag's blocked search vs faiss and brute-force NumPy.

Run `python bench/retrieval.py` (20,000 x 20,000, d = 384) or `--quick` (2,000 x 2,000).
Each method runs in its own subprocess on the same seeded synthetic embeddings (shared meaning
vectors + per-language offsets + noise, L2-normalised, documents shuffled) so that its peak RSS
(VmHWM, reset after the data is built) is its own. Times cover search + recall only.
Prints `ratio vs faiss: X.XX` (faiss time / xrdiag time; > 1 means xrdiag is faster) and
`ratio vs numpy: X.XX`, and checks that the three recalls are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

KS = (1, 5, 10)


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(queries, docs, gold): translation pairs with language offsets, docs in shuffled order."""
    rng = np.random.default_rng(seed)
    meaning = rng.standard_normal((n, dim), dtype=np.float32)
    src_off, tgt_off = 1.5 * rng.standard_normal((2, dim), dtype=np.float32)
    queries = meaning + src_off + 1.4 * rng.standard_normal((n, dim), dtype=np.float32)
    docs = meaning + tgt_off + 1.4 * rng.standard_normal((n, dim), dtype=np.float32)
    perm = rng.permutation(n)
    docs = docs[perm]
    gold = np.empty(n, dtype=np.int64)
    gold[perm] = np.arange(n)  # query i's translation now sits at row gold[i]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    return queries, docs, gold


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux clear_refs); return the baseline in KiB.

    Where the reset is refused the baseline is the peak so far, which can only understate.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        print("warning: could not reset VmHWM; peaks are understated", file=sys.stderr)
    return _status_kib("VmHWM")


def _recall_from_topk(indices: np.ndarray, gold: np.ndarray) -> list[float]:
    hit = indices == gold[:, None]
    return [float(hit[:, :k].any(axis=1).mean()) for k in KS]


def run_xrdiag(q: np.ndarray, d: np.ndarray, gold: np.ndarray, block_size: int) -> list[float]:
    from xrdiag.analyses.topk import gold_ranks

    ranks = gold_ranks(q, d, gold, block_size=block_size)
    return [float((ranks <= k).mean()) for k in KS]


def run_faiss(q: np.ndarray, d: np.ndarray, gold: np.ndarray, block_size: int) -> list[float]:
    import faiss

    index = faiss.IndexFlatIP(d.shape[1])
    index.add(d)
    _, indices = index.search(q, max(KS))
    return _recall_from_topk(indices, gold)


def run_numpy(q: np.ndarray, d: np.ndarray, gold: np.ndarray, block_size: int) -> list[float]:
    sims = q @ d.T
    k = max(KS)
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    return _recall_from_topk(np.take_along_axis(top, order, axis=1), gold)


METHODS = {"xrdiag": run_xrdiag, "faiss": run_faiss, "numpy": run_numpy}


def worker(method: str, data: str, block_size: int) -> None:
    """Load the data, reset the peak RSS, time one method; print a JSON line."""
    with np.load(data) as arrays:
        q, d, gold = arrays["queries"], arrays["docs"], arrays["gold"]
    if method == "faiss":
        import faiss  # noqa: F401  (library load is not the search's memory)
    base = _reset_peak()
    start = time.perf_counter()
    recall = METHODS[method](q, d, gold, block_size)
    wall = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    print(json.dumps({"method": method, "time": wall, "peak_mib": (peak - base) / 1024,
                      "recall": recall}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (n = 2000)")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many rounds")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--worker", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.block_size)
        return
    n = 2_000 if args.quick else args.n
    methods = [m for m in args.methods.split(",") if m]
    print(
        f"retrieval bench: {n} x {n} queries x docs, d={args.dim}, "
        f"block_size={args.block_size}, cpus={os.cpu_count()}, best of {args.repeat}"
    )
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        q, d, gold = synthetic(n, args.dim)
        np.savez(data, queries=q, docs=d, gold=gold)
        del q, d, gold
        for _ in range(args.repeat):  # rounds interleave the methods, so load drifts hit all
            for method in methods:
                cmd = [sys.executable, __file__, "--worker", method, "--data", data,
                       "--block-size", str(args.block_size)]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs[method].append(json.loads(out.strip().splitlines()[-1]))
    results = {}
    for method, rs in runs.items():
        best = min(rs, key=lambda r: r["time"])
        best["peak_mib"] = max(r["peak_mib"] for r in rs)
        results[method] = best
        recall = " ".join(f"recall@{k}={v:.4f}" for k, v in zip(KS, best["recall"], strict=True))
        print(f"{method:7s}: {best['time']:7.3f} s  peak +{best['peak_mib']:7.1f} MiB  {recall}")
    same = all(r["recall"] == next(iter(results.values()))["recall"] for r in results.values())
    print(f"recall equal across methods: {same}")
    for peer in ("faiss", "numpy"):
        if peer in results and "xrdiag" in results:
            ratio = results[peer]["time"] / results["xrdiag"]["time"]
            print(f"ratio vs {peer}: {ratio:.2f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
