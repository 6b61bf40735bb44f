"""Encoding shared by the processes of `accelerate launch`: each encodes a share of the rows,
the main process gathers them back into corpus order and goes on alone.

`accelerate launch --multi_gpu --num_processes N -m xrdiag eval …` runs the command in N
processes (torchrun; NCCL between GPUs, gloo on the CPU). Encoding is the expensive step and
splits by rows; the analyses are cheap next to it and run once, on the main process, which
alone reads and writes the cache and the output directory. A worker writes nothing: it
encodes its share, hands it over and waits for the main process to finish, then exits with the
main process's status (0 once the outputs are written), so no process leaves the group early.

The share is strided, rows r, r + N, r + 2N, … for process r: the corpus is grouped by language
and domain and token counts differ by script, so contiguous blocks would give one process the
long sentences; a stride gives each the same mix (each still sorts its own share by length into
batches, core/encoding/encoder.py). A row's embedding depends on neither the process nor its
batch neighbours (to float rounding), so the cache key holds no process count: a shared run
and a single-process run serve each other's caches.

Everything the processes exchange goes through a separate gloo group with a long timeout: a
worker waits there while the main process runs the analyses, which can take longer than the
default group's collective timeout (10 minutes for NCCL), and pickled arrays stay off the GPU.

Failure paths. Flags, files and the model are read by every process alike, so bad input fails
in all of them before they exchange anything, and each exits 2 (the command line prints the
line in the main process only). Once the shares are handed over, the main process sends how it
ended to the waiting workers even when it fails (`close`). A process that dies is the launcher's
to handle: torchrun stops the others.

Nothing here is imported in a plain run: `launched()` reads the environment only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from xrdiag.errors import UserError

if TYPE_CHECKING:
    from xrdiag.core.encoding.encoder import Encoder

# How long a worker waits for the main process's analyses; a dead process ends the wait at once
# (the launcher stops the group), so this bounds only a main process that runs for days.
WAIT_FOR_MAIN = timedelta(days=7)


def world_size() -> int:
    """Processes in this launch (torchrun's WORLD_SIZE); 1 in a plain run."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched() -> bool:
    """True under `accelerate launch` / torchrun with more than one process."""
    return world_size() > 1


def is_worker() -> bool:
    """True in a process of a launch other than the main one (known before any set-up)."""
    return launched() and os.environ.get("RANK", "0") != "0"


def exit_status(exc: BaseException) -> int:
    """The exit code a process ends with after `exc` (UserError 2, Ctrl-C 130, a bug 1)."""
    if isinstance(exc, UserError):
        return UserError.exit_code
    if isinstance(exc, SystemExit):  # sys.exit(None) is success, sys.exit("why") is not
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


class Processes:
    """This process's place among the processes of a launch, and what they exchange.

    Built in every process (a collective: they all build it); `device` is the encoding device
    (`auto`, `cpu`, `cuda`, `mps`): CPU processes talk over gloo, GPU ones get one GPU each.
    """

    def __init__(self, device: str) -> None:
        import torch.distributed as dist
        from accelerate import PartialState

        from xrdiag.core.encoding.encoder import pick_device

        self.device = pick_device(device)
        state = PartialState(cpu=self.device == "cpu")
        if state.num_processes != world_size():
            raise UserError(
                f"--device {device}: cannot share the encoding over {world_size()} processes "
                f"on {self.device} here; use CUDA GPUs or --device cpu"
            )
        self.state = state
        self.rank = int(state.process_index)
        self.world = int(state.num_processes)
        self.is_main = bool(state.is_main_process)
        self._group = dist.new_group(backend="gloo", timeout=WAIT_FOR_MAIN)
        # Past the point where the processes synchronise on the encoding: from here on the
        # workers only wait for the main process's word, which it must send (see close).
        self.handed_over = False
        self.main_status = 0  # in a worker: how the main process ended
        self._closed = False

    def from_main(self, value: Any) -> Any:
        """The main process's `value`, in every process (a collective)."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def share(self, n: int) -> np.ndarray:
        """The rows this process encodes out of `n`: every world-th from its rank."""
        return np.arange(self.rank, n, self.world)

    def encode(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        layers: list[int],
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """In the main process: `encoder.encode(texts, layers)` split over the processes, every
        row back in input order, `[len(layers), len(texts), dim]` float32 (a collective: each
        worker calls `hand_over` meanwhile). `progress` counts the main process's own share."""
        out = np.empty((len(layers), len(texts), encoder.dim), np.float32)
        for i, parts in enumerate(self._gather(encoder, texts, layers, progress)):
            for rank, part in enumerate(parts):
                out[i, rank :: self.world] = part
        return out

    def hand_over(self, encoder: Encoder, texts: Sequence[str], layers: list[int]) -> None:
        """In a worker: encode this process's share and send it to the main process."""
        for _ in self._gather(encoder, texts, layers, None):
            pass

    def _gather(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        layers: list[int],
        progress: Callable[[int, int], None] | None,
    ) -> Iterator[list[np.ndarray]]:
        """Encode this process's share; yield each layer's shares by rank (empty in a worker).

        The frozen-prefix cache is bypassed: its entries are keyed by the rows encoded, and a
        share's rows are no other run's (so a worker writes no cache entry either); the full
        forward computes the same states.
        """
        import torch.distributed as dist

        if encoder.device == "cuda":  # this process's own GPU, as Accelerate assigned it
            encoder.device = str(self.state.device)
        encoder.model  # noqa: B018 - every process loads the model, so a bad one fails in all
        frozen, encoder.frozen_prefix = encoder.frozen_prefix, 0
        try:
            mine = encoder.encode([texts[i] for i in self.share(len(texts))], layers,
                                  progress=progress)  # fmt: skip
        finally:
            encoder.frozen_prefix = frozen
        for i in range(len(layers)):  # one layer at a time: a smaller peak than all at once
            parts: list[Any] | None = [None] * self.world if self.is_main else None
            dist.gather_object(mine[i], parts, dst=0, group=self._group)
            yield parts or []
        self.handed_over = True

    def continue_on_main(self) -> bool:
        """True in the main process, which goes on to analyse and write; a worker's part is done
        (it waits for the main process in `close`)."""
        self.handed_over = True
        return self.is_main

    def close(self, status: int) -> None:
        """The end of the command in this process: the main one sends `status` to the workers
        waiting for it; a worker that handed its share over receives the main's into
        `main_status`. Then the process group goes."""
        import torch.distributed as dist

        if self._closed:
            return
        self._closed = True
        if self.handed_over:
            self.main_status = int(self.from_main(status))
        if dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def sharing_processes(device: str) -> Iterator[Processes | None]:
    """The processes of this launch for the duration of a command, or None in a plain run.

    On the way out the main process tells the workers how it ended, failure included, so none
    waits for a process that has stopped; a worker's `main_status` is then the main's status.
    """
    if not launched():
        yield None
        return
    processes = Processes(device)
    try:
        yield processes
    except BaseException as exc:
        processes.close(exit_status(exc))
        raise
    processes.close(0)
