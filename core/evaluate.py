"""`xrdiag eval`: embed once through the cache, run the chosen diagnostics, write the results.

The analyses are pure functions on arrays, declared in `analyses/registry.py`; this module
feeds them (and, to those that need it, an `embed` callback through the same encoder and
cache), times them, caches each one's frame (keyed by the embeddings, the options it reads and
its code), and writes `results.parquet`, `projection.parquet`, `rows.parquet` and
`manifest.json` into the output directory, each atomically.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from xrdiag.analyses import registry
from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.perturb import DEFAULT_KINDS, check_rate, parse_noise_kinds
from xrdiag.analyses.schema import empty_results
from xrdiag.cache.store import ArrayStore, cache_key
from xrdiag.core.corpus import Corpus, load_corpus
from xrdiag.core.encoding.embedding import Embeddings, embed_corpus, layer_key, no_embeddings
from xrdiag.core.encoding.encoder import DEFAULT_TOKEN_BUDGET, Encoder
from xrdiag.core.layout.atomic import write_atomic
from xrdiag.core.layout.dirs import EvalDir
from xrdiag.core.layout.names import ROWS
from xrdiag.core.provenance import EVAL_PACKAGES, absolute_source, package_versions
from xrdiag.errors import UserError

# numpy's legacy seeding (and torch's) takes 32-bit seeds; every seed stays in that range.
SEED_MAX = 2**32 - 1
if TYPE_CHECKING:
    from xrdiag.core.encoding.distributed import Processes

# A step reports (name, done, total); total None means "running, size unknown".
Progress = Callable[[str, int, int | None], None]


@dataclass
class EvalOptions:
    """Everything `xrdiag eval` takes besides the model, the corpus and the output directory."""

    analyses: tuple[str, ...] = field(default_factory=registry.default_names)
    layers: str = "last"
    langs: str | None = None
    domains: str | None = None
    splits: str | None = None
    pivot: str | None = None
    columns: str | None = None  # the column mapping of an hf: corpus
    max_per_domain: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    ks: tuple[int, ...] = (1, 5, 10)
    # Language bias ranks each query against every row of every language: a seeded sample of
    # queries per language keeps it to seconds; `n` in the results says how many were used.
    bias_queries_per_lang: int | None = 200
    # Retrieval candidate pools (analyses/retrieval.py): one common pool per language pair, or
    # equal-size seeded within-domain pools; identical texts under two ids count as the gold
    # ("text") or not ("id"); k of the margin; components LIR removes; rows per matmul block.
    pool: str = "common"
    pool_size: int | None = None
    pool_repeats: int = 5
    duplicates: str = "text"
    margin_k: int = 4
    lir_components: int = 1
    block_size: int = 4096
    projection: str = "pca"
    projection_max_points: int | None = None
    probe_max_rows: int | None = None
    # None: as the model says (a checkpoint records how it was trained), else mean and 512.
    pooling: str | None = None
    max_length: int | None = None
    device: str = "auto"
    token_budget: int = DEFAULT_TOKEN_BUDGET
    # Weights and activations while encoding (float32, bfloat16, float16 on a GPU); the cache
    # key and the manifest record it.
    dtype: str = "float32"
    # Blocks below this one are computed once per sentence and shared with every model whose
    # lower layers are bit-identical (a study's base and cells); None: as the model says.
    frozen_prefix: int | None = None
    # The task analysis: a labelled sentence-pairs file (core/task/pairs_io.py: PAIRS files,
    # PAWS-X, XNLI) scored by the checkpoint's pair-classification head; its dev and test rows
    # when it has a split, else every row.
    task_pairs: str | None = None
    # Robustness to input noise (analyses/perturb.py): kinds, the per-unit rate, their seed.
    noise_kinds: tuple[str, ...] = DEFAULT_KINDS
    noise_rate: float = 0.1
    noise_seed: int = 0

    def __post_init__(self) -> None:
        """Validate the analyses and the noise options (comma strings accepted, as from the CLI)."""
        self.analyses = registry.parse_analyses(self.analyses)
        self.noise_kinds = parse_noise_kinds(self.noise_kinds)
        self.noise_rate = check_rate(self.noise_rate)
        # Every number is checked here, before any work: a bad one deep in an analysis would
        # surface as a numpy traceback after minutes of encoding (or as another flag's error).
        _check_int("--seed", self.seed, 0, SEED_MAX)
        _check_int("--noise-seed", self.noise_seed, 0, SEED_MAX)
        _check_int("--bootstrap", self.bootstrap, 0)
        self.ks = tuple(self.ks)
        if not self.ks:
            raise UserError("--ks: expected at least one cut-off, e.g. 1,5,10")
        for k in self.ks:
            _check_int("--ks", k, 1)
        for flag, name, low in (("--margin-k", "margin_k", 1), ("--block-size", "block_size", 1),
                                ("--lir-components", "lir_components", 1),
                                ("--pool-repeats", "pool_repeats", 1)):  # fmt: skip
            _check_int(flag, getattr(self, name), low)
        for flag, name, low in (("--pool-size", "pool_size", 2),
                                ("--projection-max-points", "projection_max_points", 2),
                                ("--probe-max-rows", "probe_max_rows", 1),
                                ("--bias-queries-per-lang", "bias_queries_per_lang", 1),
                                ("--max-per-domain", "max_per_domain", 1)):  # fmt: skip
            if getattr(self, name) is not None:
                _check_int(flag, getattr(self, name), low)
        _check_int("token budget", self.token_budget, 1)


def _check_int(flag: str, value: object, low: int, high: int | None = None) -> None:
    """An integer option within [low, high], else a one-line UserError naming the flag."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and value >= low and (high is None or value <= high):  # type: ignore[operator]
        return
    bound = f"between {low} and {high}" if high is not None else f"at least {low}"
    raise UserError(f"{flag} {value!r}: expected an integer {bound}")


