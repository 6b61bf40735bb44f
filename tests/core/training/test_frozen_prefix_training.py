"""Training on the cached frozen prefix equals training on the full forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xrdiag.core.training.config import load_config
from xrdiag.core.training.step import StepModel


def config(tiny: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_config(
        None,
        [
            f"model.name={tiny}", "model.max_length=24", "model.freeze_layers=1",
            "batches.batch_size=6", "corpus.max_per_domain=20", "protocol.dev_max_per_domain=4",
            "optim.lr=1e-3", "optim.warmup_steps=0", "optim.max_steps=3", *extra,
        ],
    )  # fmt: skip


def _weights(model: StepModel) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.model.state_dict().items()}


@pytest.mark.parametrize("extra", [(), ("dann.enabled=true",), ("batches.alpha=0.5",)])
def test_losses_and_weights_equal_the_full_forward(tiny_model_dir: Path, extra) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tiny_model_dir, *extra)
    torch.manual_seed(0)
    fast = StepModel(cfg)
    torch.manual_seed(0)
    slow = StepModel(cfg, reuse_prefix=False)
    assert fast.prefix_reason is None and fast.prefix_states is not None
    assert slow.prefix_states is None
    for step in range(3):  # the same dropout draws in the upper blocks of both
        torch.manual_seed(100 + step)
        a = fast.optimiser_step(step)
        torch.manual_seed(100 + step)
        b = slow.optimiser_step(step)
        assert a["event"]["loss"] == pytest.approx(b["event"]["loss"], abs=1e-5)
    wa, wb = _weights(fast), _weights(slow)
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], rtol=0, atol=1e-5, err_msg=key)
    # the prefix did not move: embeddings and block 0 are the base model's
    base = StepModel(cfg, reuse_prefix=False)
    for key, value in _weights(base).items():
        if key.startswith(("embeddings.", "encoder.layer.0.")):
            np.testing.assert_array_equal(wa[key], value)


def test_perturbed_inputs_take_the_full_forward(tiny_model_dir: Path) -> None:
    cfg = config(tiny_model_dir, "robust.rs_rp.enabled=true")
    model = StepModel(cfg)
    assert model.prefix_states is None and "perturbed" in (model.prefix_reason or "")
