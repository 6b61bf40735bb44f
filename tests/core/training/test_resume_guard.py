"""One writer per run, and a damaged checkpoint on --resume: one line that says what to do."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.layout.lock import RunLock
from xrdiag.core.training.config import load_config
from xrdiag.core.training.loop import read_run_config, train
from xrdiag.errors import UserError


def settings(tiny: Path) -> list[str]:
    return [
        f"model.name={tiny}", "model.max_length=24", "batches.batch_size=8",
        "corpus.max_per_domain=20", "protocol.dev_max_per_domain=5", "optim.warmup_steps=0",
        "optim.max_steps=6", "run.checkpoint_every=2", "run.keep_last=3", "run.eval_every=1000",
        "run.eval_at_start=false", "run.eval_at_end=false", "run.device=cpu",
    ]  # fmt: skip


@pytest.fixture()
def stopped(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A run stopped at step 4 with complete checkpoints at steps 2 and 4."""
    out = tmp_path / "run"
    result = train(load_config(None, settings(tiny_model_dir)), out, stop_after=4)
    assert result.status == "stopped"
    assert [s for s, _ in RunDir(out).checkpoints()] == [2, 4]
    return out


def test_a_second_writer_is_refused_and_the_lock_is_released(stopped: Path) -> None:
    cfg = read_run_config(RunDir(stopped))
    with RunLock(stopped, command="another writer"), pytest.raises(UserError) as info:
        train(cfg, stopped, resume=True)
    assert "being written by pid" in str(info.value) and "\n" not in str(info.value)
    assert train(cfg, stopped, resume=True).status == "finished"  # released: it resumes
    assert not (stopped / "LOCK").exists()


def test_a_pickle_in_trainer_pt_is_refused_not_run(stopped: Path, tmp_path: Path) -> None:
    planted = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {planted}",))

    latest = RunDir(stopped).latest_checkpoint()
    assert latest is not None
    (latest[1] / "trainer.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UserError) as info:
        train(read_run_config(RunDir(stopped)), stopped, resume=True)
    message = str(info.value)
    assert not planted.exists()
    assert "cannot read the trainer state" in message and "\n" not in message
    assert "previous complete checkpoint is step-000002" in message


def test_truncated_weights_offer_the_previous_checkpoint(stopped: Path) -> None:
    run = RunDir(stopped)
    latest = run.latest_checkpoint()
    assert latest is not None
    weights = latest[1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    with pytest.raises(UserError) as info:
        train(read_run_config(run), stopped, resume=True)
    message = str(info.value)
    assert "\n" not in message and "previous complete checkpoint is step-000002" in message
    # Doing what it says continues the run from step 2.
    latest[1].rename(stopped / "damaged-step-4")
    result = train(read_run_config(run), stopped, resume=True)
    assert result.status == "finished" and result.step == 6


def test_absurd_values_are_bounded() -> None:
    with pytest.raises(UserError, match=r"optim.max_steps: 100000000000000000000 is out of range"):
        load_config(None, ["optim.max_steps=100000000000000000000"])
    with pytest.raises(UserError, match=r"run.seed: -1 is out of range"):
        load_config(None, ["run.seed=-1"])