@dataclass
class EvalOutcome:
    """What an evaluation produced and where it wrote it."""

    out_dir: Path
    results: pl.DataFrame
    manifest: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


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
    overwrite: bool = True,
    processes: Processes | None = None,
) -> EvalOutcome:
    """Embed, analyse, write; the second run on the same inputs is served from the cache.

    `out_dir` must be new, empty or an eval directory (replaced only with `overwrite`); a
    directory holding anything else is refused before any work (`EvalDir.check_target`).
    With `processes` (under `accelerate launch`, core/encoding/distributed.py) the processes
    share the encoding; a worker then returns an empty outcome, having written nothing.
    """
    EvalDir(out_dir).check_target(overwrite)
    report: Progress = progress or (lambda name, done, total: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with _timed(timings, "load"):
        corpus = load_corpus(corpus_path, columns=options.columns).filter(
            langs=options.langs,
            domains=options.domains,
            splits=options.splits,
            max_per_domain=options.max_per_domain,
            seed=options.seed,
        )
        encoder = Encoder(
            model,
            device=options.device,
            pooling=options.pooling,
            max_length=options.max_length,
            token_budget=options.token_budget,
            frozen_prefix=options.frozen_prefix,
            dtype=options.dtype,
        )
        layers = encoder.resolve_layers(options.layers)
    pivot = options.pivot
    if pivot is not None and pivot not in corpus.langs:
        raise UserError(
            f"--pivot {pivot}: not a language of the corpus ({', '.join(corpus.langs)})"
        )
    store = ArrayStore()
    with _timed(timings, "encode"):
        if any(registry.get(n).embeds_corpus for n in options.analyses):
            emb = embed_corpus(
                encoder, corpus, layers, store=store, progress=lambda d, t: report("encode", d, t),
                processes=processes,
            )  # fmt: skip
        else:  # the task alone reads its pairs, not the corpus
            emb = no_embeddings(encoder, corpus)
    if processes is not None and not processes.continue_on_main():
        return EvalOutcome(out_dir=out_dir, results=empty_results(), manifest={}, timings=timings)
    checkpoint = checkpoint_name(model)
    frames: list[pl.DataFrame] = []
    from_cache: list[str] = []
    extra: dict[str, list[pl.DataFrame]] = {}  # projection, queries: written beside the results
    for name in options.analyses:
        spec = registry.get(name)
        report(name, 0, None)
        with _timed(timings, name):
            inputs = _inputs(spec, emb, corpus, encoder, store, options, pivot, report)
            outputs = _cached_analysis(spec, inputs, emb, encoder, store, from_cache)
        for output, frame in outputs.items():
            if output == "results":
                frames.append(frame)
            else:
                extra.setdefault(output, []).append(frame)
        report(name, 1, 1)
    results = (
        pl.concat(frames).with_columns(pl.lit(checkpoint).alias("checkpoint"))
        if frames
        else empty_results()
    )
    timings["total"] = round(time.perf_counter() - started, 3)
    manifest = _manifest(model, checkpoint, encoder, emb, corpus.source, layers, options, timings)
    manifest["analyses_from_cache"] = from_cache
    world = processes.world if processes is not None else 1
    manifest["encoding"] = {**manifest["encoding"], "dtype": encoder.spec.dtype, "processes": world}
    if "predictions" in extra:  # the task's pairs are not in the corpus: name them by content
        manifest["task"] = _task_provenance(options.task_pairs, extra["predictions"])
    out_dir.mkdir(parents=True, exist_ok=True)
    target = EvalDir(out_dir)
    written = {target.results, target.rows, target.manifest}
    write_atomic(target.results, results.write_parquet)
    write_atomic(target.rows, emb.meta.write_parquet)
    for output, parts in extra.items():
        path = target.output(output)
        write_atomic(path, pl.concat(parts).write_parquet)
        written.add(path)
    for stale in target.outputs():  # an earlier eval's outputs must not pass for this one's
        if stale not in written:
            stale.unlink(missing_ok=True)
    write_atomic(  # the manifest last: an eval dir is complete once it exists
        target.manifest,
        lambda p: p.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"),
    )
    return EvalOutcome(out_dir=out_dir, results=results, manifest=manifest, timings=timings)


def checkpoint_name(model: str) -> str:
    """How a model is named in the results: `default`, a directory's name, or the hub id."""
    path = Path(model).expanduser()
    return path.name if path.exists() else model


def _inputs(
    spec: registry.Analysis,
    emb: Embeddings,
    corpus: Corpus,
    encoder: Encoder,
    store: ArrayStore,
    options: EvalOptions,
    pivot: str | None,
    report: Progress,
) -> AnalysisInputs:
    """An analysis' inputs; the encoder (to embed new texts) only for those that need it."""
    opts = {name: getattr(options, name) for name in _option_names()}
    texts = corpus.frame["text"].to_list()
    if spec.name == "task":
        return _task_inputs(emb, encoder, opts, report)
    if not spec.needs_encoder:
        return AnalysisInputs(emb.layers, emb.meta, opts, pivot=pivot, texts=texts, progress=report)
    layers = sorted(emb.layers)

    def embed(rows: pl.DataFrame, label: str) -> dict[int, np.ndarray]:
        """Rows with new texts, embedded by the same encoder through the cache.

        A perturbed corpus has its own fingerprint, so its embeddings get their own cache
        entries and a rerun encodes nothing.
        """
        step = f"{spec.name} {label}"
        rows_corpus = Corpus(rows, f"{corpus.source} ({label})")
        found = embed_corpus(
            encoder, rows_corpus, layers, store=store, progress=lambda d, t: report(step, d, t)
        )
        return found.layers

    from xrdiag.core.data.synonyms import load_lexicon

    return AnalysisInputs(
        emb.layers,
        emb.meta,
        opts,
        pivot=pivot,
        texts=texts,
        embed=embed,
        lexicon=load_lexicon,
        progress=report,
    )


def _task_inputs(
    emb: Embeddings, encoder: Encoder, opts: dict[str, Any], report: Progress
) -> AnalysisInputs:
    """The task analysis' pairs (dev and test rows when split) and the checkpoint's predictor."""
    from xrdiag.core.task.pairs_io import read_pairs
    from xrdiag.core.task.predict import predict_pairs

    if not opts["task_pairs"]:
        raise UserError("--analyses task: give the labelled pairs with --task PAIRS_FILE")
    pairs = read_pairs(opts["task_pairs"])
    frame = pairs.frame
    if pairs.has_split:
        frame = frame.filter(pl.col("split") != "train")
    if frame.height == 0:
        raise UserError(f"--task {opts['task_pairs']}: no dev or test rows to evaluate")
    device = opts["device"] if opts["device"] != "auto" else encoder.device
    return AnalysisInputs(
        emb.layers, emb.meta, opts, pairs=frame, progress=report,
        predict=lambda rows: predict_pairs(encoder.model_path, rows, device=device),
        top_layer=encoder.num_layers - 1,
    )  # fmt: skip


def _option_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(EvalOptions))


