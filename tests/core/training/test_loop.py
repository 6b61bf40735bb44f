"""The training loop on the tiny encoder: it learns, resumes exactly, survives signals and kills."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xrdiag.cli import main
from xrdiag.core.corpus import load_corpus
from xrdiag.core.events import read_events
from xrdiag.core.layout.dirs import RunDir
from xrdiag.core.training.config import load_config
from xrdiag.core.training.loop import read_run_config, train
from xrdiag.core.training.pairs import dev_subset, labelled_pairs, translation_pairs
from xrdiag.core.training.step import lr_factor
from xrdiag.errors import UserError


def base(tiny: Path) -> list[str]:
    """Small and fast: short sentences, small batches, a capped corpus and dev subset."""
    return [
        f"model.name={tiny}",
        "model.max_length=32",
        "model.freeze_embeddings=false",
        "batches.batch_size=8",
        "corpus.max_per_domain=60",
        "protocol.dev_max_per_domain=8",
        "optim.lr=1e-3",
        "optim.warmup_steps=0",
        "run.eval_every=1000",
    ]


def weights(ckpt: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(ckpt / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], rtol=0, atol=1e-6, err_msg=key)


def cli(argv: list[str]) -> int:
    try:
        main(["train", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_lr_factor(schedule: str) -> None:
    warmup, total = 4, 20
    for step in range(total):
        if step < warmup:
            want = (step + 1) / (warmup + 1)
        else:
            t = (step - warmup) / (total - warmup)
            want = {"linear": 1 - t, "cosine": 0.5 * (1 + math.cos(math.pi * t)), "constant": 1}[
                schedule
            ]
        assert lr_factor(step, warmup, total, schedule) == pytest.approx(want, abs=1e-12)


def test_pairs_follow_the_protocol() -> None:
    corpus = load_corpus("default")
    pairs = translation_pairs(corpus, ["en", "fr", "zh"], ["medical"], "en", max_per_domain=100)
    assert set(pairs["src_lang"]) == {"en"} and set(pairs["tgt_lang"]) == {"fr", "zh"}
    assert set(pairs["domain"]) == {"medical"}
    train_ids = set(corpus.frame.filter(pl.col("split") == "train")["id"])
    assert set(pairs["id"]) <= train_ids
    # each pair is a real translation pair of the corpus
    f = corpus.frame
    for row in pairs.head(20).iter_rows(named=True):
        src = f.filter((pl.col("id") == row["id"]) & (pl.col("lang") == "en"))["text"].item()
        tgt = f.filter((pl.col("id") == row["id"]) & (pl.col("lang") == row["tgt_lang"]))
        assert row["src_text"] == src and row["tgt_text"] == tgt["text"].item()
    dev = dev_subset(corpus, 5)
    assert set(dev["lang"]) == set(corpus.langs) and set(dev["domain"]) == set(corpus.domains)
    assert set(dev["id"]) <= set(f.filter(pl.col("split") == "dev")["id"])
    assert dev.group_by("domain").agg(pl.col("id").n_unique())["id"].max() <= 5
    with pytest.raises(UserError, match="besides the pivot"):
        translation_pairs(corpus, ["en"], ["medical"], "en")


def test_labelled_pairs(tmp_path: Path) -> None:
    good = tmp_path / "p.csv"
    good.write_text("sentence1,sentence2,label,lang1,lang2\nA cat.,Un chat.,1,en,fr\nA,B,0,en,en\n")
    frame = labelled_pairs(good, 2)
    assert frame["label"].to_list() == [1, 0] and frame["tgt_lang"].to_list() == ["fr", "en"]
    bad = tmp_path / "b.csv"
    bad.write_text("sentence1,sentence2,label,lang1,lang2\nA,B,1,en,fr\nA,B,7,en,fr\n")
    with pytest.raises(UserError, match=r"b.csv, row 3, column 'label'"):
        labelled_pairs(bad, 2)
    (tmp_path / "m.jsonl").write_text('{"sentence1": "a", "label": 1}\n')
    with pytest.raises(UserError, match="missing column"):
        labelled_pairs(tmp_path / "m.jsonl", 2)


# --------------------------------------------------------------------------- training


def test_thirty_steps_lower_loss_and_raise_recall(tiny_model_dir: Path, tmp_path: Path) -> None:
    sets = base(tiny_model_dir) + [
        "optim.max_steps=30", "batches.batch_size=16", "batches.alpha=0", "batches.beta=0",
        "protocol.dev_max_per_domain=20", "run.checkpoint_every=100", "optim.lr=3e-3",
    ]  # fmt: skip
    result = train(load_config(None, sets), tmp_path / "run")
    assert result.status == "finished" and result.step == 30
    events = read_events(tmp_path / "run" / "events.jsonl")
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 31))
    losses = [e["loss"] for e in steps]
    # batches differ (in-batch negatives), so compare means over ten steps; chance is ln 16
    assert np.mean(losses[:10]) == pytest.approx(math.log(16), abs=0.25)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.15
    evals = {e["step"]: e for e in events if e["kind"] == "eval"}
    assert sorted(evals) == [0, 30]
    before, after = evals[0]["recall@1"]["mean"], evals[30]["recall@1"]["mean"]
    assert after > before + 0.015
    # the step event carries what the dashboard shows
    last = steps[-1]
    for key in ("lr", "grad_norm", "step_time", "samples_per_s", "composition", "components"):
        assert key in last
    assert last["components"]["contrastive"] == pytest.approx(last["loss"])
    assert last["composition"][0]["size"] == 16
    # the eval event: retrieval per pair and domain, CKA, probes
    ev = evals[30]
    assert {r["domain"] for r in ev["retrieval"]} >= {"all", "medical", "news"}
    assert 0 <= ev["cka"]["mean"] <= 1 and 0 <= ev["lang_probe"]["acc"] <= 1
    assert "domain_probe" in ev
    # the final checkpoint is a loadable model directory
    assert (result.checkpoint / "model.safetensors").is_file()
    assert (result.checkpoint / "tokenizer.json").is_file()


ALL_METHODS = [
    "robust.rs_rp.enabled=true", "robust.rs_rp.sigma=0.05",
    "robust.rs_da.enabled=true", "robust.rs_da.p=0.5",
    "robust.adversarial.enabled=true", "robust.adversarial.method=pgd",
    "robust.adversarial.steps=2",
    "dann.enabled=true", "dann.target=both", "batches.alpha=0.5", "batches.beta=0.5",
    "optim.grad_accum=2", "optim.warmup_steps=2", "optim.max_steps=6",
    "run.checkpoint_every=4", "run.keep_last=5",
]  # fmt: skip


def test_resume_equals_uninterrupted(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Every RNG consumer on (dropout, RS-RP noise, RS-DA, sampler, DANN, accumulation)."""
    cfg = load_config(None, base(tiny_model_dir) + ALL_METHODS)
    full = train(cfg, tmp_path / "full")
    assert full.status == "finished"
    part = train(cfg, tmp_path / "part", stop_after=3)
    assert part.status == "stopped" and part.step == 3
    resumed = train(read_run_config(RunDir(tmp_path / "part")), tmp_path / "part", resume=True)
    assert resumed.status == "finished" and resumed.step == 6
    assert_same_weights(full.checkpoint, resumed.checkpoint)
    # the intermediate checkpoints agree too, and the step losses after the resume
    assert_same_weights(
        full.checkpoint.parent / "step-000004", resumed.checkpoint.parent / "step-000004"
    )
    loss = {
        run: {e["step"]: e["loss"] for e in read_events(tmp_path / run / "events.jsonl", "step")}
        for run in ("full", "part")
    }
    for step in (4, 5, 6):
        assert loss["part"][step] == pytest.approx(loss["full"][step], abs=1e-6)
    step_event = read_events(tmp_path / "full" / "events.jsonl", "step")[-1]
    assert {"adversarial", "dann", "disc_domain_acc", "disc_language_acc"} <= set(
        step_event["components"]
    )
    assert step_event["lambda"] > 0 and len(step_event["composition"]) == 2


