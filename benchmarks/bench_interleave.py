"""What a few element-wise ops cost beside a model's pass, against what they cost alone.

Why the attacks on a cheap model (mlp-l at batch 150) stay far below 0.90 of a bare loop of
passes: each attack step adds a few image-sized element-wise ops, and those cost more run in
turn with a pass than run alone. This times, in interleaved rounds (CPU time, one thread), five
element-wise ops on a batch of 150 × 256 floats ("ops", as an attack's update does them, and in
inference mode as the attacks' bookkeeping runs them), each beside one of:

- ``autograd``: a 3-layer MLP's forward and input gradient through autograd (the raw pass);
- ``same GEMMs by hand``: the same matrix products and masks without autograd;
- ``no-grad forward``: the forward alone;
- ``16 MB copy``: a copy that sweeps every cache level.

"extra" is (the pair in turn) − (each alone): what running them in turn adds. Rerun::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_interleave.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from bench_attacks import RESULTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = args.batch
    a, b, s = torch.rand(n, 256), torch.rand(n, 256), torch.rand(1, 1) + 0.5
    labels = torch.zeros(n, dtype=torch.long)
    net = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    net.requires_grad_(False)
    w1, w2, w3 = net[0].weight, net[2].weight, net[4].weight
    big = torch.rand(4_000_000)
    big_copy = torch.empty_like(big)

    def ops() -> torch.Tensor:
        return (((a + b) / s) * s - a).clamp(0, 1)

    def ops_inference() -> torch.Tensor:
        with torch.inference_mode():
            return ops()

    def autograd_pass() -> torch.Tensor:
        xi = a.detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(net(xi), labels, reduction="sum")
        return torch.autograd.grad(loss, xi)[0]

    def by_hand() -> torch.Tensor:
        h1 = (a @ w1.T).relu_()
        h2 = (h1 @ w2.T).relu_()
        g2 = (torch.softmax(h2 @ w3.T, 1) @ w3) * (h2 > 0)
        return ((g2 @ w2) * (h1 > 0)) @ w1

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return net(a)

    def sweep() -> None:
        big_copy.copy_(big)

    partners: dict[str, Callable[[], object]] = {
        "autograd": autograd_pass, "same GEMMs by hand": by_hand, "no-grad forward": forward,
        "16 MB copy": sweep}
    steps: dict[str, tuple[Callable[[], object], ...]] = {"ops": (ops,),
                                                          "ops (inference)": (ops_inference,)}
    for name, partner in partners.items():
        steps[name] = (partner,)
        steps[f"{name} + ops"] = (partner, ops)
        steps[f"{name} + ops (inference)"] = (partner, ops_inference)
    micros: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, calls in steps.items():
            start = time.process_time()
            for _ in range(args.calls):
                for call in calls:
                    call()
            micros[name].append((time.process_time() - start) / args.calls * 1e6)
    med = {k: statistics.median(v) for k, v in micros.items()}
    print(f"batch {n}, one thread, median of {args.rounds} rounds of {args.calls} calls (µs)")
    print(f"ops alone {med['ops']:.1f}, in inference mode {med['ops (inference)']:.1f}")
    rows = []
    for name in partners:
        extra = med[f"{name} + ops"] - med[name] - med["ops"]
        extra_inf = (med[f"{name} + ops (inference)"] - med[name] - med["ops (inference)"])
        print(f"{name:20s} alone {med[name]:8.1f}   extra beside it: ops {extra:6.1f}, "
              f"in inference mode {extra_inf:6.1f}")
        rows.append({"beside": name, "batch": n, "beside_alone_us": med[name],
                     "ops_alone_us": med["ops"], "extra_us": extra,
                     "ops_inference_alone_us": med["ops (inference)"],
                     "extra_inference_us": extra_inf})
    RESULTS.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(RESULTS / "bench_interleave.csv", index=False)
    print(f"wrote {RESULTS / 'bench_interleave.csv'}")


if __name__ == "__main__":
    main()