def _cached_analysis(
    spec: registry.Analysis,
    inputs: AnalysisInputs,
    emb: Embeddings,
    encoder: Encoder,
    store: ArrayStore,
    from_cache: list[str],
) -> dict[str, pl.DataFrame]:
    """An analysis' frames by output name, from the cache when the same inputs and code made it.

    The analyses are deterministic given these (every random choice takes the seed), so a
    warm rerun of `xrdiag eval` costs a cache read instead of minutes of probes and bootstraps.
    """
    import io

    if not spec.cached:
        found = spec.function()(inputs)
        return dict(found) if isinstance(found, Mapping) else {spec.output: found}
    key = cache_key(
        kind="results" if spec.output == "results" else spec.output,
        analysis=spec.name,
        embeddings=[layer_key(encoder, emb.corpus_fingerprint, layer) for layer in emb.layers],
        options={opt: _plain(inputs.options[opt]) for opt in spec.options},
        pivot=inputs.pivot,
        code=spec.code_hash(),
    )
    hit = store.get(key)
    if hit is not None:
        from_cache.append(spec.name)
        return {
            name[len("parquet:") :]: pl.read_parquet(io.BytesIO(array.tobytes()))
            for name, array in hit.items()
        }
    found = spec.function()(inputs)
    frames = dict(found) if isinstance(found, Mapping) else {spec.output: found}
    arrays = {}
    for name, frame in frames.items():
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        arrays[f"parquet:{name}"] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    store.put(key, arrays)
    return frames


def _task_provenance(pairs: str | None, predictions: list[pl.DataFrame]) -> dict[str, Any]:
    path = Path(pairs or "").resolve()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"pairs": str(path), "sha256": digest.hexdigest(),
            "n": sum(frame.height for frame in predictions)}  # fmt: skip


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


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
        # `path` finds the corpus again from any directory; `compare` checks the fingerprint
        # before it trusts a re-read (the file may have changed since).
        "corpus": {
            "source": corpus_source,
            "path": absolute_source(corpus_source),
            "fingerprint": emb.corpus_fingerprint,
        },
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
