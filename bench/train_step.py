"""Training step cost of every method relative to plain contrastive fine-tuning.

Same model, batch size, sequence cap and machine, in one run: contrastive (alpha = beta = 1,
the peer), RS-RP, RS-DA (on the fly, p = 1), FGSM, PGD-3, DANN (domain + language heads) and
hybrid batches (alpha = beta = 0.5). Methods are timed round-robin, one step of each in turn, and
the median step time is reported, so drift in machine load hits every method alike. Goals:
<= 1.10x for DANN and hybrid batches, <= (k + 1.2)x for PGD-k (FGSM: k = 1). Then samples/s
of contrastive training with nothing frozen, the embedding matrix frozen, and embeddings + the
lower half of the layers frozen.

Run: python bench/train_step.py [--quick] [--model default] [--steps 3] [--rounds 3]
     [--batch-size 32] [--max-length 64] [--device cpu]
`--quick` uses the tiny test encoder (tests/conftest.py's build_tiny_encoder).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

METHODS: dict[str, list[str]] = {
    "contrastive": [],
    "rs_rp": ["robust.rs_rp.enabled=true", "robust.rs_rp.sigma=0.01"],
    "rs_da": ["robust.rs_da.enabled=true", "robust.rs_da.p=1.0"],
    "fgsm": ["robust.adversarial.enabled=true", "robust.adversarial.method=fgsm"],
    "pgd3": [
        "robust.adversarial.enabled=true",
        "robust.adversarial.method=pgd",
        "robust.adversarial.steps=3",
    ],
    "dann": ["dann.enabled=true", "dann.target=both"],
    "hybrid": ["batches.alpha=0.5", "batches.beta=0.5"],
}
GOALS = {"dann": 1.10, "hybrid": 1.10, "fgsm": 1 + 1.2, "pgd3": 3 + 1.2}
FREEZING: dict[str, list[str]] = {
    "nothing frozen": ["model.freeze_embeddings=false"],
    "embeddings frozen": ["model.freeze_embeddings=true"],
    "embeddings + lower half frozen": ["model.freeze_embeddings=true", "model.freeze_layers=HALF"],
}


def build(model: str, sets: list[str], args: argparse.Namespace) -> object:
    from xrdiag.core.training.config import load_config
    from xrdiag.core.training.step import StepModel

    common = [
        f"model.name={model}",
        f"model.max_length={args.max_length}",
        f"batches.batch_size={args.batch_size}",
        "optim.max_steps=1000",
        "optim.warmup_steps=0",
        f"run.device={args.device}",
        "protocol.dev_max_per_domain=2",
    ]
    return StepModel(load_config(None, common + sets))


def round_robin(models: dict[str, object], steps: int, rounds: int) -> dict[str, list[float]]:
    """Per-step wall times, one step of each method in turn (steps x rounds per method).

    Interleaving single steps spreads any drift in machine load evenly over the methods;
    methods sharing a sampler seed and settings see the same batch at the same step.
    """
    times: dict[str, list[float]] = {name: [] for name in models}
    for m in models.values():
        m.optimiser_step(0)  # type: ignore[attr-defined]  # warm-up (allocator, kernels)
    for i in range(1, 1 + steps * rounds):
        for name, m in models.items():
            t = time.perf_counter()
            m.optimiser_step(i)  # type: ignore[attr-defined]
            times[name].append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny encoder, few steps")
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=3, help="steps per method per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-freezing", action="store_true")
    args = parser.parse_args()
    import torch

    model = args.model
    if args.quick:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from conftest import build_tiny_encoder

        model = str(build_tiny_encoder(Path(tempfile.mkdtemp(prefix="xrdiag-tiny-"))))
        args.steps, args.rounds = min(args.steps, 2), min(args.rounds, 2)
    print(
        f"model={args.model if not args.quick else 'tiny'} batch={args.batch_size} pairs "
        f"max_length={args.max_length} device={args.device} torch_threads="
        f"{torch.get_num_threads()} steps={args.steps}x{args.rounds} rounds"
    )
    models = {name: build(model, sets, args) for name, sets in METHODS.items()}
    times = round_robin(models, args.steps, args.rounds)
    base = statistics.median(times["contrastive"])
    print(f"{'method':<14}{'median step s':>15}{'ratio':>8}  goal")
    for name, t in times.items():
        mean = statistics.median(t)
        goal = GOALS.get(name)
        verdict = (
            "" if goal is None else f"<= {goal:.2f}x {'ok' if mean / base <= goal else 'MISSED'}"
        )
        print(f"{name:<14}{mean:>15.4f}{mean / base:>7.2f}x  {verdict}")
    if args.skip_freezing:
        return
    del models
    layers = None
    freeze = {}
    for label, sets in FREEZING.items():
        if layers is None:
            m = build(model, sets, args)
            layers = m.n_layers  # type: ignore[attr-defined]
            freeze[label] = m
            continue
        freeze[label] = build(model, [s.replace("HALF", str(layers // 2)) for s in sets], args)
    ftimes = round_robin(freeze, args.steps, args.rounds)
    base = statistics.median(ftimes["nothing frozen"])
    print(f"{'contrastive training':<32}{'pairs/s':>10}{'speed-up':>10}{'trainable':>12}")
    for label, t in ftimes.items():
        mean = statistics.median(t)
        trainable = freeze[label].trainable_params  # type: ignore[attr-defined]
        print(f"{label:<32}{args.batch_size / mean:>10.1f}{base / mean:>9.2f}x{trainable:>12,}")


if __name__ == "__main__":
    main()
