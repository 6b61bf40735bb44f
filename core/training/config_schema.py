"""The training configuration's schema: one frozen dataclass per TOML section.

Each field carries its default, its one-line comment (`doc`), and its range (`lo`, `hi`,
`lo_open`) or pattern in the field metadata; `config.py` validates, prints and writes configs
from these, so `--print-config`, validation and the resolved run.toml cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Upper bounds that catch a typo (1e20 steps) without limiting any real run: a billion steps is
# years of training; a million of anything per batch or sentence is past any device's memory.
MAX_STEPS = 10**9
BIG = 10**6


def _f(default: Any, doc: str, lo: float | None = None, hi: float | None = None, **kw: Any) -> Any:
    """A config field: its default, its one-line comment, and its range [lo, hi] (lo_open: >)."""
    meta = {"doc": doc, "lo": lo, "hi": hi, **kw}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    """The encoder to fine-tune."""

    name: str = _f("default", '"default" (embedded multilingual-e5-small), a directory or hub id')
    pooling: Literal["mean", "cls"] = _f("mean", "sentence embedding: mean (masked) or cls")
    max_length: int = _f(128, "tokens per sentence, longer ones are truncated", 2, BIG)
    freeze_embeddings: bool = _f(True, "freeze the token embedding matrix")
    freeze_layers: int = _f(
        0, "freeze the embeddings and the lower N transformer layers (no dropout there)", 0
    )
    reuse_frozen_prefix: bool = _f(
        True, "compute the frozen layers once per sentence when the inputs are not perturbed"
    )


@dataclass(frozen=True)
class CorpusConfig:
    """The parallel corpus training pairs and the dev set come from."""

    path: str = _f("default", '"default" (bundled TICO-19 subset) or a corpus file', path=True)
    max_per_domain: int | None = _f(None, "cap on ids per domain (unset: all)", 1, example=200)


@dataclass(frozen=True)
class ProtocolConfig:
    """The zero-shot protocol: what training may see; evaluation covers all languages, domains."""

    train_langs: list[str] = _f(["en", "fr", "es-419", "ru", "zh"], "pairs are pivot <-> each")
    train_domains: list[str] = _f(["medical", "encyclopedia"], "domains training may see")
    pivot: str = _f("en", "the language every training pair has on one side")
    dev_max_per_domain: int = _f(50, "ids per domain in the fixed dev subset", 1)


@dataclass(frozen=True)
class ObjectiveConfig:
    """The training loss."""

    kind: Literal["contrastive", "pair_classification"] = _f(
        "contrastive", "bitext InfoNCE, or a head on labelled sentence pairs (pairs_file)"
    )
    temperature: float = _f(0.05, "InfoNCE softmax temperature", 0, lo_open=True)
    margin: float = _f(0.0, "additive margin subtracted from positive logits (LaBSE)", 0)
    num_labels: int = _f(2, "classes of the pair-classification head", 2)
    pairs_file: str | None = _f(
        None,
        "CSV/TSV/JSONL/Parquet (sentence1, sentence2, label, lang1, lang2), PAWS-X or XNLI",
        path=True,
        example="pairs.csv",
    )
    train_lang_pairs: list[str] = _f(
        ["*-*"], "lang1-lang2 pairs of pairs_file to train on: en-en (zero-shot), en-*, *-*"
    )
    dev_max_per_lang_pair: int = _f(
        32, "dev pairs per language pair in the live task accuracy (pair_classification)", 1
    )


@dataclass(frozen=True)
class RsRpConfig:
    """RS-RP (Huang et al. 2021): random perturbation of the input embeddings."""

    enabled: bool = _f(False, "add noise to the input embeddings")
    distribution: Literal["gaussian", "uniform"] = _f("gaussian", "noise distribution")
    sigma: float = _f(0.01, "noise scale (std, or half-width for uniform)", 0)


@dataclass(frozen=True)
class RsDaConfig:
    """RS-DA (Huang et al. 2021): synonym substitution on English sentences."""

    enabled: bool = _f(False, "substitute synonyms in English text")
    mode: Literal["on_the_fly", "copies"] = _f("on_the_fly", "per batch with prob. p, or copies")
    p: float = _f(0.5, "per-sentence substitution probability (on_the_fly)", 0, 1)
    copies: int = _f(1, "augmented copies made up front (copies)", 1)
    lexicon: str = _f("default", '"default" (shipped lexicon) or a lexicon file', path=True)


@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training in embedding space: loss on clean plus perturbed inputs."""

    enabled: bool = _f(False, "train on adversarial input embeddings too")
    method: Literal["fgsm", "pgd"] = _f("fgsm", "one step (FGSM) or k projected steps (PGD)")
    epsilon: float = _f(1e-2, "perturbation budget", 0, lo_open=True)
    step_size: float = _f(4e-3, "PGD step size", 0, lo_open=True)
    steps: int = _f(3, "PGD steps k", 1, 1000)
    norm: Literal["l2", "linf"] = _f("l2", "budget norm: l2 (per example) or linf")


