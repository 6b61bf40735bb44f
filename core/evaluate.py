"""`xrdiag eval`: embed once through the cache, run the chosen diagnostics, write the results.

The analyses are pure functions on arrays; this module feeds them, times them, caches the one
that is slow and deterministic (projections), and writes `results.parquet`, `projection.parquet`,
`rows.parquet` and `manifest.json` into the output directory, each atomically.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from xrdiag.analyses.perturb import DEFAULT_KINDS, check_rate, parse_noise_kinds
from xrdiag.analyses.schema import empty_results
from xrdiag.cache.store import ArrayStore, cache_key
from xrdiag.core.corpus import Corpus, load_corpus
from xrdiag.core.encoding.embedding import Embeddings, embed_corpus, layer_key
from xrdiag.core.encoding.encoder import DEFAULT_TOKEN_BUDGET, Encoder
from xrdiag.core.layout.atomic import write_atomic
from xrdiag.core.layout.dirs import EvalDir
from xrdiag.core.layout.names import ROWS
from xrdiag.core.provenance import EVAL_PACKAGES, package_versions
from xrdiag.errors import UserError, comma_choices

ANALYSES = ("retrieval", "cka", "probe", "geometry", "projection")
# Run only when asked for by name or by `all` (robustness encodes the corpus once per noise).
OPTIONAL_ANALYSES = ("robustness",)
ALL_ANALYSES = ANALYSES + OPTIONAL_ANALYSES

# A step reports (name, done, total); total None means "running, size unknown".
Progress = Callable[[str, int, int | None], None]


@dataclass
class EvalOptions:
    """Everything `xrdiag eval` takes besides the model, the corpus and the output directory."""

    analyses: tuple[str, ...] = ANALYSES
    layers: str = "last"
    langs: str | None = None
    domains: str | None = None
    pivot: str | None = None
    max_per_domain: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    ks: tuple[int, ...] = (1, 5, 10)
    # Language bias ranks each query against every row of every language: a seeded sample of
    # queries per language keeps it to seconds; `n` in the results says how many were used.
    bias_queries_per_lang: int | None = 200
    projection: str = "pca"
    projection_max_points: int | None = None
    probe_max_rows: int | None = None
    pooling: str = "mean"
    max_length: int = 512
    device: str = "auto"
    token_budget: int = DEFAULT_TOKEN_BUDGET
    # Robustness to input noise (analyses/perturb.py): kinds, the per-unit rate, their seed.
    noise_kinds: tuple[str, ...] = DEFAULT_KINDS
    noise_rate: float = 0.1
    noise_seed: int = 0

    def __post_init__(self) -> None:
        """Validate the noise options (a comma string of kinds is accepted, as from the CLI)."""
        self.noise_kinds = parse_noise_kinds(self.noise_kinds)
        self.noise_rate = check_rate(self.noise_rate)
        if isinstance(self.noise_seed, bool) or not isinstance(self.noise_seed, int):
            raise UserError(f"--noise-seed {self.noise_seed!r}: expected a non-negative integer")
        if self.noise_seed < 0:
            raise UserError(f"--noise-seed {self.noise_seed}: expected a non-negative integer")


@dataclass
class EvalOutcome:
    """What an evaluation produced and where it wrote it."""

    out_dir: Path
    results: pl.DataFrame
    manifest: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def parse_analyses(text: str) -> tuple[str, ...]:
    """`retrieval,cka` -> validated tuple; `all` means every analysis, robustness included."""
    if text.strip() == "all":
        return ALL_ANALYSES
    return comma_choices("--analyses", text, ALL_ANALYSES, " (or all)")


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)


def run_eval(
    model: str,
    corpus_path: str | None,
    out_dir: Path,
    options: EvalOptions,
    progress: Progress | None = None,
) -> EvalOutcome:
    """Embed, analyse, write; the second run on the same inputs is served from the cache."""
    report: Progress = progress or (lambda name, done, total: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with _timed(timings, "load"):
        corpus = load_corpus(corpus_path).filter(
            langs=options.langs,
            domains=options.domains,
            max_per_domain=options.max_per_domain,
            seed=options.seed,
        )
        encoder = Encoder(
            model,
            device=options.device,
            pooling=options.pooling,
            max_length=options.max_length,
            token_budget=options.token_budget,
        )
        layers = encoder.resolve_layers(options.layers)
    pivot = options.pivot
    if pivot is not None and pivot not in corpus.langs:
        raise UserError(
            f"--pivot {pivot}: not a language of the corpus ({', '.join(corpus.langs)})"
        )
    store = ArrayStore()
    with _timed(timings, "encode"):
        emb = embed_corpus(
            encoder, corpus, layers, store=store, progress=lambda d, t: report("encode", d, t)
        )
    checkpoint = checkpoint_name(model)
    frames: list[pl.DataFrame] = []
    from_cache: list[str] = []
    projection: pl.DataFrame | None = None
    for name in options.analyses:
        report(name, 0, None)
        with _timed(timings, name):
            if name == "projection":
                projection = _projection(emb, encoder, store, options)
            elif name == "robustness":
                frames.append(_robustness(encoder, corpus, emb, store, options, pivot, report))
            else:
                frames.append(
                    _cached_analysis(name, emb, encoder, store, options, pivot, from_cache)
                )
        report(name, 1, 1)
    results = (
        pl.concat(frames).with_columns(pl.lit(checkpoint).alias("checkpoint"))
        if frames
        else empty_results()
    )
    timings["total"] = round(time.perf_counter() - started, 3)
    manifest = _manifest(model, checkpoint, encoder, emb, corpus.source, layers, options, timings)
    manifest["analyses_from_cache"] = from_cache
    out_dir.mkdir(parents=True, exist_ok=True)
    target = EvalDir(out_dir)
    write_atomic(target.results, results.write_parquet)
    write_atomic(target.rows, emb.meta.write_parquet)
    if projection is not None:
        write_atomic(target.projection, projection.write_parquet)
    write_atomic(  # the manifest last: an eval dir is complete once it exists
        target.manifest,
        lambda p: p.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"),
    )
    return EvalOutcome(out_dir=out_dir, results=results, manifest=manifest, timings=timings)


def checkpoint_name(model: str) -> str:
    """How a model is named in the results: `default`, a directory's name, or the hub id."""
    path = Path(model).expanduser()
    return path.name if path.exists() else model


