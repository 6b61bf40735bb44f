"""Benchmark: xrdiag's `Encoder.encode` vs sentence-transformers `encode` on the same model.

The model is the embedded default (multilingual-e5-small, converted BertModel directory); the
peer is built from that directory as `Transformer(dir)` + `Pooling(dim, "mean")`, and both see
the same texts with the same "query: " prefix. Texts: a seeded sample of the bundled corpus
across all 13 languages. sentence-transformers runs at batch sizes 16, 32 and 64 (its best is
kept); xrdiag runs with its defaults. The two are measured alternately in one process, best of
`--repeat` rounds each, model loading excluded for both.

Also printed: how close each runs to the machine's limit (model FLOP/s over a dense float32
matmul's FLOP/s measured in the same run with the same threads), and cold vs warm time of the
same call through the embedding cache (`embed_corpus` with an `ArrayStore` in a temp dir).

Run: python bench/encode.py [--quick] [--n 2000] [--repeat 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

ST_BATCH_SIZES = (16, 32, 64)


def sample_corpus(n: int, seed: int) -> pl.DataFrame:
    """n rows of the bundled corpus drawn with a seed, every language represented."""
    from xrdiag.core.corpus import load_corpus

    frame = load_corpus("default").frame
    return frame.sample(n=n, seed=seed, shuffle=True)


def model_flops(lengths: np.ndarray, layers: int, d: int, d_ff: int) -> float:
    """FLOPs of the transformer blocks on the real tokens (embeddings, norms, GELU excluded).

    Per layer and token: 2 * (4 d^2 + 2 d d_ff) for the Q, K, V, output and two feed-forward
    products, plus 4 T d for the two attention products (QK^T and AV), T = the sentence's own
    token count (what unpadded execution needs). One count for both sides, so the fractions
    compare useful throughput; padding a peer computes is its own overhead.
    """
    tokens = float(lengths.sum())
    linear = tokens * 2.0 * (4 * d * d + 2 * d * d_ff)
    attention = float((lengths.astype(np.float64) ** 2).sum()) * 4.0 * d
    return layers * (linear + attention)


def matmul_flops_per_s(size: int = 2048, repeat: int = 5) -> float:
    """Best FLOP/s of a dense float32 square matmul (2 n^3 FLOPs), same torch threads."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def build_st(model_dir: str) -> object:
    """sentence-transformers on the same directory: Transformer + mean Pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformer = Transformer(model_dir)
        pooling = Pooling(transformer.auto_model.config.hidden_size, "mean")
        return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a.astype(np.float64) * b).sum(axis=1)
    den = np.linalg.norm(a.astype(np.float64), axis=1) * np.linalg.norm(b, axis=1)
    return float((num / den).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sentences, 2 rounds")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, repeat = (200, 2) if args.quick else (args.n, args.repeat)

    import torch

    from xrdiag.cache.store import ArrayStore
    from xrdiag.core.corpus import Corpus
    from xrdiag.core.encoding.embedding import embed_corpus
    from xrdiag.core.encoding.encoder import DEFAULT_TOKEN_BUDGET, Encoder

    frame = sample_corpus(n, args.seed)
    texts = frame["text"].to_list()
    encoder = Encoder("default", device="cpu")
    model_dir = encoder.model_path
    prefix = encoder.spec.prefix
    encoder.model  # noqa: B018  (load weights and tokenizer outside the timings)
    st = build_st(model_dir)
    prefixed = [prefix + t for t in texts]
    cfg = encoder.model.config

    start = time.perf_counter()
    ids = encoder.tokenize(texts)
    tokenize_s = time.perf_counter() - start
    lengths = np.array([len(x) for x in ids])
    flops = model_flops(lengths, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size)
    print(
        f"model: {model_dir} ({cfg.model_type}, {cfg.num_hidden_layers} layers, "
        f"d={cfg.hidden_size}, d_ff={cfg.intermediate_size}), prefix {prefix!r}"
    )
    print(
        f"texts: {n} sentences, {frame['lang'].n_unique()} languages (seed {args.seed}), "
        f"{int(lengths.sum())} tokens (mean {lengths.mean():.1f}, max {int(lengths.max())})"
    )
    print(f"torch threads: {torch.get_num_threads()}; xrdiag token budget {DEFAULT_TOKEN_BUDGET}")

    best: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    peak = 0.0
    for round_ in range(repeat):
        peak = max(peak, matmul_flops_per_s())
        for bs in ST_BATCH_SIZES:
            name = f"st{bs}"
            dt, out = timed(lambda bs=bs: st.encode(prefixed, batch_size=bs))  # type: ignore[attr-defined]
            best[name] = min(best.get(name, float("inf")), dt)
            outputs[name] = out
        dt, out = timed(lambda: encoder.encode(texts, "last")[0])
        best["xrdiag"] = min(best.get("xrdiag", float("inf")), dt)
        outputs["xrdiag"] = out
        line = ", ".join(f"{k} {n / v:.1f}/s" for k, v in best.items())
        print(f"  round {round_ + 1}/{repeat} (best so far, sentences/s): {line}", flush=True)

    st_name = min(ST_BATCH_SIZES, key=lambda bs: best[f"st{bs}"])
    st_s, xr_s = best[f"st{st_name}"], best["xrdiag"]
    print(f"matmul peak (float32 2048^3, best): {peak / 1e9:.1f} GFLOP/s")
    print(
        f"model FLOPs counted: {flops / 1e12:.3f} TFLOP (blocks on real tokens: per layer and "
        "token 2(4d^2 + 2 d d_ff) linear + 4 T d attention, T = own length; rest excluded)"
    )
    for bs in ST_BATCH_SIZES:
        print(f"sentence-transformers batch {bs}: {n / best[f'st{bs}']:.1f} sentences/s")
    print(f"sentence-transformers (best, batch {st_name}): {n / st_s:.1f} sentences/s")
    print(f"xrdiag (defaults): {n / xr_s:.1f} sentences/s")
    print(f"tokenisation (xrdiag, once up front): {tokenize_s:.3f} s = {tokenize_s / xr_s:.1%}")
    print(f"ratio vs sentence-transformers: {st_s / xr_s:.2f}")
    cos = min(min_cosine(outputs["xrdiag"], outputs[f"st{bs}"]) for bs in ST_BATCH_SIZES)
    print(f"min cosine xrdiag vs sentence-transformers: {cos:.7f}")
    print(f"fraction of matmul peak: {flops / xr_s / peak:.2f}")
    print(f"sentence-transformers fraction of matmul peak: {flops / st_s / peak:.2f}")

    corpus = Corpus.from_frame(frame.select("id", "lang", "domain", "text"), source="bench")
    with tempfile.TemporaryDirectory() as tmp:
        store = ArrayStore(Path(tmp))
        cold, _ = timed(lambda: embed_corpus(encoder, corpus, "last", store=store).layers)
        warm = float("inf")
        for _ in range(3):
            dt, emb = timed(lambda: embed_corpus(encoder, corpus, "last", store=store).layers)
            warm = min(warm, dt)
    print(f"cache cold (computes, model loaded): {cold:.3f} s; warm (hits): {warm * 1e3:.1f} ms")
    print(f"warm speed-up: {cold / warm:.0f}")


if __name__ == "__main__":
    main()