@dataclass(frozen=True)
class RobustConfig:
    """Robust training methods (Huang et al., EMNLP 2021); any combination may be enabled."""

    rs_rp: RsRpConfig = field(default_factory=RsRpConfig)
    rs_da: RsDaConfig = field(default_factory=RsDaConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


@dataclass(frozen=True)
class DannConfig:
    """Domain-adversarial training (Ganin et al. 2016): gradient reversal into a discriminator."""

    enabled: bool = _f(False, "train a discriminator through a gradient-reversal layer")
    target: Literal["domain", "language", "both"] = _f("domain", "what the discriminator predicts")
    lambda_max: float = _f(0.1, "reversal strength at the end of training", 0)
    schedule: Literal["ganin", "constant"] = _f(
        "ganin", "ganin: lambda_max*(2/(1+exp(-10p))-1) over progress p; or constant"
    )
    hidden: int = _f(256, "discriminator hidden units", 1, BIG)
    loss_weight: float = _f(1.0, "weight of the discriminator loss", 0)


@dataclass(frozen=True)
class BatchesConfig:
    """Batch composition: alpha = beta = 1 and alpha = beta = 0 are the two pure regimes."""

    batch_size: int = _f(32, "training pairs per batch", 2, BIG)
    alpha: float = _f(1.0, "probability a batch is language-homogeneous", 0, 1)
    beta: float = _f(1.0, "probability a batch is domain-homogeneous", 0, 1)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with warm-up and decay."""

    lr: float = _f(2e-5, "peak learning rate", 0, lo_open=True)
    weight_decay: float = _f(0.01, "AdamW weight decay", 0)
    warmup_steps: int = _f(10, "linear warm-up steps", 0, MAX_STEPS)
    max_steps: int = _f(100, "optimiser steps in the run", 1, MAX_STEPS)
    grad_clip: float = _f(1.0, "max gradient norm (0: no clipping)", 0)
    grad_accum: int = _f(1, "batches accumulated per optimiser step", 1, BIG)
    schedule: Literal["linear", "cosine", "constant"] = _f("linear", "decay after warm-up")


@dataclass(frozen=True)
class RunConfig:
    """Seeds, checkpoints, evaluation and the device."""

    seed: int = _f(0, "seed of every random choice", 0, 2**32 - 1)
    checkpoint_every: int = _f(
        50, "steps between checkpoints (one is always written at the end)", 1
    )
    keep_last: int = _f(2, "checkpoints kept", 1, BIG)
    eval_every: int = _f(25, "steps between dev evaluations", 1)
    eval_at_start: bool = _f(True, "a dev evaluation of the untouched model at step 0")
    eval_at_end: bool = _f(True, "a dev evaluation of the final model")
    device: str = _f("auto", "auto, cpu, cuda, cuda:N or mps", pattern=r"auto|cpu|mps|cuda(:\d+)?")
    log_every: int = _f(1, "steps between step events", 1)
    mixed_precision: Literal["no", "fp16", "bf16"] = _f(
        "no", "Accelerate mixed precision: no, fp16 (GPU only) or bf16"
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything `xrdiag train` needs; written resolved to the run's run.toml."""

    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    dann: DannConfig = field(default_factory=DannConfig)
    batches: BatchesConfig = field(default_factory=BatchesConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
