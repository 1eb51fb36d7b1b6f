"""Benchmark advlens.inversion.invert against the reference loop (the ``robustness`` library's
attacker, run through advlens.compat) on a small digits CNN.

Part 1 (batch 32, 200 iterations, the same pairs): image-iterations per second of
  raw     = a plain loop of forward + backward (input gradient) through the whole model,
  ours    = advlens.inversion.invert (default: no freeze at bounds),
  ours-fb = the same with freeze_at_bounds=True (the reference code path's behaviour on a
            torch whose clamp has zero gradient at its bounds, as here; not on PyTorch 1.x),
  theirs  = advlens.compat.robustness_invert (AttackerModel, make_adv=True, targeted, eps=1000,
            use_best, custom loss, L2 momentum step),
  each as a fraction of raw, run interleaved (round-robin) so that load from other processes on
  the shared CPU hits all of them alike; plus the mean final relative loss of each (the loss of
  the returned images, recomputed independently).
Part 2: early stopping at a longer budget: iterations saved, and loss relative to the full run.
Part 3: throughput of ours and raw at batch sizes 16..512; the best batch size here.

robustness hard-codes ``.cuda()``; without a GPU this script (not the library) patches
``torch.Tensor.cuda`` to the identity while the reference loop runs.

Run (the machine is shared: one thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_inversion.py
Options: --quick (fewer rounds/settings), --model zoo (use the zoo's cnn-s; trains it if not
cached), --threads N. Prints tables and writes CSVs to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from _common import train_digits_cnn
from advlens import compat
from advlens.data import digits
from advlens.features import accuracy, representation
from advlens.inversion import EarlyStop, draw_pairs, invert

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------------------------- model
def get_model(kind: str, x: torch.Tensor, y: torch.Tensor) -> tuple[nn.Module, str]:
    if kind == "zoo":
        from advlens.zoo import ModelConfig, load

        entry = load(ModelConfig("cnn-s"))
        return entry.model.eval(), f"zoo {entry.name}"
    model = train_digits_cnn(x, y, hidden=64, epochs=12)
    return model, "built-in 2-conv CNN (12 epochs on 1,400 digits)"


# ----------------------------------------------------------------------------------- timing
@contextlib.contextmanager
def cuda_is_identity() -> Iterator[None]:
    """robustness calls .cuda(); on a CPU-only machine make it a no-op (this script only)."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def raw_loop(model: nn.Module, x: torch.Tensor, iterations: int, batch: int = 32) -> None:
    """``iterations`` forward + backward (input gradient) passes over each batch of ``x``."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for start in range(0, len(x), batch):
        xx = x[start:start + batch].clone().requires_grad_(True)
        for _ in range(iterations):
            torch.autograd.grad(model(xx).sum(), xx)
    for p, flag in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(flag)


def relative_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    a = representation(model, images).double()
    b = representation(model, targets).double()
    return ((a - b).norm(dim=1) / b.norm(dim=1)).numpy()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def timed_both(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall-clock and CPU (process) seconds: CPU time is less disturbed by other processes."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


# ------------------------------------------------------------------------------------- parts
def part_compare(model: nn.Module, seeds: torch.Tensor, targets: torch.Tensor, iterations: int,
                 rounds: int) -> pd.DataFrame:
    n = len(seeds)
    methods: dict[str, Callable[[], torch.Tensor | None]] = {
        "raw": lambda: raw_loop(model, seeds, iterations),
        "ours": lambda: invert(model, seeds, targets, iterations=iterations, batch_size=32,
                               progress=False).images,
        "ours-fb": lambda: invert(model, seeds, targets, iterations=iterations, batch_size=32,
                                  freeze_at_bounds=True, progress=False).images,
        "theirs": lambda: compat.robustness_invert(model, seeds, targets, iterations=iterations,
                                                   batch_size=32, progress=False),
    }
    wall: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    images: dict[str, torch.Tensor] = {}
    with cuda_is_identity():
        for _ in range(rounds):
            for name, fn in methods.items():
                w, c, out = timed_both(fn)
                wall[name].append(w)
                cpu[name].append(c)
                if out is not None:
                    images[name] = out
    work = n * iterations

    def rate(ts: list[float]) -> float:
        return work / statistics.median(ts)

    rows = []
    for name in methods:
        loss = relative_loss(model, images[name], targets) if name in images else None
        rows.append({"method": name, "batch": 32, "iterations": iterations, "images": n,
                     "img_it_per_s": rate(wall[name]), "img_it_per_s_best": work / min(wall[name]),
                     "fraction_of_raw": rate(wall[name]) / rate(wall["raw"]),
                     "img_it_per_cpu_s": rate(cpu[name]),
                     "fraction_of_raw_cpu": rate(cpu[name]) / rate(cpu["raw"]),
                     # per round, against the raw loop of the same round: drift cancels
                     "fraction_of_raw_paired": statistics.median(
                         r / t for r, t in zip(cpu["raw"], cpu[name], strict=True)),
                     "mean_final_loss": None if loss is None else float(loss.mean()),
                     "median_final_loss": None if loss is None else float(np.median(loss))})
    return pd.DataFrame(rows)


def part_early_stop(model: nn.Module, seeds: torch.Tensor, targets: torch.Tensor,
                    iterations: int, settings: list[EarlyStop]) -> pd.DataFrame:
    seconds, full = timed(lambda: invert(model, seeds, targets, iterations=iterations,
                                         batch_size=32, progress=False))
    rows = [{"setting": "none", "mean_iterations": float(iterations), "seconds": seconds,
             "mean_loss": full.mean_loss, "loss_vs_full": 1.0, "iterations_saved": 0.0}]
    for rule in settings:
        seconds, res = timed(lambda rule=rule: invert(model, seeds, targets,
                                                      iterations=iterations, batch_size=32,
                                                      early_stop=rule, progress=False))
        used = float(res.iterations.double().mean())
        rows.append({"setting": f"patience={rule.patience}, rel_tol={rule.rel_tol:g}",
                     "mean_iterations": used, "seconds": seconds, "mean_loss": res.mean_loss,
                     "loss_vs_full": res.mean_loss / full.mean_loss,
                     "iterations_saved": 1.0 - used / iterations})
    return pd.DataFrame(rows)


def part_batch_sizes(model: nn.Module, pool_seeds: torch.Tensor, pool_targets: torch.Tensor,
                     sizes: list[int], iterations: int, rounds: int) -> pd.DataFrame:
    """Ours vs raw at each batch size, interleaved over ``rounds``; >= 256 images each."""
    wall: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    work = {}
    for _ in range(rounds):
        for size in sizes:
            reps = max(1, 256 // size)
            s = pool_seeds[:size].repeat(reps, 1, 1, 1)
            t = pool_targets[:size].repeat(reps, 1, 1, 1)
            work[size] = len(s) * iterations
            fns = {"raw": lambda s=s, size=size: raw_loop(model, s, iterations, batch=size),
                   "ours": lambda s=s, t=t, size=size: invert(
                       model, s, t, iterations=iterations, batch_size=size, progress=False)}
            for name, fn in fns.items():
                w, c, _ = timed_both(fn)
                wall.setdefault((size, name), []).append(w)
                cpu.setdefault((size, name), []).append(c)
    rows = []
    for size in sizes:
        def rate(times: dict, name: str, size: int = size) -> float:
            return work[size] / statistics.median(times[(size, name)])

        rows.append({"batch": size, "raw_img_it_per_s": rate(wall, "raw"),
                     "ours_img_it_per_s": rate(wall, "ours"),
                     "fraction_of_raw": rate(wall, "ours") / rate(wall, "raw"),
                     "ours_img_it_per_cpu_s": rate(cpu, "ours"),
                     "fraction_of_raw_cpu": rate(cpu, "ours") / rate(cpu, "raw")})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", choices=("builtin", "zoo"), default="builtin")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 140)

    train, test = digits("train"), digits("test")
    model, model_name = get_model(args.model, train.images, train.labels)
    acc = accuracy(model, test.images, test.labels)
    pairs = 32 if args.quick else args.pairs
    s_idx, t_idx = draw_pairs(test.labels, pairs, seed=0)
    seeds, targets = test.images[s_idx], test.images[t_idx]
    load_before = os.getloadavg()
    print(f"model: {model_name}; test accuracy {acc:.3f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}; "
          f"load average {load_before[0]:.2f} (the CPU is shared with other processes: methods "
          "run interleaved, medians of the rounds reported)")

    rounds = 1 if args.quick else 5
    cmp = part_compare(model, seeds, targets, args.iterations, rounds)
    print(f"\nPart 1: {pairs} pairs, batch 32, {args.iterations} iterations, {rounds} round(s)")
    print(cmp.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

    es_iters = 300 if args.quick else 1000
    es_pairs = 32 if args.quick else 64
    settings = [EarlyStop(50, 1e-2)] if args.quick else [
        EarlyStop(p, tol) for p in (50, 100) for tol in (1e-3, 1e-2, 3e-2)]
    es = part_early_stop(model, seeds[:es_pairs], targets[:es_pairs], es_iters, settings)
    ok = es[(es.setting != "none") & (es.loss_vs_full <= 1.05)]
    print(f"\nPart 2: early stopping at {es_iters} iterations, {es_pairs} pairs")
    print(es.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if len(ok):
        best = ok.sort_values("iterations_saved").iloc[-1]
        print(f"most iterations saved with loss <= 5 % worse: {best.setting} saves "
              f"{best.iterations_saved:.0%} (loss x{best.loss_vs_full:.3f})")
    else:
        print("no early-stop setting kept the loss within 5 % of the full run")

    sizes = [16, 32, 64] if args.quick else [16, 32, 64, 128, 256, 512]
    pool = draw_pairs(torch.cat([train.labels, test.labels]), max(sizes), seed=1)
    everything = torch.cat([train.images, test.images])
    bs = part_batch_sizes(model, everything[pool[0]], everything[pool[1]], sizes,
                          50 if args.quick else 100, 1 if args.quick else 3)
    print("\nPart 3: throughput vs batch size (image-iterations/s)")
    print(bs.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    top = bs.sort_values("ours_img_it_per_cpu_s").iloc[-1]
    print(f"best batch size here (by CPU-time rate): {int(top.batch)} "
          f"({top.ours_img_it_per_cpu_s:.0f} img-it per CPU-s)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")

    meta = {"model": model_name, "test_accuracy": acc, "threads": torch.get_num_threads(),
            "load_avg_start": load_before[0], "load_avg_end": os.getloadavg()[0]}
    for name, frame in (("compare", cmp), ("early_stop", es), ("batch_size", bs)):
        path = RESULTS / f"bench_inversion_{name}.csv"
        frame.assign(**meta).to_csv(path, index=False)
    print(f"\nCSVs in {RESULTS.relative_to(ROOT)}/bench_inversion_*.csv")


if __name__ == "__main__":
    main()
