"""One batch of StepModel on the tiny encoder: the adversary reuses the clean pass's gradient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from xrdiag.core.training import robust
from xrdiag.core.training.config import load_config
from xrdiag.core.training.step import StepModel


def step_model(tiny: Path, extra: list[str]) -> StepModel:
    sets = [
        f"model.name={tiny}", "model.max_length=24", "model.freeze_embeddings=false",
        "batches.batch_size=6", "corpus.max_per_domain=30", "protocol.dev_max_per_domain=2",
        "optim.warmup_steps=0", "run.device=cpu",
    ]  # fmt: skip
    return StepModel(load_config(None, sets + extra))


def count_forwards(model: StepModel) -> dict[str, int]:
    """Forward passes through the HF encoder (clean, adversary's inner passes, adversarial)."""
    calls = {"n": 0}

    def hook(*_: Any) -> None:
        calls["n"] += 1

    model.model.register_forward_hook(hook)
    return calls


ADV = ["robust.adversarial.enabled=true", "robust.adversarial.epsilon=0.5"]


@pytest.mark.parametrize(
    ("extra", "passes"),
    [
        ([], 1),
        (ADV + ["robust.adversarial.method=fgsm"], 2),
        (ADV + ["robust.adversarial.method=pgd", "robust.adversarial.steps=1"], 2),
        (ADV + ["robust.adversarial.method=pgd", "robust.adversarial.steps=3"], 4),
        (ADV + ["robust.adversarial.method=pgd", "robust.adversarial.steps=3", "dann.enabled=true"],
         4),
    ],
)  # fmt: skip
def test_pgd_k_costs_k_plus_one_passes(tiny_model_dir: Path, extra: list[str], passes: int) -> None:
    model = step_model(tiny_model_dir, extra)
    calls = count_forwards(model)
    total, parts = model._batch_loss(next(model.sampler), 0.1 if "dann" in str(extra) else None)
    assert calls["n"] == passes
    assert torch.isfinite(torch.tensor(total)) and ("adversarial" in parts) == bool(extra)
    grads = [p.grad for p in model.params if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("freeze", [False, True])
@pytest.mark.parametrize("with_dann", [False, True])
def test_adversary_starts_from_the_clean_objective_gradient(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, freeze: bool, with_dann: bool
) -> None:
    """The gradient handed to the adversary is d objective / d embeds at the clean input (the
    objective's alone, not the discriminator's), as a separate pass recomputes it."""
    extra = ADV + ["robust.adversarial.method=pgd", "robust.adversarial.steps=2"]
    extra += [f"model.freeze_embeddings={str(freeze).lower()}", "optim.grad_accum=2"]
    extra += ["dann.enabled=true", "dann.loss_weight=5.0"] if with_dann else []
    model = step_model(tiny_model_dir, extra)
    model.model.eval()  # no dropout: the recomputation sees the same network
    seen: dict[str, Any] = {}
    original = robust.adversarial_perturbation

    def spy(method: str, embeds: torch.Tensor, loss_fn: Any, **kw: Any) -> torch.Tensor:
        seen.update(embeds=embeds.clone(), loss_fn=loss_fn, grad=kw["initial_grad"].clone())
        return original(method, embeds, loss_fn, **kw)

    monkeypatch.setattr(robust, "adversarial_perturbation", spy)
    model._batch_loss(next(model.sampler), 1.0 if with_dann else None, accum=2)
    leaf = seen["embeds"].clone().requires_grad_(True)
    (want,) = torch.autograd.grad(seen["loss_fn"](leaf), [leaf])
    # the training pass's gradient is of loss / grad_accum; only its direction matters
    got = seen["grad"] * (1.0 if with_dann else 2.0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert float(want.abs().max()) > 0
