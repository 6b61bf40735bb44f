"""Model set-up for training: the Accelerator, the pooled encoder, freezing embeddings and layers.

Freezing the 250k x 384 token-embedding matrix of a multilingual encoder (most of its
parameters) and optionally the lower blocks is what makes CPU fine-tuning of a 118M model
practical: no gradient, no AdamW moments and no update for what is frozen.

Devices, processes and mixed precision are Hugging Face Accelerate's job: `make_accelerator`
builds the one `Accelerator` of a run from `[run]`, and `accelerate launch -m xrdiag train`
gives it several processes (DDP; gloo on CPU).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from xrdiag.core.encoding.encoder import pick_device
from xrdiag.errors import UserError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from xrdiag.core.training.config_schema import RunConfig

MIXED_PRECISION = ("no", "fp16", "bf16")


def resolve_device(device: str) -> str:
    """`run.device`: auto, cpu, mps, cuda or cuda:N; an absent device is the user's error."""
    import torch

    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise UserError(f"run.device {device}: no such CUDA device here (use auto or cpu)")
        return device
    try:
        return pick_device(device)
    except UserError as exc:
        raise UserError(f"run.device: {exc}") from None


def freeze(model: Any, embeddings: bool, layers: int) -> None:
    """Freeze the token embedding matrix, or the whole prefix below block `layers`.

    With `layers` > 0 the embeddings (all of them) and the lower blocks are the frozen prefix,
    kept in eval mode (core/training/frozen_prefix.py): bit-identical in every checkpoint, so
    their output can be computed once per sentence.
    """
    from xrdiag.core.encoding.frozen_prefix import layer_list
    from xrdiag.core.training.frozen_prefix import lock_prefix

    if embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if layers:
        blocks = layer_list(model)
        if blocks is None or layers > len(blocks):
            have = "no recognisable layer list" if blocks is None else f"{len(blocks)} layers"
            raise UserError(f"model.freeze_layers {layers}: the model has {have}")
        lock_prefix(model, layers)


def _launched_distributed() -> bool:
    """True under `accelerate launch` / torchrun with more than one process."""
    import torch.distributed as dist

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or (
        dist.is_available() and dist.is_initialized()
    )


def make_accelerator(run: RunConfig) -> Accelerator:
    """The run's Accelerator: `run.device` (cpu -> `cpu=True`) and `run.mixed_precision`.

    Under `accelerate launch` with several processes, Accelerate places each process on its
    device; `find_unused_parameters` lets DDP skip what a step does not use (the HF pooler,
    an unused discriminator head). In a single process an Accelerator state left by an earlier
    run with other settings is reset (tests, notebooks); a distributed one never is.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs, parse_flag_from_env

    device = resolve_device(run.device)
    cpu = device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU")
    if run.mixed_precision not in MIXED_PRECISION:
        raise UserError(
            f"run.mixed_precision: {run.mixed_precision!r}; expected one of no, fp16, bf16"
        )
    if cpu and run.mixed_precision == "fp16":
        raise UserError(
            "run.mixed_precision: fp16 needs a GPU and this run is on the CPU; expected no or bf16"
        )
    distributed = _launched_distributed()
    if device.startswith("cuda:") and not distributed:
        import torch

        torch.cuda.set_device(int(device.split(":", 1)[1]))
    if AcceleratorState._shared_state and not distributed:
        state = AcceleratorState._shared_state
        same_device = (state.get("device") is not None) and (state["device"].type == "cpu") == cpu
        if state.get("_mixed_precision") != run.mixed_precision or not same_device:
            AcceleratorState._reset_state(reset_partial_state=True)
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=run.mixed_precision,
        kwargs_handlers=[ddp],
        step_scheduler_with_optimizer=False,  # the schedule counts optimiser steps
    )
    if accelerator.device.type == "cpu" and run.mixed_precision == "fp16":
        raise UserError(
            "run.mixed_precision: fp16 needs a GPU and this run is on the CPU; expected no or bf16"
        )
    return accelerator


def _pooled_encoder_class() -> type:
    from torch import nn

    from xrdiag.core.training.objectives import pool

    class PooledEncoder(nn.Module):
        """An HF encoder whose forward returns only the pooled last layer `[batch, dim]`.

        What the loss sees and nothing more, so DDP never waits for gradients of outputs the
        loss ignores (BERT's pooler output).
        """

        def __init__(self, encoder: nn.Module, pooling: str) -> None:
            super().__init__()
            self.encoder = encoder
            self.pooling = pooling

        def forward(self, inputs_embeds: Any, attention_mask: Any, **extra: Any) -> Any:
            out = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **extra)
            return pool(out.last_hidden_state, attention_mask, self.pooling)

    PooledEncoder.__qualname__ = PooledEncoder.__name__
    return PooledEncoder


def pooled_encoder(encoder: Any, pooling: str) -> Any:
    """Wrap an HF encoder as a module returning the pooled sentence vectors (see class)."""
    return _pooled_encoder_class()(encoder, pooling)


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    """True if `flag` is true in any process (a collective: every process must call it)."""
    import torch

    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="max").item() > 0)


def mean_over_processes(accelerator: Accelerator, values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the processes (a collective; same keys in every process)."""
    import torch

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    mean = accelerator.reduce(t, reduction="mean").tolist()
    return {k: mean[keys.index(k)] for k in values}
