"""Benchmark Linsley et al.'s tolerance search and the harmonizer's training cost.

Part 1: images/s of ``advlens.attacks.minimal_eps_pgd`` on a batch (one interval per image,
  every round one batch of the images still searching) vs the same search one image at a time
  (the paper's batch size 1), on the same model and correctly classified images; rounds
  interleaved so that load from other processes hits both alike; the eps of the two must agree.
Part 2: seconds per training epoch of a zoo model trained plain vs harmonized (cross-entropy +
  the harmonizer term, double backpropagation), same config otherwise.

Run (the machine is shared: one thread):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tolerance.py [--quick]
Prints tables and writes CSVs to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from _common import train_digits_cnn
from advlens.attacks import minimal_eps_pgd
from advlens.data import digits
from advlens.features import predict
from advlens.zoo import ModelConfig
from advlens.zoo.datasets import dataset_for
from advlens.zoo.specs import HARMONIZED
from advlens.zoo.training import train

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def part_search(n_images: int, rounds: int) -> pd.DataFrame:
    train_set, test = digits("train"), digits("test")
    model = train_digits_cnn(train_set.images, train_set.labels, epochs=8)
    right = predict(model, test.images).argmax(1) == test.labels
    x, y = test.images[right][:n_images], test.labels[right][:n_images]
    times: dict[str, list[float]] = {"batched": [], "per-image": []}
    eps: dict[str, torch.Tensor] = {}
    for _ in range(rounds):
        start = time.perf_counter()
        eps["batched"] = minimal_eps_pgd(model, x, y, progress=False).eps
        times["batched"].append(time.perf_counter() - start)
        start = time.perf_counter()
        eps["per-image"] = torch.cat([minimal_eps_pgd(model, x[i:i + 1], y[i:i + 1],
                                                      progress=False).eps
                                      for i in range(len(x))])
        times["per-image"].append(time.perf_counter() - start)
    same = bool(torch.equal(eps["batched"], eps["per-image"]))
    rows = [{"method": k, "images": len(x), "seconds": statistics.median(v),
             "images_per_s": len(x) / statistics.median(v), "same_eps": same}
            for k, v in times.items()]
    table = pd.DataFrame(rows)
    table["speedup"] = table["images_per_s"] / table.loc[1, "images_per_s"]
    return table


def part_training(epochs: int) -> pd.DataFrame:
    rows = []
    for dataset, n_train, arch in (("digits", None, "cnn-s"), ("twin-cue", 2000, "cnn-s")):
        extra = {"variant": "both"} if dataset == "twin-cue" else {}
        plain = ModelConfig(arch, dataset=dataset, epochs=epochs, n_train=n_train, **extra)
        harm = plain.replace(**HARMONIZED[dataset])
        data = dataset_for(plain, "train")
        for config in (plain, harm):
            result = train(config, data, progress=False)
            per_epoch = statistics.median(h["seconds"] for h in result.history)
            rows.append({"dataset": dataset, "arch": arch, "regime": config.regime,
                         "images": len(data), "s_per_epoch": per_epoch})
    table = pd.DataFrame(rows)
    table["cost_vs_plain"] = table["s_per_epoch"] / table.groupby("dataset")[
        "s_per_epoch"].transform("first")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer images, rounds, epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    search = part_search(32 if args.quick else 128, 1 if args.quick else 3)
    print("Part 1: tolerance search, batched vs one image at a time\n",
          search.round(3).to_string(index=False))
    search.to_csv(RESULTS / "tolerance_search.csv", index=False)
    cost = part_training(1 if args.quick else 2)
    print("\nPart 2: training cost, plain vs harmonized\n", cost.round(3).to_string(index=False))
    cost.to_csv(RESULTS / "harmonizer_cost.csv", index=False)


if __name__ == "__main__":
    main()
