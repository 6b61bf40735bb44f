"""Robust training (Huang et al., EMNLP 2021): RS-RP, RS-DA and adversarial perturbations.

- RS-RP (randomized smoothing, random perturbation): noise added to the input embeddings.
- RS-DA (randomized smoothing, data augmentation): English words replaced, uniformly at random,
  by themselves or one of their neighbours in counter-fitted word vectors (the lexicon the
  paper's code ships, in core/data/synonyms/).
- Adversarial training in embedding space: FGSM (Goodfellow et al. 2015) and PGD-k (Madry et
  al. 2018) on `inputs_embeds`, inside an L2 ball per example or an L-infinity ball.

Every function here returns the *perturbation* delta (same shape as the embeddings, detached);
the caller feeds `embeds + delta` to the model. Padding positions (mask = 0) get delta = 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xrdiag.analyses.perturb import match_case

if TYPE_CHECKING:
    import torch

DISTRIBUTIONS = ("gaussian", "uniform")
NORMS = ("l2", "linf")
METHODS = ("fgsm", "pgd")
# A word: letters, optionally joined by apostrophes (don't, it's, o'clock). Digits and
# punctuation are left alone, so numbers in a translation pair never change.
WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_TINY = 1e-12


def rs_rp_noise(
    embeds: torch.Tensor,
    distribution: str,
    sigma: float,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """RS-RP noise delta for `embeds` `[batch, tokens, dim]`: N(0, sigma^2) or U(-sigma, sigma).

    Drawn on the generator's device (so a seeded CPU generator gives the same noise on any
    device), then moved to the embeddings' device and dtype.
    """
    import torch

    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    device = generator.device if generator is not None else embeds.device
    shape = tuple(embeds.shape)
    if distribution == "gaussian":
        noise = torch.randn(shape, generator=generator, device=device) * sigma
    elif distribution == "uniform":
        noise = (torch.rand(shape, generator=generator, device=device) * 2.0 - 1.0) * sigma
    else:
        raise ValueError(f"unknown distribution {distribution!r}; expected one of {DISTRIBUTIONS}")
    return _masked(noise.to(device=embeds.device, dtype=embeds.dtype), mask)


def _masked(delta: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return delta
    return delta * mask.to(delta.dtype).unsqueeze(-1)


def _example_l2(x: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm over every dimension but the first, shaped to broadcast."""
    flat = x.reshape(x.shape[0], -1).norm(dim=1)
    return flat.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def _ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step: grad / ||grad||_2 per example, or sign(grad) for L-inf."""
    if norm == "l2":
        return grad / _example_l2(grad).clamp(min=_TINY)
    if norm == "linf":
        return grad.sign()
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """Project delta onto the epsilon ball: rescale per example (L2) or clamp (L-inf)."""
    if norm == "l2":
        scale = (epsilon / _example_l2(delta).clamp(min=_TINY)).clamp(max=1.0)
        return delta * scale
    if norm == "linf":
        return delta.clamp(min=-epsilon, max=epsilon)
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def _loss_grad(
    embeds: torch.Tensor, delta: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """d loss(embeds + delta) / d delta, without touching any parameter's .grad."""
    import torch

    delta = delta.detach().requires_grad_(True)
    loss = loss_fn(embeds.detach() + delta)
    (grad,) = torch.autograd.grad(loss, [delta])
    return grad


def _start_grad(
    embeds: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    initial_grad: torch.Tensor | None,
) -> torch.Tensor:
    """The loss gradient at the clean embeddings: `initial_grad`, or one forward-backward pass.

    Any positive scale of it (loss scaling, 1/grad_accum) gives the same ascent direction, so
    the clean training pass's gradient can be passed as it is.
    """
    import torch

    if initial_grad is None:
        return _loss_grad(embeds, torch.zeros_like(embeds), loss_fn)
    if initial_grad.shape != embeds.shape:
        raise ValueError(
            f"initial_grad has shape {tuple(initial_grad.shape)}, embeds {tuple(embeds.shape)}"
        )
    return initial_grad.detach().to(dtype=embeds.dtype)


