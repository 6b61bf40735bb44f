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
from xrdiag.core.training.pair_forward import pair_inputs, pair_logits
from xrdiag.core.training.pairs import (
    augmented_copies,
    dev_subset,
    pair_classification_data,
    translation_pairs,
)
from xrdiag.core.training.sampler import Batch, HybridBatchSampler

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


class StepModel:
    """The trainable state of a run and one optimiser step over it (see module docstring)."""

    def __init__(
        self,
        cfg: TrainConfig,
        weights: Path | None = None,
        accelerator: Any | None = None,
        reuse_prefix: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

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
        with model_load_errors(cfg.model.name):
            self.tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
            model = AutoModel.from_pretrained(source, use_safetensors=True, trust_remote_code=False)
        self.prefix = default_prefix(self.model_path)
        limit = int(getattr(model.config, "max_position_embeddings", 512))
        if getattr(model.config, "model_type", "") in ("xlm-roberta", "roberta"):
            limit -= 2
        self.max_length = min(cfg.model.max_length, limit)
        self.n_layers = int(model.config.num_hidden_layers)
        freeze(model, cfg.model.freeze_embeddings, cfg.model.freeze_layers)
        self.model = model.to(self.device).train()  # the HF model: save, dev eval, embeddings
        # Frozen prefix and unperturbed inputs: the lower blocks run once per sentence.
        self.prefix_reason = reuse_reason(cfg, model) if reuse_prefix else "switched off"
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

    # -- one batch --------------------------------------------------------------------------

    def _texts(self, side: str, idx: list[int]) -> list[str]:
        texts = [self._cols[f"{side}_text"][i] for i in idx]
        rs_da = self.cfg.robust.rs_da
        if self.substituter is not None and rs_da.mode == "on_the_fly":
            langs = [self._cols[f"{side}_lang"][i] for i in idx]
            sub = self.substituter.substitute
            pairs = zip(texts, langs, strict=True)
            texts = [sub(t, rs_da.p) if lang == "en" else t for t, lang in pairs]
        return [self.prefix + t for t in texts]

    def _tokenize(self, idx: list[int]) -> dict[str, Any]:
        src, tgt = self._texts("src", idx), self._texts("tgt", idx)
        if self.head is None:  # contrastive: both sides in one forward pass
            kw = {"padding": True, "truncation": True, "max_length": self.max_length,
                  "return_tensors": "pt"}  # fmt: skip
            enc = self.tokenizer(src + tgt, **kw)
        else:  # pair classification: the pair encoded together
            enc = pair_inputs(self.tokenizer, src, tgt, self.max_length)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _objective(
        self, pooled: Any, idx: list[int], head: Any = None
    ) -> tuple[Any, dict[str, float]]:
        """The configured objective's loss on pooled vectors, and stats to log."""
        import torch

        obj = self.cfg.objective
        if self.head is None:
            a, b = pooled[: len(idx)], pooled[len(idx) :]
            groups = [self._groups[i] for i in idx]
            loss = objectives.info_nce(a, b, obj.temperature, obj.margin, groups)
            logits = objectives.contrastive_logits(
                a.detach(), b.detach(), obj.temperature, groups=groups
            )
            return loss, {"in_batch_acc": objectives.in_batch_accuracy(logits)}
        labels = torch.tensor([self._cols["label"][i] for i in idx], device=self.device)
        logits = (head if head is not None else self.head_net)(pooled)
        loss, acc = objectives.pair_classification_loss(logits, labels)
        return loss, {"pair_acc": acc}

    def _batch_loss(
        self, batch: Batch, lambd: float | None, accum: int = 1
    ) -> tuple[float, dict[str, float]]:
        """Forward and backward one batch (gradients / `accum` added to .grad); its losses.

        Clean pass: objective (+ DANN), backward, which also leaves the gradient at the clean
        input embeddings; the adversary starts from it (FGSM: no extra pass; PGD-k: k - 1
        inner passes on the unwrapped model); then the adversarial pass and its backward.
        With DANN the embedding gradient must be the objective's alone, so it takes one extra
        backward (no parameter gradients) before the clean backward.
        """
        import torch

        rb, idx, acc = self.cfg.robust, batch.indices.tolist(), self.accelerator
        if self.prefix_states is not None:  # no perturbation: only the upper blocks run
            pooled, _ = self._prefix_loss(idx)
            _, clean, parts = self._clean_loss(pooled, idx, lambd)
            acc.backward(clean / accum)
            return float(clean.detach()), parts
        enc = self._tokenize(idx)
        mask = enc.pop("attention_mask")
        ids = enc.pop("input_ids")
        lookup = self.model.get_input_embeddings()
        embeds = lookup(ids)
        noise = None
        if rb.rs_rp.enabled:
            noise = robust.rs_rp_noise(
                embeds, rb.rs_rp.distribution, rb.rs_rp.sigma, self.noise, mask
            )
            embeds = embeds + noise
        adversarial = rb.adversarial.enabled
        if adversarial:  # keep d loss / d embeds from the clean backward
            if embeds.requires_grad:
                embeds.retain_grad()
            else:  # frozen embeddings: a leaf
                embeds.requires_grad_(True)
        pooled = self.net(embeds, mask, **enc)
        main, clean, parts = self._clean_loss(pooled, idx, lambd)
        grad = None
        if adversarial and self.disc_net is not None:
            (grad,) = torch.autograd.grad(main, [embeds], retain_graph=True)
        acc.backward(clean / accum)
        total = float(clean.detach())
        if adversarial:
            a = rb.adversarial
            grad = grad if grad is not None else embeds.grad
            if grad is not None and not bool(torch.isfinite(grad).all()):
                grad = None  # fp16 loss scale overflowed: the adversary recomputes it
            base = embeds.detach()
            delta = robust.adversarial_perturbation(
                a.method, base,
                lambda e: self._objective(self.encoder(e, mask, **enc), idx, self.head)[0],
                epsilon=a.epsilon, step_size=a.step_size, steps=a.steps, norm=a.norm, mask=mask,
                initial_grad=grad,
            )  # fmt: skip
            again = lookup(ids)  # the clean graph is freed: look up again for the weights' grad
            if noise is not None:
                again = again + noise
            adv, _ = self._objective(self.net(again + delta, mask, **enc), idx)
            acc.backward(adv / accum)
            total += float(adv.detach())
            parts["adversarial"] = float(adv.detach())
        return total, parts

    def _clean_loss(
        self, pooled: Any, idx: list[int], lambd: float | None
    ) -> tuple[Any, Any, dict[str, float]]:
        """(objective, objective + DANN, the parts to log) of a clean pass."""
        main, stats = self._objective(pooled, idx)
        clean, parts = main, {self.cfg.objective.kind: float(main.detach()), **stats}
        if self.disc_net is not None:
            logits = self.disc_net(pooled, lambd)
            dl, dstats = dann.discriminator_loss(logits, self._disc_labels(idx, pooled.shape[0]))
            clean = clean + self.cfg.dann.loss_weight * dl
            parts["dann"] = float(dl.detach())
            parts.update({f"disc_{k}": v for k, v in dstats.items()})
        return main, clean, parts

    def _pair_prefix_states(self) -> Any:
        """Depth-k states of every pair's source then target sentence (rows n + i: targets)."""
        from xrdiag.core.encoding.frozen_prefix import prefix_states
        from xrdiag.core.encoding.packed_forward import PackedForward

        every = list(range(self.n_pairs))
        texts = self._texts("src", every) + self._texts("tgt", every)
        rows = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        self.model.eval()
        try:
            packed = PackedForward.build(self.model)
            assert packed is not None  # reuse_reason checked the model type
            return prefix_states(packed, self.model, rows, self.cfg.model.freeze_layers)
        finally:
            self.model.train()

    def _prefix_loss(self, idx: list[int]) -> tuple[Any, Any]:
        """The pooled batch from the cached prefix states (both sides in one pass)."""
        from xrdiag.core.training.frozen_prefix import padded_states

        rows = idx + [self.n_pairs + i for i in idx]
        states, mask = padded_states(self.prefix_states, rows, self.device)
        return self.net(states, mask), mask

    def _disc_labels(self, idx: list[int], rows: int) -> dict[str, Any]:
        """Domain and language labels of the pooled rows (both sides for contrastive)."""
        import torch

        dom = [self.domains.index(self._cols["domain"][i]) for i in idx]
        lang = [self.langs.index(self._cols["src_lang"][i]) for i in idx]
        if rows == 2 * len(idx):
            dom = dom + dom
            lang = lang + [self.langs.index(self._cols["tgt_lang"][i]) for i in idx]
        return {
            "domain": torch.tensor(dom, device=self.device),
            "language": torch.tensor(lang, device=self.device),
        }

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
        return restore_state(self, ckpt)

    def saver(self, step: int) -> Callable[[Path], None]:
        """`fill` for RunDir.save_checkpoint at `step`."""
        return lambda ckpt: self.save(ckpt, step)