# The options each analysis reads: part of its cache key, so changing one recomputes it.
_ANALYSIS_OPTIONS = {
    "retrieval": ("ks", "bootstrap", "seed", "bias_queries_per_lang"),
    "cka": (),
    "probe": ("seed", "probe_max_rows"),
    "geometry": ("seed",),
}
# The modules whose code decides each analysis' numbers: their source is hashed into the key, so
# a change of the code can never be answered from a stale cache entry.
_ANALYSIS_MODULES = {
    "retrieval": ("retrieval", "topk", "bootstrap", "schema"),
    "cka": ("cka", "schema"),
    "probe": ("probes", "bootstrap", "schema"),
    "geometry": ("geometry", "schema"),
}


def _code_hash(name: str) -> str:
    import xrdiag.analyses

    folder = Path(xrdiag.analyses.__file__).parent
    digest = hashlib.sha256()
    for module in _ANALYSIS_MODULES[name]:
        digest.update((folder / f"{module}.py").read_bytes())
    return digest.hexdigest()


def _cached_analysis(
    name: str,
    emb: Embeddings,
    encoder: Encoder,
    store: ArrayStore,
    options: EvalOptions,
    pivot: str | None,
    from_cache: list[str],
) -> pl.DataFrame:
    """An analysis' frame, from the cache when the same embeddings, options and code made it.

    The analyses are deterministic given these (every random choice takes the seed), so a
    warm rerun of `xrdiag eval` costs a cache read instead of minutes of probes and bootstraps.
    """
    import io

    key = cache_key(
        kind="results",
        analysis=name,
        embeddings=[layer_key(encoder, emb.corpus_fingerprint, layer) for layer in emb.layers],
        options={opt: _plain(getattr(options, opt)) for opt in _ANALYSIS_OPTIONS[name]},
        pivot=pivot,
        code=_code_hash(name),
    )
    hit = store.get(key)
    if hit is not None:
        from_cache.append(name)
        return pl.read_parquet(io.BytesIO(hit["parquet"].tobytes()))
    frame = _analysis(name, emb, options, pivot)
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    store.put(key, {"parquet": np.frombuffer(buffer.getvalue(), dtype=np.uint8)})
    return frame


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _analysis(name: str, emb: Embeddings, options: EvalOptions, pivot: str | None) -> pl.DataFrame:
    meta, layers = emb.meta, emb.layers
    if name == "retrieval":
        from xrdiag.analyses.retrieval import language_bias, retrieval_results

        frames = []
        for layer, array in layers.items():
            common = {"layer": layer, "bootstrap": options.bootstrap, "seed": options.seed}
            frames.append(retrieval_results(array, meta, pivot=pivot, ks=options.ks, **common))
            if meta["lang"].n_unique() > 2:
                frames.append(
                    language_bias(
                        array, meta, queries_per_lang=options.bias_queries_per_lang, **common
                    )
                )
        return pl.concat(frames)
    if name == "cka":
        from xrdiag.analyses.cka import cross_language_cka, layer_cka

        frames = [cross_language_cka(layers, meta, per_domain=True)]
        if len(layers) > 1:
            frames.append(layer_cka(layers, meta))
        return pl.concat(frames)
    if name == "probe":
        from xrdiag.analyses.probes import pad_results, probe_results

        common = {"seed": options.seed, "max_rows": options.probe_max_rows}
        frames = []
        if meta["lang"].n_unique() > 1:
            frames.append(probe_results(layers, meta, target="lang", **common))
        if meta["domain"].n_unique() > 1:
            frames.append(probe_results(layers, meta, target="domain", **common))
            frames.append(pad_results(layers, meta, **common))
        return pl.concat(frames) if frames else empty_results()
    if name == "geometry":
        from xrdiag.analyses.geometry import geometry_results

        return geometry_results(layers, meta, seed=options.seed)
    raise AssertionError(f"unknown analysis {name}")  # parse_analyses rejects it first


