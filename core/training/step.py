"""Everything one optimiser step touches: model, heads, optimiser, scheduler, sampler, RNGs.

`StepModel` owns the state a checkpoint must hold and computes a batch's loss: the objective
(bitext InfoNCE or pair classification), plus the enabled extras: RS-RP noise on the input
embeddings, RS-DA synonym substitution of English text, FGSM/PGD adversarial loss on clean
plus perturbed embeddings (Huang et al. 2021), and a domain/language discriminator behind a
gradient-reversal layer (Ganin et al. 2016). The heads learn at HEAD_LR_SCALE times the
encoder's lr: they start from scratch while the encoder is pretrained, as in standard BERT
fine-tuning recipes with fresh heads.

The adversary reuses the clean pass: its backward also yields the loss gradient at the clean
input embeddings, which is the first FGSM/PGD direction, so PGD-k costs k + 1 forward-backward
passes per batch (clean, k - 1 inner, adversarial) and FGSM 2.

One `accelerate.Accelerator` (model_setup.make_accelerator) prepares the encoder, heads,
optimiser and scheduler and runs backward and clipping. With N processes every process draws
the same batch sequence and takes its share of it: for each micro-batch of an optimiser step
the sampler yields N batches and process r trains on the r-th, so an optimiser step sees N
whole batches (in-batch negatives stay within a batch, as in one process) and DDP averages
their gradients; one process gives exactly the single-process run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xrdiag.core.corpus import load_corpus
from xrdiag.core.data.synonyms import load_lexicon
from xrdiag.core.encoding.encoder import (
    default_prefix,
    model_load_errors,
    resolve_model_path,
)
from xrdiag.core.training import dann, objectives, robust
from xrdiag.core.training.batch_loss import BatchLoss
from xrdiag.core.training.checkpoint_state import restore_state, save_state
from xrdiag.core.training.config import TrainConfig, validate_against_corpus
from xrdiag.core.training.dev_eval import dev_diagnostics, embed_ids, task_dev_sample, task_summary
from xrdiag.core.training.frozen_prefix import reuse_reason, upper_encoder
from xrdiag.core.training.model_setup import (
    any_process,
    freeze,
    make_accelerator,
    mean_over_processes,
    pooled_encoder,
)
from xrdiag.core.training.pair_forward import pair_logits
from xrdiag.core.training.pairs import (
    augmented_copies,
    dev_subset,
    pair_classification_data,
    translation_pairs,
)
from xrdiag.core.training.sampler import HybridBatchSampler

HEAD_LR_SCALE = 10.0


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak lr at optimiser step `step` (0-based): linear warm-up, then decay.

    Warm-up (step+1)/(warmup+1) ramps up without a wasted zero-lr step; after it `linear` decays
    to 0 at `total`, `cosine` follows 0.5(1 + cos(pi t)) (Loshchilov & Hutter 2017, no
    restarts), `constant` stays at 1.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    return 1.0 - t


class StepModel(BatchLoss):
    """The trainable state of a run and one optimiser step over it (see module docstring)."""

    def __init__(
        self,
        cfg: TrainConfig,
        weights: Path | None = None,
        accelerator: Any | None = None,
        reuse_prefix: bool = True,
        damaged_hint: str = "",
    ) -> None:
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from xrdiag.core.encoding.weights import load_encoder

        self.cfg = cfg
        seed = cfg.run.seed
        self.accelerator = accelerator if accelerator is not None else make_accelerator(cfg.run)
        self.device = str(self.accelerator.device)
        corpus = load_corpus(cfg.corpus.path)
        validate_against_corpus(cfg, corpus)
        p, obj, rb = cfg.protocol, cfg.objective, cfg.robust
        self.task_dev = None  # pair classification: the dev pairs of the live task accuracy
        self.label_names = tuple(str(i) for i in range(obj.num_labels))
        if obj.kind == "contrastive":
            pairs = translation_pairs(
                corpus, p.train_langs, p.train_domains, p.pivot, cfg.corpus.max_per_domain, seed
            )
        else:
            pairs, task_dev, self.label_names = pair_classification_data(
                str(obj.pairs_file), obj.num_labels, obj.train_lang_pairs
            )
            self.task_dev = task_dev_sample(task_dev, obj.dev_max_per_lang_pair, seed)
        self.substituter = None
        if rb.rs_da.enabled:
            self.substituter = robust.SynonymSubstituter(load_lexicon(rb.rs_da.lexicon), seed)
            if rb.rs_da.mode == "copies":
                pairs = augmented_copies(pairs, self.substituter, rb.rs_da.copies)
        self.pairs = pairs
        self.n_pairs = pairs.height
        self._cols = {c: pairs[c].to_list() for c in pairs.columns if c != "id"}
        # The sentence each row translates (an RS-DA copy "X#da..." is a copy of X): rows of one
        # group are never each other's in-batch negatives.
        self._groups = [str(i).split("#", 1)[0] for i in pairs["id"].to_list()]
        self.dev = dev_subset(corpus, p.dev_max_per_domain, seed)
        self.corpus_fingerprint = corpus.fingerprint()
        self.model_path = resolve_model_path(cfg.model.name)
        hf_logging.disable_progress_bar()
        source = str(weights) if weights is not None else self.model_path
        # `damaged_hint`: on --resume, what to do when the checkpoint's files are damaged.
        name = str(weights) if weights is not None else cfg.model.name
        with model_load_errors(name):
            self.tokenizer = AutoTokenizer.from_pretrained(
                source, use_fast=True, trust_remote_code=False
            )
        model = load_encoder(source, name, damaged_hint)  # checked: every weight, no pickle
        self.damaged_hint = damaged_hint
        self.prefix = default_prefix(self.model_path)
        limit = int(getattr(model.config, "max_position_embeddings", 512))
        if getattr(model.config, "model_type", "") in ("xlm-roberta", "roberta"):
            limit -= 2
        self.max_length = min(cfg.model.max_length, limit)
        self.n_layers = int(model.config.num_hidden_layers)
        freeze(model, cfg.model.freeze_embeddings, cfg.model.freeze_layers)
        self.model = model.to(self.device).train()  # the HF model: save, dev eval, embeddings
        # Frozen prefix and unperturbed inputs: the lower blocks run once per sentence.
        switched_off = not (reuse_prefix and cfg.model.reuse_frozen_prefix)
        self.prefix_reason = "switched off" if switched_off else reuse_reason(cfg, model)
        self.prefix_states = None
        if self.prefix_reason is None:
            self.prefix_states = self._pair_prefix_states()
            self.encoder = upper_encoder(self.model, cfg.model.freeze_layers, cfg.model.pooling)
        else:
            self.encoder = pooled_encoder(self.model, cfg.model.pooling)  # unwrapped, inner passes
        b = cfg.batches
        self.sampler = HybridBatchSampler(pairs, b.batch_size, b.alpha, b.beta, seed)
        dim = int(model.config.hidden_size)
        self.langs = sorted(set(self._cols["src_lang"]) | set(self._cols["tgt_lang"]))
        self.domains = sorted(set(self._cols["domain"]))
        self.head = None
        if obj.kind == "pair_classification":
            self.head = objectives.PairClassificationHead(dim, obj.num_labels).to(self.device)
        self.disc = None
        if cfg.dann.enabled:
            d = cfg.dann
            self.disc = dann.DomainDiscriminator(
                dim, d.hidden, len(self.domains), len(self.langs), d.target
            ).to(self.device)
        self.noise = torch.Generator().manual_seed(seed + 1)  # CPU: same noise on any device
        self._build_optimiser()
        self._prepare()
        self._dev_ids: list[list[int]] | None = None

    def _prepare(self) -> None:
        """Hand encoder, heads, optimiser and scheduler to Accelerate (device, DDP, autocast).

        `net`, `head_net`, `disc_net` are the prepared (possibly DDP-wrapped) modules that
        training passes go through; `encoder`, `head`, `disc` stay the plain modules (state
        dicts, and the adversary's inner passes, which must not trigger DDP's reducer).
        """
        acc = self.accelerator
        modules = [m for m in (self.encoder, self.head, self.disc) if m is not None]
        prepared = list(acc.prepare(*modules, self.optimizer, self.scheduler))
        self.scheduler, self.optimizer = prepared.pop(), prepared.pop()
        self.net = prepared.pop(0)
        self.head_net = prepared.pop(0) if self.head is not None else None
        self.disc_net = prepared.pop(0) if self.disc is not None else None

    # -- optimiser ------------------------------------------------------------------------------

    def _build_optimiser(self) -> None:
        """AdamW, decay on matrices only (biases and LayerNorm excluded), heads at a higher lr."""
        import torch

        o = self.cfg.optim
        groups = []
        modules = [(self.model, 1.0), (self.head, HEAD_LR_SCALE), (self.disc, HEAD_LR_SCALE)]
        for module, scale in modules:
            if module is None:
                continue
            params = [q for q in module.parameters() if q.requires_grad]
            decay = [q for q in params if q.ndim >= 2]
            rest = [q for q in params if q.ndim < 2]
            groups.append({"params": decay, "weight_decay": o.weight_decay, "lr": o.lr * scale})
            groups.append({"params": rest, "weight_decay": 0.0, "lr": o.lr * scale})
        self.params = [q for g in groups for q in g["params"]]
        self.trainable_params = int(
            sum(q.numel() for q in self.model.parameters() if q.requires_grad)
        )
        self.optimizer = torch.optim.AdamW(groups, lr=o.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, o.max_steps, o.schedule)
        )

    def optimiser_step(self, step: int) -> dict[str, Any]:
        """Accumulate `optim.grad_accum` batches per process, clip, step; the step event's fields.

        Returns {"nonfinite": None | details, "event": fields}; on a non-finite loss or
        gradient norm (in any process) the optimiser does not step. The logged loss and
        components are means over processes; `composition` lists every batch of the step.
        """
        o, d, acc = self.cfg.optim, self.cfg.dann, self.accelerator
        world, rank = acc.num_processes, acc.process_index
        lambd = (
            dann.dann_lambda(step / o.max_steps, d.lambda_max, d.schedule) if d.enabled else None
        )
        start = time.perf_counter()
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        compositions, n_samples = [], 0
        bad: dict[str, Any] | None = None
        for _ in range(o.grad_accum):
            batches = [next(self.sampler) for _ in range(world)]
            batch = batches[rank]
            total, parts = self._batch_loss(batch, lambd, o.grad_accum)
            if not math.isfinite(total) and bad is None:
                bad = {"loss": total, "components": parts}
                if world == 1:
                    break  # nobody to keep in step with: stop at once
            for key, value in {"loss": total, **parts}.items():
                sums[key] = sums.get(key, 0.0) + value / o.grad_accum
            compositions += [b.composition for b in batches]
            n_samples += sum(len(b.indices) for b in batches)
        if any_process(acc, bad is not None):
            self.optimizer.zero_grad(set_to_none=True)
            return {"nonfinite": bad or {"loss": math.nan, "note": "in another process"},
                    "event": {}}  # fmt: skip
        clip = o.grad_clip if o.grad_clip > 0 else float("inf")
        norm = float(acc.clip_grad_norm_(self.params, clip))
        # fp16: the grad scaler skips steps with inf gradients and lowers its scale itself
        if not np.isfinite(norm) and acc.mixed_precision != "fp16":
            self.optimizer.zero_grad(set_to_none=True)
            return {"nonfinite": {"grad_norm": norm, **sums}, "event": {}}
        self.optimizer.step()
        self.scheduler.step()
        if world > 1:
            sums = mean_over_processes(acc, sums)
        elapsed = time.perf_counter() - start
        loss = sums.pop("loss")
        event = {
            "loss": loss, "components": sums, "lambda": lambd, "lr": lr, "grad_norm": norm,
            "step_time": elapsed, "samples_per_s": n_samples / elapsed if elapsed else None,
            "composition": compositions,
        }  # fmt: skip
        return {"nonfinite": None, "event": event}

    # -- evaluation ---------------------------------------------------------------------------

    def dev_embeddings(self) -> np.ndarray:
        """Last-layer pooled embeddings of the dev subset, float32 `[n, dim]`, in dev order."""
        if self._dev_ids is None:
            texts = [self.prefix + t for t in self.dev["text"].to_list()]
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
            self._dev_ids = list(enc["input_ids"])
        pad = self.tokenizer.pad_token_id or 0
        return embed_ids(self.model, self._dev_ids, pad, self.cfg.model.pooling, self.device)

    def evaluate(self) -> dict[str, Any]:
        """The eval event's fields: dev diagnostics of the current weights, and their time."""
        start = time.perf_counter()
        p = self.cfg.protocol
        result = dev_diagnostics(
            self.dev_embeddings(), self.dev, layer=self.n_layers, pivot=p.pivot,
            train_langs=p.train_langs, train_domains=p.train_domains, seed=self.cfg.run.seed,
        )  # fmt: skip
        if self.task_dev is not None:
            result["task"] = self.task_accuracy()
        return {**result, "eval_time": time.perf_counter() - start}

    def task_accuracy(self) -> dict[str, Any]:
        """Pair-classification accuracy of the current weights on the dev sample, per pair."""
        dev = self.task_dev
        assert dev is not None and self.head is not None
        logits = pair_logits(
            self.encoder, self.head, self.tokenizer,
            [self.prefix + t for t in dev["sentence1"].to_list()],
            [self.prefix + t for t in dev["sentence2"].to_list()],
            max_length=self.max_length, device=self.device,
        )  # fmt: skip
        return task_summary(dev, logits.argmax(axis=1))

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, ckpt: Path, step: int) -> None:
        """Weights (safetensors, loadable by `--model`), tokenizer, and the trainer state."""
        save_state(self, ckpt, step)

    def restore(self, ckpt: Path) -> int:
        """Load the trainer state of a checkpoint whose weights this model was built from."""
        return restore_state(self, ckpt, self.damaged_hint)

    def saver(self, step: int) -> Callable[[Path], None]:
        """`fill` for RunDir.save_checkpoint at `step`."""
        return lambda ckpt: self.save(ckpt, step)
