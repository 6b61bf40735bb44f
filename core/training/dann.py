"""Domain-adversarial training: gradient reversal, the lambda schedule and the discriminator.

Ganin et al. 2016 ("Domain-Adversarial Training of Neural Networks", JMLR 17): a discriminator
learns to predict the domain (or language) from the pooled sentence embedding, while a
gradient-reversal layer between them makes the encoder *unlearn* what the discriminator uses.
The discriminator's loss and accuracy are the live signal of how much domain or language
identity the encoder still carries.

torch is imported lazily: the `torch.autograd.Function` and `torch.nn.Module` subclasses are
built on first access through the module `__getattr__` (PEP 562), so importing this module
(e.g. by the CLI) stays cheap, while `from ...dann import DomainDiscriminator` still gives
the real class.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from xrdiag.errors import UserError

if TYPE_CHECKING:
    import torch

TARGETS = ("domain", "language", "both")
SCHEDULES = ("ganin", "constant")
# Heads a target enables, in a fixed order (also the order of the logged statistics).
HEADS = {"domain": ("domain",), "language": ("language",), "both": ("domain", "language")}


def ganin_lambda(p: float, lambda_max: float) -> float:
    """lambda_p = lambda_max * (2 / (1 + exp(-10 p)) - 1), p = training progress in [0, 1].

    Ganin et al. 2016 (their schedule, gamma = 10): the adversary's weight ramps from 0 to
    lambda_max, so the discriminator's noisy early gradients do not wreck the encoder.
    p is clamped to [0, 1].
    """
    p = min(max(float(p), 0.0), 1.0)
    return lambda_max * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


def dann_lambda(p: float, lambda_max: float, schedule: str = "ganin") -> float:
    """The reversal weight at progress p under a schedule: `ganin` (ramp) or `constant`."""
    if schedule == "ganin":
        return ganin_lambda(p, lambda_max)
    if schedule == "constant":
        return float(lambda_max)
    raise ValueError(f"unknown DANN schedule {schedule!r}; expected one of {SCHEDULES}")


def grad_reverse(x: torch.Tensor, lambd: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by -lambd backward."""
    return _gradient_reversal_class().apply(x, float(lambd))


@functools.cache
def _gradient_reversal_class() -> type:
    import torch

    class GradientReversal(torch.autograd.Function):
        """Gradient-reversal layer R_lambda: R(x) = x, dR/dx = -lambda I (Ganin et al. 2016)."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor, lambd: float) -> torch.Tensor:
            ctx.lambd = lambd
            return x.view_as(x)

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
            return -ctx.lambd * grad_output, None

    # A plain qualname makes it picklable: the module __getattr__ resolves it.
    GradientReversal.__qualname__ = GradientReversal.__name__
    return GradientReversal


@functools.cache
def _domain_discriminator_class() -> type:
    from torch import nn

    class DomainDiscriminator(nn.Module):
        """Small MLP heads on the reversed pooled embedding: domain, language, or both.

        Each head is Linear(dim, hidden) -> ReLU -> Linear(hidden, n_classes), as the
        single-hidden-layer domain classifier of Ganin et al. 2016. No dropout, so a step is
        deterministic given the seed.
        """

        def __init__(
            self, dim: int, hidden: int, n_domains: int, n_langs: int, target: str = "domain"
        ) -> None:
            super().__init__()
            if target not in TARGETS:
                raise ValueError(f"unknown DANN target {target!r}; expected one of {TARGETS}")
            if dim < 1 or hidden < 1:
                raise ValueError(f"dim and hidden must be >= 1, got {dim} and {hidden}")
            self.target = target
            sizes = {"domain": n_domains, "language": n_langs}
            self.heads = nn.ModuleDict()
            for head in HEADS[target]:
                if sizes[head] < 2:
                    raise UserError(
                        f"dann.target = {target!r}: the {head} head needs at least 2 training "
                        f"{head}s, the protocol gives {sizes[head]}"
                    )
                self.heads[head] = nn.Sequential(
                    nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, sizes[head])
                )

        def forward(self, pooled: torch.Tensor, lambd: float) -> dict[str, torch.Tensor]:
            """Logits `[batch, n_classes]` per head, computed on grad_reverse(pooled, lambd)."""
            reversed_ = grad_reverse(pooled, lambd)
            return {name: head(reversed_) for name, head in self.heads.items()}

    # A plain qualname makes it picklable: the module __getattr__ resolves it.
    DomainDiscriminator.__qualname__ = DomainDiscriminator.__name__
    return DomainDiscriminator


def discriminator_loss(
    logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed cross-entropy over the heads, plus `<head>_loss` and `<head>_acc` per head to log.

    A head with a label of -100 for some rows ignores those rows (torch's ignore_index).
    """
    import torch
    import torch.nn.functional as F

    if not logits:
        raise ValueError("discriminator_loss needs at least one head")
    total = torch.zeros((), dtype=next(iter(logits.values())).dtype)
    stats: dict[str, float] = {}
    for name, head_logits in logits.items():
        target = labels[name].to(head_logits.device)
        loss = F.cross_entropy(head_logits, target, ignore_index=-100)
        total = total.to(head_logits.device) + loss
        valid = target != -100
        correct = (head_logits.argmax(dim=-1) == target) & valid
        n_valid = int(valid.sum())
        stats[f"{name}_loss"] = float(loss.detach())
        stats[f"{name}_acc"] = float(correct.sum()) / n_valid if n_valid else math.nan
    return total, stats


_LAZY = {
    "GradientReversal": _gradient_reversal_class,
    "DomainDiscriminator": _domain_discriminator_class,
}


def __getattr__(name: str) -> Any:
    """PEP 562: build the torch classes on first access, keeping the module import cheap."""
    if name in _LAZY:
        return _LAZY[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