def _robustness(
    encoder: Encoder,
    corpus: Corpus,
    emb: Embeddings,
    store: ArrayStore,
    options: EvalOptions,
    pivot: str | None,
    report: Progress,
) -> pl.DataFrame:
    """Recall@1 under query noise (core/robustness.py); perturbed embeddings are cached."""
    from xrdiag.core.robustness import noise_robustness

    return noise_robustness(
        encoder,
        corpus,
        emb,
        kinds=options.noise_kinds,
        rate=options.noise_rate,
        noise_seed=options.noise_seed,
        pivot=pivot,
        bootstrap=options.bootstrap,
        seed=options.seed,
        store=store,
        progress=report,
    )


def _projection(
    emb: Embeddings, encoder: Encoder, store: ArrayStore, options: EvalOptions
) -> pl.DataFrame:
    """2-D scatter of every requested layer, cached by embedding key and projection parameters."""
    from xrdiag.analyses.projection import Projection, projection_frame

    frames = []
    for layer, array in emb.layers.items():
        proj = Projection(
            method=options.projection, seed=options.seed, max_points=options.projection_max_points
        )
        key = cache_key(
            kind="projection",
            embeddings=layer_key(encoder, emb.corpus_fingerprint, layer),
            params=proj.params(),
        )
        hit = store.get(key)
        if hit is not None:
            proj.embedding_, proj.indices_ = hit["embedding"], hit["indices"]
            proj.n_points_, proj.n_input_ = len(hit["indices"]), array.shape[0]
        else:
            proj.fit(array)
            store.put(key, {"embedding": proj.embedding_, "indices": proj.indices_})
        frame = projection_frame(proj, emb.meta)
        frames.append(
            frame.with_columns(
                pl.lit(layer, dtype=pl.Int32).alias("layer"),
                pl.lit(options.projection).alias("method"),
            )
        )
    return pl.concat(frames)


