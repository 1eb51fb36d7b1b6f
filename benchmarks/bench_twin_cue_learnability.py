"""Is each twin-cue cue learnable on its own? A fixed 3-conv CNN trained on one variant.

The CNN (conv 32-64-64, 3×3, ReLU, max-pool after the first two, global average pool, linear)
is trained with Adam (lr 1e-3, batch 64) on the ``train`` split of each variant and evaluated
on the same variant's ``test`` split after every epoch. ``a-only`` measures the shape cue alone,
``b-only`` the grating cue alone. The design target: both ≥ 95 % after ~10 epochs on 6,000.
``--design latent`` measures the cues of the latent design (notebook 01's default).

Run (the machine is shared: one thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_twin_cue_learnability.py
Options: --variants a-only b-only, --epochs 10, --seeds 0, --n-train 6000, --n-test 1000,
--design independent.
Prints a table and writes benchmarks/results/twin_cue_learnability.csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from advlens.data import twin_cue
from advlens.data.twin_cue import DESIGNS, design_version


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10))


def run(variant: str, seed: int, epochs: int, n_train: int, n_test: int,
        design: str = "independent") -> list[dict]:
    train = twin_cue("train", variant, n=n_train, design=design)
    test = twin_cue("test", variant, n=n_test, design=design)
    torch.manual_seed(seed)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    rows, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(train), generator=order)
        for i in range(0, len(train), 64):
            batch = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(train.images[batch]), train.labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(test.images).argmax(1) == test.labels).float().mean())
        rows.append({"variant": variant, "seed": seed, "epoch": epoch, "test_acc": acc,
                     "wall_s": time.perf_counter() - start, "generator": design_version(design)})
        print(f"{variant:7s} seed {seed} epoch {epoch:2d}  test acc {acc:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["a-only", "b-only"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--design", choices=DESIGNS, default="independent")
    args = parser.parse_args()
    rows = [r for v in args.variants for s in args.seeds
            for r in run(v, s, args.epochs, args.n_train, args.n_test, args.design)]
    table = pd.DataFrame(rows)
    final = table[table.epoch == args.epochs][["variant", "seed", "test_acc", "wall_s"]]
    print(final.to_string(index=False))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    table.to_csv(out / "twin_cue_learnability.csv", index=False)


if __name__ == "__main__":
    main()
