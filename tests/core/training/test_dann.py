"""Domain-adversarial pieces: gradient reversal, the Ganin schedule, the discriminator."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from xrdiag.core.training.dann import (
    DomainDiscriminator,
    GradientReversal,
    dann_lambda,
    discriminator_loss,
    ganin_lambda,
    grad_reverse,
)
from xrdiag.errors import UserError


@pytest.mark.parametrize("lambd", [0.0, 0.1, 1.0, 2.5])
def test_grl_forward_identity_backward_minus_lambda(lambd: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen, requires_grad=True)
    upstream = torch.randn(5, 7, generator=gen)
    y = grad_reverse(x, lambd)
    assert torch.equal(y, x.detach())
    (grad,) = torch.autograd.grad(y, x, grad_outputs=upstream)
    assert torch.equal(grad, -lambd * upstream)


def test_grl_inside_a_graph_reverses_only_its_branch() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    w = torch.randn(3, generator=gen)
    # d/dx [ sum(x @ w) + sum(R(x) @ w) ] = w - 0.3 w = 0.7 w per row.
    loss = (x @ w).sum() + (GradientReversal.apply(x, 0.3) @ w).sum()
    loss.backward()
    expected = (w - 0.3 * w).expand(4, 3)
    assert torch.allclose(x.grad, expected, atol=1e-7)


def test_ganin_schedule_values() -> None:
    lam = 0.7
    assert ganin_lambda(0.0, lam) == 0.0
    assert ganin_lambda(0.5, lam) == pytest.approx(lam * (2 / (1 + math.exp(-5)) - 1), abs=1e-12)
    assert ganin_lambda(1.0, lam) == pytest.approx(lam * (2 / (1 + math.exp(-10)) - 1), abs=1e-12)
    # Monotone ramp towards lambda_max; progress is clamped to [0, 1].
    values = [ganin_lambda(p / 10, lam) for p in range(11)]
    assert values == sorted(values) and values[-1] < lam
    assert ganin_lambda(-1.0, lam) == 0.0 and ganin_lambda(3.0, lam) == ganin_lambda(1.0, lam)


def test_dann_lambda_schedules() -> None:
    assert dann_lambda(0.0, 0.4, "constant") == 0.4
    assert dann_lambda(0.3, 0.4, "ganin") == ganin_lambda(0.3, 0.4)
    with pytest.raises(ValueError):
        dann_lambda(0.3, 0.4, "linear")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("domain", {"domain": 6}),
        ("language", {"language": 13}),
        ("both", {"domain": 6, "language": 13}),
    ],
)
def test_discriminator_head_shapes(target: str, expected: dict[str, int]) -> None:
    torch.manual_seed(0)
    disc = DomainDiscriminator(dim=32, hidden=16, n_domains=6, n_langs=13, target=target)
    out = disc(torch.randn(10, 32), 0.5)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (10, n) for k, n in expected.items()}


def test_discriminator_gradient_into_features_is_reversed() -> None:
    torch.manual_seed(0)
    disc = DomainDiscriminator(dim=8, hidden=5, n_domains=3, n_langs=4, target="both")
    feats = torch.randn(12, 8)
    labels = {"domain": torch.arange(12) % 3, "language": torch.arange(12) % 4}
    lambd = 0.37

    x_adv = feats.clone().requires_grad_(True)
    loss_adv, _ = discriminator_loss(disc(x_adv, lambd), labels)
    loss_adv.backward()
    disc_grads_adv = [p.grad.clone() for p in disc.parameters()]
    disc.zero_grad()

    # The same heads without the reversal layer: the plain gradient.
    x_plain = feats.clone().requires_grad_(True)
    plain_logits = {name: head(x_plain) for name, head in disc.heads.items()}
    loss_plain, _ = discriminator_loss(plain_logits, labels)
    loss_plain.backward()

    assert torch.allclose(loss_adv, loss_plain)
    assert torch.allclose(x_adv.grad, -lambd * x_plain.grad, atol=1e-7)
    assert x_plain.grad.abs().sum() > 0
    # The discriminator itself still descends its own loss: its gradients are not reversed.
    for adv, plain in zip(disc_grads_adv, (p.grad for p in disc.parameters()), strict=True):
        assert torch.allclose(adv, plain, atol=1e-7)


def test_discriminator_loss_matches_naive_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = {
        "domain": torch.randn(6, 3, generator=gen),
        "language": torch.randn(6, 2, generator=gen),
    }
    labels = {
        "domain": torch.tensor([0, 1, 2, 0, 1, -100]),
        "language": torch.tensor([1, 0, 1, 1, 0, 0]),
    }
    total, stats = discriminator_loss(logits, labels)
    expected_total = 0.0
    for name in ("domain", "language"):
        rows = [
            (logits[name][i].tolist(), int(labels[name][i]))
            for i in range(6)
            if int(labels[name][i]) != -100
        ]
        nll = [math.log(sum(math.exp(v) for v in row)) - row[y] for row, y in rows]
        acc = sum(max(range(len(row)), key=row.__getitem__) == y for row, y in rows) / len(rows)
        assert stats[f"{name}_loss"] == pytest.approx(sum(nll) / len(nll), abs=1e-6)
        assert stats[f"{name}_acc"] == pytest.approx(acc, abs=1e-12)
        expected_total += sum(nll) / len(nll)
    assert float(total) == pytest.approx(expected_total, abs=1e-6)


def test_discriminator_needs_two_classes_and_a_known_target() -> None:
    with pytest.raises(UserError, match="dann.target"):
        DomainDiscriminator(dim=8, hidden=4, n_domains=1, n_langs=5, target="domain")
    DomainDiscriminator(dim=8, hidden=4, n_domains=1, n_langs=5, target="language")
    with pytest.raises(ValueError):
        DomainDiscriminator(dim=8, hidden=4, n_domains=3, n_langs=5, target="genre")


def test_discriminator_pickles_and_state_round_trips() -> None:
    torch.manual_seed(0)
    disc = DomainDiscriminator(dim=8, hidden=4, n_domains=3, n_langs=5, target="both")
    clone = pickle.loads(pickle.dumps(disc))
    other = DomainDiscriminator(dim=8, hidden=4, n_domains=3, n_langs=5, target="both")
    other.load_state_dict(disc.state_dict())
    x = torch.randn(3, 8)
    for model in (clone, other):
        for name, logits in model(x, 1.0).items():
            assert torch.equal(logits, disc(x, 1.0)[name])