def fgsm_perturbation(
    embeds: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    epsilon: float,
    norm: str = "l2",
    mask: torch.Tensor | None = None,
    initial_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """One step of size epsilon along the loss gradient (FGSM, Goodfellow et al. 2015).

    delta = epsilon * g / ||g||_2 (per example) or epsilon * sign(g), g = grad of
    `loss_fn(inputs_embeds)` at the clean embeddings; with `initial_grad` (that gradient, from
    the clean training pass) it costs no forward-backward pass at all.
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    grad = _masked(_start_grad(embeds, loss_fn, initial_grad), mask)
    return _masked(project(epsilon * _ascent_direction(grad, norm), epsilon, norm), mask).detach()


def pgd_perturbation(
    embeds: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    epsilon: float,
    step_size: float,
    steps: int,
    norm: str = "l2",
    mask: torch.Tensor | None = None,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    initial_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """PGD-k (Madry et al. 2018): k ascent steps of `step_size`, each projected on the ball.

    delta_{t+1} = Proj_eps(delta_t + step_size * direction(grad loss(embeds + delta_t))),
    from delta_0 = 0 or, with `random_start`, a uniform draw in the L-inf box / L2 ball
    scaled to epsilon. Costs k forward-backward passes, or k - 1 with `initial_grad` (the
    gradient at delta_0 = 0, which the clean training pass has already computed).
    """
    import torch

    if epsilon < 0 or step_size <= 0 or steps < 1:
        raise ValueError(
            f"need epsilon >= 0, step_size > 0, steps >= 1, got {epsilon}, {step_size}, {steps}"
        )
    if random_start and initial_grad is not None:
        raise ValueError("initial_grad is the gradient at delta = 0; random_start moves away")
    delta = torch.zeros_like(embeds)
    if random_start:
        start = rs_rp_noise(embeds, "uniform", epsilon, generator)
        delta = _masked(project(start, epsilon, norm), mask)
    for i in range(steps):
        if i == 0 and initial_grad is not None:
            grad = _masked(_start_grad(embeds, loss_fn, initial_grad), mask)
        else:
            grad = _masked(_loss_grad(embeds, delta, loss_fn), mask)
        delta = delta + step_size * _ascent_direction(grad, norm)
        delta = _masked(project(delta, epsilon, norm), mask)
    return delta.detach()


def adversarial_perturbation(
    method: str,
    embeds: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    norm: str = "l2",
    mask: torch.Tensor | None = None,
    initial_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch on the config's `robust.adversarial.method`: `fgsm` or `pgd`.

    `initial_grad`: the loss gradient at the clean embeddings (any positive scale), reused
    instead of recomputed: FGSM then costs no extra pass, PGD-k k - 1.
    """
    if method == "fgsm":
        return fgsm_perturbation(embeds, loss_fn, epsilon, norm, mask, initial_grad)
    if method == "pgd":
        return pgd_perturbation(
            embeds, loss_fn, epsilon, step_size, steps, norm, mask, initial_grad=initial_grad
        )
    raise ValueError(f"unknown adversarial method {method!r}; expected one of {METHODS}")


class SynonymSubstituter:
    """RS-DA: each word becomes, uniformly at random, itself or one of its lexicon neighbours.

    Huang et al. 2021 (RS-DA; `perturb.py` in their code): for a word w with
    neighbours N(w), the replacement is drawn uniformly from {w} + N(w). Words are looked up in
    lower case; the replacement takes the original's capitalisation; punctuation, digits and
    whitespace are kept as they are. Seeded and resumable (`state_dict`).
    """

    def __init__(self, lexicon: Mapping[str, Sequence[str]], seed: int = 0) -> None:
        self.lexicon = lexicon
        self._rng = random.Random(seed)

    def substitute(self, text: str, p: float = 1.0) -> str:
        """With probability p, the sentence with every listed word resampled; else unchanged."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if self._rng.random() >= p:
            return text
        return WORD.sub(self._replace, text)

    def copies(self, text: str, n: int) -> list[str]:
        """n independently augmented copies (the "copies up front" mode)."""
        return [WORD.sub(self._replace, text) for _ in range(n)]

    def _replace(self, match: re.Match[str]) -> str:
        word = match.group(0)
        neighbours = self.lexicon.get(word.lower().replace("\u2019", "'"))
        if not neighbours:
            return word
        pick = self._rng.randrange(len(neighbours) + 1)
        return word if pick == 0 else match_case(neighbours[pick - 1], word)

    def state_dict(self) -> dict[str, Any]:
        """The RNG state, JSON-serialisable, so a resumed run draws the same substitutions."""
        version, internal, gauss = self._rng.getstate()
        return {"version": version, "internal": list(internal), "gauss": gauss}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rng.setstate((state["version"], tuple(state["internal"]), state["gauss"]))