def _manifest(
    model: str,
    checkpoint: str,
    encoder: Encoder,
    emb: Embeddings,
    corpus_source: str,
    layers: list[int],
    options: EvalOptions,
    timings: dict[str, float],
) -> dict[str, Any]:
    rows_digest = hashlib.sha256()
    for row in emb.meta.select("id", "lang").iter_rows():
        rows_digest.update(f"{row[0]}\t{row[1]}\n".encode())
    return {
        "schema_version": 1,
        "checkpoint": checkpoint,
        "model": {"name": model, "path": encoder.model_path, "fingerprint": emb.model_fingerprint},
        "encoding": emb.spec,
        "corpus": {"source": corpus_source, "fingerprint": emb.corpus_fingerprint},
        "rows": {
            "n": emb.n,
            "file": ROWS,
            "sha256_of_id_lang": rows_digest.hexdigest(),
            "langs": sorted(emb.meta["lang"].unique().to_list()),
            "domains": sorted(emb.meta["domain"].unique().to_list()),
        },
        "layers": layers,
        "embeddings_from_cache": emb.cached_layers,
        "options": asdict(options),
        "seed": options.seed,
        "timings_s": timings,
        "versions": package_versions(EVAL_PACKAGES, missing="not installed"),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def summary_frame(results: pl.DataFrame, pivot: str | None) -> pl.DataFrame:
    """Headline per language at the top layer: recall@1 to and from the pivot, probe, CKA.

    The numbers come straight from `results`; this only picks and pivots them.
    """
    if results.height == 0:
        return pl.DataFrame()
    top = results["layer"].max()
    at_top = results.filter((pl.col("layer") == top) & (pl.col("domain") == "all"))
    retrieval = at_top.filter(pl.col("analysis") == "retrieval")
    langs = sorted(set(retrieval["src_lang"].drop_nulls().to_list())) if retrieval.height else []
    if not langs:
        return pl.DataFrame()
    hub = pivot or ("en" if "en" in langs else langs[0])
    rows = []
    for lang in langs:
        if lang == hub:
            continue
        row: dict[str, Any] = {
            "lang": lang,
            f"R@1 ->{hub}": _pick(retrieval, "recall@1|cos|none", lang, hub),
            f"R@1 {hub}->": _pick(retrieval, "recall@1|cos|none", hub, lang),
            f"R@1 ->{hub} centered": _pick(retrieval, "recall@1|cos|center", lang, hub),
            f"R@1 ->{hub} margin": _pick(retrieval, "recall@1|margin|none", lang, hub),
        }
        cka = at_top.filter(
            (pl.col("metric") == "linear_cka")
            & (
                ((pl.col("src_lang") == lang) & (pl.col("tgt_lang") == hub))
                | ((pl.col("src_lang") == hub) & (pl.col("tgt_lang") == lang))
            )
        )
        row[f"CKA with {hub}"] = float(cka["value"][0]) if cka.height else None
        rows.append(row)
    return pl.DataFrame(rows)


def _pick(frame: pl.DataFrame, metric: str, src: str, tgt: str) -> float | None:
    hit = frame.filter(
        (pl.col("metric") == metric) & (pl.col("src_lang") == src) & (pl.col("tgt_lang") == tgt)
    )
    return float(hit["value"][0]) if hit.height else None


def scalar_metrics(results: pl.DataFrame) -> dict[str, float]:
    """Layer-wise scalars worth one line each (probe accuracies, isotropy) at the top layer."""
    if results.height == 0:
        return {}
    top = results["layer"].max()
    wanted = (
        "lang_probe_acc",
        "lang_probe_chance",
        "domain_probe_acc",
        "domain_probe_chance",
        "isotropy_partition_ratio",
        "mean_random_cosine",
    )
    picked = results.filter(
        (pl.col("layer") == top) & pl.col("metric").is_in(wanted) & (pl.col("domain") == "all")
    )
    return {m: float(v) for m, v in zip(picked["metric"], picked["value"], strict=True)}
