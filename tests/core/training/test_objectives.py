"""Objectives: bitext InfoNCE with temperature and additive margin; pair classification."""

from __future__ import annotations

import math

import pytest
import torch

from xrdiag.core.training.objectives import (
    PairClassificationHead,
    contrastive_logits,
    in_batch_accuracy,
    info_nce,
    pair_classification_loss,
    pool,
)


def _naive_info_nce(a: list[list[float]], b: list[list[float]], t: float, m: float) -> float:
    """Loop-based symmetric InfoNCE in float64 Python arithmetic."""

    def unit(v: list[float]) -> list[float]:
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    ua, ub = [unit(v) for v in a], [unit(v) for v in b]
    n = len(a)
    logit = [
        [
            (sum(x * y for x, y in zip(ua[i], ub[j], strict=True)) - (m if i == j else 0.0)) / t
            for j in range(n)
        ]
        for i in range(n)
    ]
    a2b = sum(math.log(sum(math.exp(v) for v in logit[i])) - logit[i][i] for i in range(n)) / n
    b2a = (
        sum(math.log(sum(math.exp(logit[i][j]) for i in range(n))) - logit[j][j] for j in range(n))
        / n
    )
    return (a2b + b2a) / 2


@pytest.mark.parametrize(
    ("temperature", "margin"), [(0.05, 0.0), (0.05, 0.3), (1.0, 0.1), (0.2, 0.0)]
)
def test_info_nce_equals_naive_loop(temperature: float, margin: float) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    b = a + 0.8 * torch.randn(7, 5, generator=gen, dtype=torch.float64)
    got = float(info_nce(a, b, temperature, margin))
    assert got == pytest.approx(
        _naive_info_nce(a.tolist(), b.tolist(), temperature, margin), abs=1e-6
    )


def test_info_nce_float32_matches_naive() -> None:
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(16, 32, generator=gen), torch.randn(16, 32, generator=gen)
    expected = _naive_info_nce(a.double().tolist(), b.double().tolist(), 0.05, 0.2)
    assert float(info_nce(a, b, 0.05, 0.2)) == pytest.approx(expected, abs=1e-5)


def test_margin_lowers_exactly_the_positive_logits() -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    t, m = 0.07, 0.25
    diff = contrastive_logits(a, b, t, m) - contrastive_logits(a, b, t, 0.0)
    expected = -(m / t) * torch.eye(6, dtype=torch.float64)
    assert torch.allclose(diff, expected, atol=1e-12)
    # A larger margin can only make the task harder.
    losses = [float(info_nce(a, b, t, mm)) for mm in (0.0, 0.1, 0.2, 0.4)]
    assert losses == sorted(losses) and losses[0] < losses[-1]


def test_inputs_are_normalised_inside_and_loss_is_symmetric() -> None:
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    scales = torch.tensor([[0.1], [2.0], [7.0], [1.0], [0.5]], dtype=torch.float64)
    assert float(info_nce(a * scales, b, 0.1)) == pytest.approx(
        float(info_nce(a, b, 0.1)), abs=1e-12
    )
    assert float(info_nce(a, b, 0.1, 0.2)) == pytest.approx(
        float(info_nce(b, a, 0.1, 0.2)), abs=1e-12
    )


def test_info_nce_gradient_is_correct() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, 0.3, 0.1), (a, b))


def test_perfect_alignment_gives_low_loss_and_full_accuracy() -> None:
    eye = torch.eye(8)
    logits = contrastive_logits(eye, eye, 0.05)
    assert in_batch_accuracy(logits) == 1.0
    assert float(info_nce(eye, eye, 0.05)) < 1e-6
    shifted = torch.roll(eye, 1, dims=0)
    assert in_batch_accuracy(contrastive_logits(eye, shifted, 0.05)) == 0.0


def test_bad_shapes_and_temperature_raise() -> None:
    with pytest.raises(ValueError):
        info_nce(torch.zeros(3, 4), torch.zeros(2, 4), 0.05)
    with pytest.raises(ValueError):
        info_nce(torch.ones(3, 4), torch.ones(3, 4), 0.0)


def test_mean_and_cls_pooling() -> None:
    gen = torch.Generator().manual_seed(4)
    hidden = torch.randn(2, 4, 3, generator=gen)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = pool(hidden, mask, "mean")
    assert torch.allclose(pooled[0], (hidden[0, 0] + hidden[0, 1]) / 2)
    assert torch.allclose(pooled[1], hidden[1].mean(dim=0))
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0, :])
    with pytest.raises(ValueError):
        pool(hidden, mask, "max")


def test_pair_head_shapes_loss_and_learning() -> None:
    torch.manual_seed(0)
    head = PairClassificationHead(16, 3)
    head.eval()
    x = torch.randn(30, 16)
    labels = torch.arange(30) % 3
    logits = head(x)
    assert logits.shape == (30, 3)
    loss, acc = pair_classification_loss(logits, labels)
    rows = logits.double().tolist()
    nll = [
        math.log(sum(math.exp(v) for v in r)) - r[int(y)] for r, y in zip(rows, labels, strict=True)
    ]
    assert float(loss.detach()) == pytest.approx(sum(nll) / len(nll), abs=1e-6)
    assert acc == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    # It can fit a separable problem: the head is wired to the loss.
    x = x + 3.0 * torch.nn.functional.one_hot(labels, 16).float()
    head.train()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        step_loss, _ = pair_classification_loss(head(x), labels)
        step_loss.backward()
        opt.step()
    head.eval()
    assert pair_classification_loss(head(x), labels)[1] == 1.0
    with pytest.raises(ValueError):
        PairClassificationHead(16, 1)


def test_rows_of_one_id_are_not_each_others_negatives() -> None:
    """A batch holding one id twice (en->fr and en->de of sentence X): those rows' cross terms
    leave the softmax, so the loss equals the naive loop without them."""
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    b = a + 0.5 * torch.randn(5, 6, generator=gen, dtype=torch.float64)
    a[3] = a[1]  # the same English sentence twice
    groups = ["x", "X", "y", "X", "z"]
    logits = contrastive_logits(a, b, 0.1, groups=groups)
    assert torch.isinf(logits[1, 3]) and torch.isinf(logits[3, 1])
    assert torch.isfinite(logits.diagonal()).all()

    def naive(t: float) -> float:
        ua = torch.nn.functional.normalize(a, dim=-1)
        ub = torch.nn.functional.normalize(b, dim=-1)
        sims = (ua @ ub.T / t).tolist()
        keep = [[not (groups[i] == groups[j] and i != j) for j in range(5)] for i in range(5)]
        a2b = sum(math.log(sum(math.exp(sims[i][j]) for j in range(5) if keep[i][j]))
                  - sims[i][i] for i in range(5)) / 5  # fmt: skip
        b2a = sum(math.log(sum(math.exp(sims[i][j]) for i in range(5) if keep[i][j]))
                  - sims[j][j] for j in range(5)) / 5  # fmt: skip
        return (a2b + b2a) / 2

    assert float(info_nce(a, b, 0.1, groups=groups)) == pytest.approx(naive(0.1), abs=1e-9)
    assert float(info_nce(a, b, 0.1, groups=groups)) < float(info_nce(a, b, 0.1))