def test_resume_refuses_another_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, base(tiny_model_dir) + ["optim.max_steps=2"])
    train(cfg, tmp_path / "r", stop_after=1)
    other = load_config(None, base(tiny_model_dir) + ["optim.max_steps=3"])
    with pytest.raises(UserError, match="config differs"):
        train(other, tmp_path / "r", resume=True)


def test_freezing(tiny_model_dir: Path, tmp_path: Path) -> None:
    sets = base(tiny_model_dir) + [
        "model.freeze_embeddings=true", "model.freeze_layers=1", "optim.max_steps=2",
    ]  # fmt: skip
    result = train(load_config(None, sets), tmp_path / "f")
    before, after = weights(tiny_model_dir), weights(result.checkpoint)
    for key in before:
        same = np.array_equal(before[key], after[key])
        if "word_embeddings" in key or ".layer.0." in key:
            assert same, key
        elif ".layer.1." in key and key.endswith("weight"):
            assert not same, key
    with pytest.raises(UserError, match="model.freeze_layers 5"):
        train(load_config(None, base(tiny_model_dir) + ["model.freeze_layers=5"]), tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_nonfinite_loss_stops_and_keeps_last_good(tiny_model_dir: Path, tmp_path: Path) -> None:
    sets = base(tiny_model_dir) + [
        "robust.rs_rp.enabled=true", "robust.rs_rp.sigma=0.0", "optim.max_steps=5",
        "run.checkpoint_every=2",
    ]  # fmt: skip
    run = RunDir(tmp_path / "n")
    train(load_config(None, sets), run.root, stop_after=2)
    # the user turns the noise up to overflow and resumes: inf embeddings -> NaN loss
    text = run.run_file.read_text().replace("sigma = 0.0", "sigma = 1e+38")
    run.run_file.write_text(text)
    result = train(read_run_config(run), run.root, resume=True)
    assert result.status == "nonfinite" and result.step == 2
    assert [s for s, _ in run.checkpoints()] == [2]
    last = read_events(run.events_file)[-1]
    assert last["kind"] == "nonfinite" and last["step"] == 3 and last["loss"] == "nan"
    assert last["checkpoint"].endswith("step-000002")


def test_pair_classification(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [
        {
            "sentence1": f"The cat sat {i}.",
            "sentence2": s2,
            "label": lab,
            "lang1": "en",
            "lang2": l2,
        }
        for i in range(12)
        for s2, lab, l2 in (("Le chat est assis.", 1, "fr"), ("Il pleut.", 0, "fr"))
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = base(tiny_model_dir) + [
        "objective.kind=pair_classification", f"objective.pairs_file={path}",
        "optim.max_steps=3", "batches.alpha=0", "batches.beta=0",
    ]  # fmt: skip
    result = train(load_config(None, sets), tmp_path / "pc")
    assert result.status == "finished"
    step = read_events(tmp_path / "pc" / "events.jsonl", "step")[-1]
    assert 0 <= step["components"]["pair_acc"] <= 1 and np.isfinite(step["loss"])


# --------------------------------------------------------------------------- the command


def write_config(path: Path, sets: list[str]) -> Path:
    from xrdiag.core.training.config import config_to_toml

    path.write_text(config_to_toml(load_config(None, sets)))
    return path


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "xrdiag", "train", *argv]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_step(events: Path, step: int, proc: subprocess.Popen[bytes], timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists():
            steps = [e["step"] for e in read_events(events, "step")]
            if steps and steps[-1] >= step:
                return steps[-1]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run never reached the step")


def test_sigkill_between_checkpoints_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    sets = base(tiny_model_dir) + ["optim.max_steps=14", "run.checkpoint_every=4"]
    config = write_config(tmp_path / "c.toml", sets)
    out = tmp_path / "killed"
    proc = spawn(["--config", str(config), "--out", str(out)])
    wait_for_step(out / "events.jsonl", 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = RunDir(out)
    ckpt = run.latest_checkpoint()
    seen = max(e["step"] for e in read_events(run.events_file, "step"))  # still readable
    assert ckpt is not None and ckpt[0] < seen < 14  # killed between checkpoints
    assert cli(["--out", str(out), "--resume"]) == 0
    full = train(load_config(config), tmp_path / "full")
    assert_same_weights(full.checkpoint, run.latest_checkpoint()[1])  # type: ignore[index]
    assert read_events(run.events_file)[-1]["kind"] == "end"


def test_sigint_checkpoints_and_exits_zero(tiny_model_dir: Path, tmp_path: Path) -> None:
    sets = base(tiny_model_dir) + ["optim.max_steps=100000", "run.checkpoint_every=100000"]
    config = write_config(tmp_path / "c.toml", sets)
    out = tmp_path / "int"
    proc = spawn(["--config", str(config), "--out", str(out)])
    wait_for_step(out / "events.jsonl", 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    events = read_events(out / "events.jsonl")
    assert events[-1]["kind"] == "interrupted" and events[-1]["signal"] == "SIGINT"
    last_step = max(e["step"] for e in events if e["kind"] == "step")
    assert RunDir(out).latest_checkpoint()[0] == last_step  # type: ignore[index]


@pytest.mark.parametrize(
    ("content", "sets", "message"),
    [
        ("[optim]\nlr_max = 1\n", [], "unknown key 'optim.lr_max'"),
        ('[batches]\nbatch_size = "big"\n', [], "batches.batch_size"),
        ("", ["robust.rs_rp.sigma=-1"], "robust.rs_rp.sigma"),
        ("", ["protocol.train_domains=medical,cooking"], "cooking"),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    sets: list[str],
    message: str,
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n' + content)
    out = tmp_path / "out"
    argv = ["--config", str(config), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_out_must_be_new_without_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert cli(["--out", str(tmp_path / "used"), "--set", f"model.name={tiny_model_dir}"]) == 2
    assert cli(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert not (tmp_path / "none").exists()


def test_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--print-config"]) == 0
    assert "[optim]" in capsys.readouterr().out


# --------------------------------------------------------------------------- Accelerate


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_accelerate_launch_two_cpu_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`accelerate launch` with 2 processes (torchrun, gloo on the CPU): one run directory,
    written by the main process only, with one event stream and a loadable checkpoint.

    `--multi_gpu` is the flag that makes Accelerate start several local processes; with
    `--cpu` it starts one unless given an MPI hostfile. `run.device = "cpu"` puts them on the
    CPU (gloo), as on a GPU-less machine.
    """
    from transformers import AutoModel

    sets = base(tiny_model_dir) + [
        "optim.max_steps=4", "run.checkpoint_every=2", "run.device=cpu",
        "robust.adversarial.enabled=true", "robust.adversarial.method=pgd",
        "robust.adversarial.steps=2", "dann.enabled=true",
    ]  # fmt: skip
    config = write_config(tmp_path / "c.toml", sets)
    out = tmp_path / "ddp"
    launcher = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
        str(free_port()), "-m", "xrdiag", "train", "--config", str(config), "--out", str(out),
        "--set", "method.dann.lambda_max=0.5",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("finished at step 4") == 1, done.stdout  # the main process reports
    events = read_events(out / "events.jsonl")
    starts = [e for e in events if e["kind"] == "start"]
    assert len(starts) == 1 and starts[0]["processes"] == 2
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]  # no step written twice
    # each optimiser step trained on two batches, one per process
    assert all(len(e["composition"]) == 2 for e in steps)
    assert {"adversarial", "dann"} <= set(steps[-1]["components"])
    assert steps[-1]["lambda"] > 0.4  # the --set method. alias reached the run
    assert [e["kind"] for e in events].count("end") == 1 and events[-1]["kind"] == "end"
    assert [s for s, _ in RunDir(out).checkpoints()] == [2, 4]
    assert read_run_config(RunDir(out)).dann.lambda_max == 0.5
    ckpt = RunDir(out).latest_checkpoint()[1]  # type: ignore[index]
    model = AutoModel.from_pretrained(ckpt)
    assert model.config.hidden_size == 32
    before, after = weights(tiny_model_dir), weights(ckpt)
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_bf16_mixed_precision_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    sets = base(tiny_model_dir) + [
        "optim.max_steps=2", "run.device=cpu", "run.mixed_precision=bf16",
        "robust.adversarial.enabled=true",
    ]  # fmt: skip
    result = train(load_config(None, sets), tmp_path / "bf16")
    assert result.status == "finished"
    events = read_events(tmp_path / "bf16" / "events.jsonl")
    assert events[0]["mixed_precision"] == "bf16" and events[0]["processes"] == 1
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == 2 and all(np.isfinite(e["loss"]) for e in steps)
    # a later fp32 run in the same process gets its own Accelerator settings
    again = train(load_config(None, base(tiny_model_dir) + ["optim.max_steps=1"]), tmp_path / "f")
    assert read_events(tmp_path / "f" / "events.jsonl")[0]["mixed_precision"] == "no"
    assert again.status == "finished"


def test_a_signal_delivered_twice_is_one_stop_request() -> None:
    """Ctrl-C under `accelerate launch` reaches a worker twice at once; a later one aborts."""
    from xrdiag.core.training.loop import _StopFlag

    flag = _StopFlag()
    flag(signal.SIGINT, None)
    flag(signal.SIGINT, None)  # the launcher's copy, milliseconds later: still a clean stop
    assert flag.signal == "SIGINT"
    flag._at -= 2 * _StopFlag.DUPLICATE_S  # the user presses Ctrl-C again, later
    with pytest.raises(KeyboardInterrupt):
        flag(signal.SIGINT, None)
