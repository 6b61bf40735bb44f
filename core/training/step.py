"""Everything one optimiser step touches: model, heads, optimiser, scheduler, sampler, RNGs.

`StepModel` owns the state a checkpoint must hold and computes a batch's loss: the objective
(bitext InfoNCE or pair classification), plus the enabled extras: RS-RP noise on the input
embeddings, RS-DA synonym substitution of English text, FGSM/PGD adversarial loss on clean
plus perturbed embeddings (Huang et al. 2021), and a domain/language discriminator behind a
gradient-reversal layer (Ganin et al. 2016). The heads learn at HEAD_LR_SCALE times the
encoder's lr: they start from scratch while the encoder is pretrained, as in standard BERT
fine-tuning recipes with fresh heads.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xrdiag.core.corpus import load_corpus
from xrdiag.core.encoder import (
    MODEL_META_FILE,
    default_prefix,
    model_load_errors,
    resolve_model_path,
)
from xrdiag.core.training import dann, objectives, robust
from xrdiag.core.training.config import TrainConfig, validate_against_corpus
from xrdiag.core.training.dev_eval import dev_diagnostics, embed_ids
from xrdiag.core.training.model_setup import freeze, resolve_device
from xrdiag.core.training.pairs import (
    augmented_copies,
    dev_subset,
    labelled_pairs,
    translation_pairs,
)
from xrdiag.core.training.sampler import Batch, HybridBatchSampler
from xrdiag.errors import UserError

HEAD_LR_SCALE = 10.0
TRAINER_STATE = "trainer_state.json"
TRAINER_TENSORS = "trainer.pt"


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

    def __init__(self, cfg: TrainConfig, weights: Path | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.cfg = cfg
        seed = cfg.run.seed
        self.device = resolve_device(cfg.run.device)
        corpus = load_corpus(cfg.corpus.path)
        validate_against_corpus(cfg, corpus)
        p, obj, rb = cfg.protocol, cfg.objective, cfg.robust
        if obj.kind == "contrastive":
            pairs = translation_pairs(
                corpus, p.train_langs, p.train_domains, p.pivot, cfg.corpus.max_per_domain, seed
            )
        else:
            pairs = labelled_pairs(str(obj.pairs_file), obj.num_labels)
        self.substituter = None
        if rb.rs_da.enabled:
            self.substituter = robust.SynonymSubstituter(
                robust.load_lexicon(rb.rs_da.lexicon), seed
            )
            if rb.rs_da.mode == "copies":
                pairs = augmented_copies(pairs, self.substituter, rb.rs_da.copies)
        self.pairs = pairs
        self.n_pairs = pairs.height
        self._cols = {c: pairs[c].to_list() for c in pairs.columns if c != "id"}
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
        self.model = model.to(self.device).train()
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
        self._dev_ids: list[list[int]] | None = None

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
        """Accumulate `optim.grad_accum` batches, clip, step; the step event's fields.

        Returns {"nonfinite": None | details, "event": fields}; on a non-finite loss or
        gradient norm the optimiser does not step.
        """
        import torch

        o, d = self.cfg.optim, self.cfg.dann
        lambd = (
            dann.dann_lambda(step / o.max_steps, d.lambda_max, d.schedule) if d.enabled else None
        )
        start = time.perf_counter()
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        compositions, n_samples = [], 0
        for _ in range(o.grad_accum):
            batch = next(self.sampler)
            total, parts = self._batch_loss(batch, lambd)
            if not torch.isfinite(total):
                self.optimizer.zero_grad(set_to_none=True)
                return {
                    "nonfinite": {"loss": float(total.detach()), "components": parts},
                    "event": {},
                }
            (total / o.grad_accum).backward()
            for key, value in {"loss": float(total.detach()), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value / o.grad_accum
            compositions.append(batch.composition)
            n_samples += len(batch.indices)
        clip = o.grad_clip if o.grad_clip > 0 else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip))
        if not np.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return {"nonfinite": {"grad_norm": norm, **sums}, "event": {}}
        self.optimizer.step()
        self.scheduler.step()
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
        kw = {"padding": True, "truncation": True, "max_length": self.max_length,
              "return_tensors": "pt"}  # fmt: skip
        if self.head is None:  # contrastive: both sides in one forward pass
            enc = self.tokenizer(src + tgt, **kw)
        else:  # pair classification: the pair encoded together
            enc = self.tokenizer(src, tgt, **kw)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _objective(self, pooled: Any, idx: list[int]) -> tuple[Any, dict[str, float]]:
        """The configured objective's loss on pooled vectors, and stats to log."""
        import torch

        obj = self.cfg.objective
        if self.head is None:
            a, b = pooled[: len(idx)], pooled[len(idx) :]
            loss = objectives.info_nce(a, b, obj.temperature, obj.margin)
            logits = objectives.contrastive_logits(a.detach(), b.detach(), obj.temperature)
            return loss, {"in_batch_acc": objectives.in_batch_accuracy(logits)}
        labels = torch.tensor([self._cols["label"][i] for i in idx], device=self.device)
        loss, acc = objectives.pair_classification_loss(self.head(pooled), labels)
        return loss, {"pair_acc": acc}

    def _batch_loss(self, batch: Batch, lambd: float | None) -> tuple[Any, dict[str, float]]:
        """Total loss of one batch and its components (floats, for the step event)."""

        rb, idx = self.cfg.robust, batch.indices.tolist()
        enc = self._tokenize(idx)
        mask = enc.pop("attention_mask")
        ids = enc.pop("input_ids")
        pooling = self.cfg.model.pooling

        def forward(embeds: Any) -> Any:
            out = self.model(inputs_embeds=embeds, attention_mask=mask, **enc)
            return objectives.pool(out.last_hidden_state, mask, pooling)

        embeds = self.model.get_input_embeddings()(ids)
        if rb.rs_rp.enabled:
            noise = robust.rs_rp_noise(
                embeds, rb.rs_rp.distribution, rb.rs_rp.sigma, self.noise, mask
            )
            embeds = embeds + noise
        pooled = forward(embeds)
        main, stats = self._objective(pooled, idx)
        kind = self.cfg.objective.kind
        total, parts = main, {kind: float(main.detach()), **stats}
        if rb.adversarial.enabled:
            a = rb.adversarial
            delta = robust.adversarial_perturbation(
                a.method, embeds, lambda e: self._objective(forward(e), idx)[0],
                epsilon=a.epsilon, step_size=a.step_size, steps=a.steps, norm=a.norm, mask=mask,
            )  # fmt: skip
            adv, _ = self._objective(forward(embeds + delta), idx)
            total = total + adv
            parts["adversarial"] = float(adv.detach())
        if self.disc is not None:
            logits = self.disc(pooled, lambd)
            dl, dstats = dann.discriminator_loss(logits, self._disc_labels(idx, pooled.shape[0]))
            total = total + self.cfg.dann.loss_weight * dl
            parts["dann"] = float(dl.detach())
            parts.update({f"disc_{k}": v for k, v in dstats.items()})
        return total, parts

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
        return {**result, "eval_time": time.perf_counter() - start}

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, ckpt: Path, step: int) -> None:
        """Weights (safetensors, loadable by `--model`), tokenizer, and the trainer state."""
        import torch

        self.model.save_pretrained(ckpt, safe_serialization=True)
        self.tokenizer.save_pretrained(ckpt)
        meta = Path(self.model_path) / MODEL_META_FILE
        if meta.is_file():
            shutil.copy2(meta, ckpt / MODEL_META_FILE)
        tensors = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "head": self.head.state_dict() if self.head is not None else None,
            "discriminator": self.disc.state_dict() if self.disc is not None else None,
            "torch_rng": torch.get_rng_state(),
            "noise_rng": self.noise.get_state(),
        }
        torch.save(tensors, ckpt / TRAINER_TENSORS)
        state = {
            "step": step,
            "sampler": self.sampler.state_dict(),
            "substituter": self.substituter.state_dict() if self.substituter else None,
            "rng": _rng_state(),
        }
        (ckpt / TRAINER_STATE).write_text(json.dumps(state), encoding="utf-8")

    def restore(self, ckpt: Path) -> int:
        """Load the trainer state of a checkpoint whose weights this model was built from."""
        import torch

        try:
            state = json.loads((ckpt / TRAINER_STATE).read_text(encoding="utf-8"))
            tensors = torch.load(ckpt / TRAINER_TENSORS, map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"{ckpt}: cannot read the trainer state ({exc})") from None
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.scheduler.load_state_dict(tensors["scheduler"])
        if self.head is not None:
            self.head.load_state_dict(tensors["head"])
        if self.disc is not None:
            self.disc.load_state_dict(tensors["discriminator"])
        self.sampler.load_state_dict(state["sampler"])
        if self.substituter is not None:
            self.substituter.load_state_dict(state["substituter"])
        torch.set_rng_state(tensors["torch_rng"])
        self.noise.set_state(tensors["noise_rng"])
        _set_rng_state(state["rng"])
        return int(state["step"])

    def saver(self, step: int) -> Callable[[Path], None]:
        """`fill` for RunDir.save_checkpoint at `step`."""
        return lambda ckpt: self.save(ckpt, step)


def _rng_state() -> dict[str, Any]:
    """Python and numpy global RNG states, JSON-serialisable."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}  # fmt: skip


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
