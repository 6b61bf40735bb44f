"""One batch of a training step: its texts, tokens, forward pass, objective, DANN and backward.

A mixin of `StepModel` (core/training/step.py), which owns the model, heads, sampler and
optimiser; this is the part that turns a batch of pair indices into gradients: the clean pass
(full forward, or the upper blocks only on a cached frozen prefix), then, for adversarial
training, the perturbation and its pass.
"""

from __future__ import annotations

from typing import Any

from xrdiag.core.training import dann, objectives, robust
from xrdiag.core.training.pair_forward import pair_inputs
from xrdiag.core.training.sampler import Batch


class BatchLoss:
    """Forward and backward of one batch (`StepModel` provides the attributes used here)."""

    cfg: Any
    accelerator: Any
    model: Any
    tokenizer: Any
    encoder: Any
    net: Any
    head: Any
    head_net: Any
    disc_net: Any
    noise: Any
    substituter: Any
    prefix: str
    max_length: int
    device: str
    n_pairs: int
    prefix_states: Any
    langs: list[str]
    domains: list[str]
    _cols: dict[str, list[Any]]
    _groups: list[str]

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
