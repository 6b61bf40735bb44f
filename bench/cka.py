"""Layer-wise cross-language linear CKA: xrdiag's `cka_matrix` vs Gram-matrix (n x n) CKA.

13 layers x all 45 pairs of 10 languages, n = 3,000 sentences, d = 384 (synthetic, seeded:
shared content + per-language offset and distortion + per-layer noise). The peer is the
Gram-matrix implementation of Kornblith et al. 2019 (their reference notebook: K = X X^T,
centre, HSIC = <K, L>_F) called per pair, timed on a subset of pairs and extrapolated per pair.
A second, stronger peer caches each language's centred Gram once per layer.

Run: python bench/cka.py [--quick] [--pairs 24] [--seed 0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations

import numpy as np

from xrdiag.analyses.cka import cka_matrix


def synthetic(layers: int, langs: int, n: int, d: int, seed: int) -> list[list[np.ndarray]]:
    """float32 [n, d] per (layer, language): content mixed per layer, language offset + noise."""
    rng = np.random.default_rng(seed)
    content = rng.standard_normal((n, d))
    offsets = rng.standard_normal((langs, d)) * 2.0
    distort = [rng.standard_normal((d, d)) / np.sqrt(d) for _ in range(langs)]
    out = []
    for layer in range(layers):
        mix = np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d)
        base = content @ mix
        strength = 0.8 - 0.5 * np.sin(np.pi * layer / max(1, layers - 1))  # aligned mid-depth
        noise = 0.3 + 0.05 * layer
        out.append(
            [
                (
                    base
                    + strength * base @ distort[k]
                    + offsets[k]
                    + noise * rng.standard_normal((n, d))
                ).astype(np.float32)
                for k in range(langs)
            ]
        )
    return out


def gram_linear(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x @ x.T


def center_gram(gram: np.ndarray) -> np.ndarray:
    """H K H without forming H (Kornblith et al. 2019 reference code)."""
    gram = gram.copy()
    means = np.mean(gram, 0, dtype=np.float64)
    means -= np.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
    return gram


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    kx, ky = center_gram(gram_linear(x)), center_gram(gram_linear(y))
    return float(kx.ravel() @ ky.ravel() / (np.linalg.norm(kx) * np.linalg.norm(ky)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--pairs", type=int, default=24, help="pairs timed for the per-pair peer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of xrdiag; the median is kept")
    args = ap.parse_args()
    layers, langs, n, d = (3, 4, 400, 64) if args.quick else (13, 10, 3000, 384)
    pairs = [(lay, a, b) for lay in range(layers) for a, b in combinations(range(langs), 2)]
    print(f"layers={layers} langs={langs} pairs={len(pairs)} n={n} d={d} seed={args.seed}")
    data = synthetic(layers, langs, n, d, args.seed)

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = {lay: cka_matrix(data[lay]) for lay in range(layers)}
        times.append(time.perf_counter() - t0)
    t_ours = float(np.median(times))

    rng = np.random.default_rng(args.seed + 1)
    subset = [pairs[i] for i in sorted(rng.choice(len(pairs), min(args.pairs, len(pairs)), False))]
    t0 = time.perf_counter()
    ref = {(lay, a, b): gram_cka(data[lay][a], data[lay][b]) for lay, a, b in subset}
    t_pair = (time.perf_counter() - t0) / len(subset) * len(pairs)

    cache_layers = 1 if not args.quick else layers
    t0 = time.perf_counter()
    for lay in range(cache_layers):
        grams = [center_gram(gram_linear(x)) for x in data[lay]]
        norms = [np.linalg.norm(g) for g in grams]
        for a, b in combinations(range(langs), 2):
            v = float(grams[a].ravel() @ grams[b].ravel() / (norms[a] * norms[b]))
            ref[(lay, a, b)] = v
        del grams
    t_cached = (time.perf_counter() - t0) / cache_layers * layers

    diff = max(abs(ours[lay][a, b] - v) for (lay, a, b), v in ref.items())
    values = np.array([ours[lay][a, b] for lay, a, b in pairs])
    lo, mid, hi = values.min(), np.median(values), values.max()
    print(f"cka values: min {lo:.4f} median {mid:.4f} max {hi:.4f}")
    print(
        f"xrdiag cka_matrix (float32 syrk, all {len(pairs)} pairs, median of {args.repeat}): "
        f"{t_ours:.2f} s"
    )
    print(
        f"gram-matrix CKA per pair (float64, {len(subset)} pairs timed, "
        f"extrapolated to {len(pairs)}): {t_pair:.2f} s"
    )
    print(
        f"gram-matrix CKA, Grams cached per layer+language ({cache_layers} layer(s) timed, "
        f"extrapolated to {layers}): {t_cached:.2f} s"
    )
    print(f"max abs difference vs gram-matrix CKA ({len(ref)} pairs): {diff:.2e}")
    print(f"ratio vs gram-matrix CKA: {t_pair / t_ours:.2f}")
    print(f"ratio vs cached-Gram CKA: {t_cached / t_ours:.2f}")


if __name__ == "__main__":
    main()
