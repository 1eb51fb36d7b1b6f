"""Part of ALMA's per-step arithmetic (the penalty's coefficients, the multiplier's update, the
gradient's weighting, RMSProp and the step: 25 of its ~105 small ops) eager against one
``torch.compile``-d function (inductor, CPU), at batch 32 on 1 × 16 × 16 images: how much of the
fixed per-step dispatch cost a fused kernel would remove (``bench_overhead.py``: ALMA's
arithmetic alone allows 0.901 of raw on cnn-m/std at batch 32). A measurement of that path, not
what ``advlens.attacks.alma`` runs. Rerun::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_compile_step.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pandas as pd
import torch

from bench_attacks import RESULTS


def alma_step_part(c: torch.Tensor, rho: torch.Tensor, mu: torch.Tensor, grad: torch.Tensor,
                   delta: torch.Tensor, x0: torch.Tensor, xa: torch.Tensor,
                   square_avg: torch.Tensor, momentum: torch.Tensor, step_lr: torch.Tensor,
                   alpha: float) -> tuple[torch.Tensor, ...]:
    """ALMA's update of μ, RMSProp's averages and δ from the constraint c and its input
    gradient (as in ``advlens.attacks.alma``, written as plain ops)."""
    rows = (-1, 1, 1, 1)
    rc = rho * c
    positive = rc.clamp(min=0)
    a = torch.where(c >= 0, 2 * positive + 1, (1 - rc.clamp(max=0)).pow(-2))
    b = positive.square() * 0.5
    mu = torch.lerp(mu, a * mu + b, 1 - alpha).clamp(1e-6, 1e12)
    norm = delta.flatten(1).norm(dim=1)
    g = grad * (a * mu + b).view(rows) + delta / norm.clamp_min(1e-12).view(rows)
    square_avg = square_avg * alpha + (1 - alpha) * g * g
    momentum = momentum * alpha + g / (square_avg.sqrt() + 1e-8)
    delta = (xa - step_lr.view(rows) * momentum).clamp(0, 1) - x0
    return mu, square_avg, momentum, delta, norm


def per_call_us(fn: Callable[..., tuple[torch.Tensor, ...]], args: list[torch.Tensor],
                calls: int = 2000, repeats: int = 5) -> float:
    for _ in range(50):
        fn(*args, 0.9)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn(*args, 0.9)
        times.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    n, shape = 32, (32, 1, 16, 16)
    args = [torch.randn(n, generator=gen), torch.rand(n, generator=gen) + 1,
            torch.rand(n, generator=gen), torch.randn(*shape, generator=gen),
            0.1 * torch.randn(*shape, generator=gen), torch.rand(*shape, generator=gen),
            torch.rand(*shape, generator=gen), torch.ones(shape), torch.zeros(shape),
            torch.full((n,), 0.1)]
    with torch.inference_mode():
        eager = per_call_us(alma_step_part, args)
        start = time.perf_counter()
        compiled_fn = torch.compile(alma_step_part, dynamic=False)
        compiled_fn(*args, 0.9)
        compile_s = time.perf_counter() - start
        compiled = per_call_us(compiled_fn, args)
        diff = max(float((u - v).abs().max()) for u, v in
                   zip(alma_step_part(*args, 0.9), compiled_fn(*args, 0.9), strict=True))
    table = pd.DataFrame([{"batch": n, "eager_us": eager, "compiled_us": compiled,
                           "compile_s": compile_s, "max_abs_difference": diff}])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "bench_compile_step.csv"
    table.to_csv(path, index=False)
    print(table.to_string(index=False))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
