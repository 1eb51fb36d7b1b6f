"""How many epochs the laptop zoo's digits models need: each laptop-zoo digits config trained
at multiples of its preset epochs (``presets.DIGITS_EPOCHS``), with its final training loss and
accuracy and its clean (and L2-PGD) test accuracy, through the zoo's own training and evaluation.

A model stopped before its training loss flattens is measured for its training budget as much as
for its architecture or regime. The thirty-second session's table (benchmarks/README.md) ran the
epochs of before then, a quarter of today's, at ×1, ×2, ×4 and ×8 of those.

Run (two worker processes of one thread each; ~20 minutes for every config at the first line's
factors, ~12 for the second's 20 models):
    .venv/bin/python benchmarks/bench_epochs.py --factors 0.25 0.5 1
    .venv/bin/python benchmarks/bench_epochs.py --factors 2 --tag _x8 --only NAME ...
Options: --only cnn-xs/std/s0 vgg-xs/at1/s0 ... (zoo names), --factors (of the preset epochs;
whole epochs each), --workers, --tag. Writes benchmarks/results/epochs{tag}.csv.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import pandas as pd
import torch

from advlens.zoo.config import ModelConfig
from advlens.zoo.datasets import dataset_for
from advlens.zoo.evaluation import RobustEval, evaluate
from advlens.zoo.specs import spec
from advlens.zoo.training import train
from bench_attacks import RESULTS


def scaled_epochs(config: ModelConfig, factor: float) -> int:
    """``factor`` × ``config``'s epochs, refused unless that is a whole number of at least 1."""
    epochs = config.epochs * factor
    if epochs < 1 or epochs != round(epochs):
        raise ValueError(f"{factor} × {config.epochs} epochs of {config.name} is {epochs:g}, "
                         "not a whole number of epochs >= 1; choose other --factors.")
    return round(epochs)


def run_one(job: tuple[ModelConfig, float]) -> dict[str, object]:
    """Train ``config`` at ``factor`` × its epochs; its final training record and test metrics."""
    config, factor = job
    torch.set_num_threads(1)
    longer = config.replace(epochs=scaled_epochs(config, factor))
    start = time.process_time()
    result = train(longer, dataset_for(longer, "train"), progress=False)
    seconds = time.process_time() - start
    metrics = evaluate(result.model, dataset_for(longer, "test"), RobustEval())
    last = result.history[-1]
    return {"name": config.name, "regime": config.regime, "eps": config.eps,
            "preset_epochs": config.epochs, "factor": factor, "epochs": longer.epochs,
            "train_loss": last["loss"], "train_acc": last["train_acc"],
            "test_acc": metrics["test_acc"], "robust_acc": metrics["robust_acc"],
            "cpu_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="zoo names (default: all digits)")
    parser.add_argument("--factors", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    configs = [c for c in spec("laptop") if c.dataset == "digits"]
    if args.only:
        unknown = set(args.only) - {c.name for c in configs}
        if unknown:
            parser.error(f"not laptop-zoo digits models: {sorted(unknown)}")
        configs = [c for c in configs if c.name in args.only]
    for config in configs:  # refused before anything trains
        for factor in args.factors:
            scaled_epochs(config, factor)
    # the longest jobs first, so the two workers finish together
    jobs = sorted(((c, f) for c in configs for f in args.factors),
                  key=lambda job: -job[0].epochs * job[1] * (4 if job[0].regime == "l2-at" else 1))
    rows = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            rows.append(row)
            print(f"{row['name']:24s} ×{row['factor']:g} {row['epochs']:4d} ep  loss "
                  f"{row['train_loss']:.4f}  train {row['train_acc']:.3f}  test "
                  f"{row['test_acc']:.4f}  robust {row['robust_acc']:.3f}  "
                  f"{row['cpu_s']:.0f} s", flush=True)
    table = pd.DataFrame(rows).sort_values(["name", "factor"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"epochs{args.tag}.csv"
    table.to_csv(path, index=False)
    wide = table.pivot_table(index="name", columns="factor", values=["train_loss", "test_acc"],
                             sort=False)
    print(wide.round(4).to_string())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
