"""Attack throughput with two forms of the per-step arithmetic that give bitwise the same results.

``--compare bookkeeping`` (the default): the attacks run their own per-step arithmetic inside
``advlens.attacks.core.bookkeeping()`` (inference mode: no autograd dispatch for ops that never
need it), swapped here for a no-op context. ``--compare numbers``: the fixed numbers of the
per-step arithmetic as cached 0-dim tensors (``advlens.attacks.scalars.scalar``, as shipped),
swapped here for the Python numbers themselves (wrapped and cast by torch at every op).

The two forms alternate in the same process every run; reported is each attack's in-run
fraction of the raw forward+backward speed (``bench_attacks.throughput``'s measure: the model's
own CPU time, scaled by the raw loop's total/model ratio, over the attack's CPU time), the median
over repeats. Only the time moves. Rerun::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bookkeeping.py --batch 32 150
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bookkeeping.py --compare numbers
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable

import pandas as pd
import torch

from _model_clock import ModelClock
from advlens import attacks
from bench_attacks import RESULTS, benchmark_images, model_dataset, raw_pass, zoo_model

# the modules whose loops enter bookkeeping(); each imported the name itself
LOOPS = ("ddn", "fmn", "alma", "fab", "const_search")
# the modules that take fixed numbers from advlens.attacks.scalars
SCALAR_USERS = ("alma", "cw", "const_search", "ead", "criterion")
# each comparison: the CSV's column names for the form swapped in and the form shipped
COLUMNS = {"bookkeeping": ("no_op_context", "inference_mode"),
           "numbers": ("python_numbers", "cached_numbers")}


def use_bookkeeping(on: bool) -> None:
    """Inference-mode bookkeeping (``on``, as shipped) or a no-op context in every loop."""
    from advlens.attacks import core
    for name in LOOPS:
        module = sys.modules[f"advlens.attacks.{name}"]
        module.bookkeeping = core.bookkeeping if on else contextlib.nullcontext  # type: ignore[attr-defined]


def use_cached_numbers(on: bool) -> None:
    """Fixed numbers as cached 0-dim tensors (``on``, as shipped) or as the Python numbers."""
    from advlens.attacks import scalars
    for name in SCALAR_USERS:
        module = sys.modules[f"advlens.attacks.{name}"]
        module.scalar = scalars.scalar if on else (lambda value, dtype: value)  # type: ignore[attr-defined]


TOGGLES = {"bookkeeping": use_bookkeeping, "numbers": use_cached_numbers}


def attack_runs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 100
                ) -> dict[str, Callable[[], object]]:
    """Each attack at ``steps`` passes (C&W and EAD: 2 constants × steps/2; the portfolios
    ``minimal-l2`` and ``minimal-linf`` at a budget of 3 × steps; ``fab-linf-narrow``: FAB as
    ``minimal_linf``'s first stage runs it below 1,000 passes, narrowed to one class)."""
    return {
        "ddn": lambda: attacks.ddn(model, x, y, steps=steps),
        "fmn-l2": lambda: attacks.fmn(model, x, y, steps=steps),
        "fmn-linf": lambda: attacks.fmn(model, x, y, norm="linf", steps=steps),
        "alma": lambda: attacks.alma(model, x, y, steps=steps),
        "fab-linf": lambda: attacks.fab(model, x, y, steps=steps),
        "fab-linf-narrow": lambda: attacks.fab(model, x, y, steps=steps, narrow=1),
        "cw-l2": lambda: attacks.cw_l2(model, x, y, steps=steps // 2, binary_steps=2,
                                       abort_early=False),
        "ead": lambda: attacks.ead(model, x, y, steps=steps // 2, binary_steps=2,
                                   abort_early=False),
        "minimal-l2": lambda: attacks.minimal_l2(model, x, y, budget=3 * steps),
        "minimal-linf": lambda: attacks.minimal_linf(model, x, y, budget=3 * steps),
    }


def in_run_fraction(clocked: ModelClock, x: torch.Tensor, run: Callable[[], object],
                    steps: int = 100) -> float:
    """One run's in-run fraction of raw: the model's CPU time during ``run`` (``clocked``
    wraps the model it attacks), scaled by a raw loop's total/model-time ratio measured right
    before, over the run's CPU time."""
    clocked.reset()
    start = time.process_time()
    raw_pass(clocked, x, steps)
    raw_overhead = (time.process_time() - start) / clocked.seconds
    clocked.reset()
    start = time.process_time()
    run()
    return clocked.seconds * raw_overhead / (time.process_time() - start)


def in_run_fractions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int,
                     steps: int = 100, compare: str = "bookkeeping") -> pd.DataFrame:
    toggle, (off_column, on_column) = TOGGLES[compare], COLUMNS[compare]
    clocked = ModelClock(model)
    runs = attack_runs(clocked, x, y, steps)
    fractions: dict[tuple[str, bool], list[float]] = {(k, on): [] for k in runs
                                                      for on in (False, True)}
    for r in range(repeats):
        for name, run in runs.items():
            for on in ((True, False) if r % 2 else (False, True)):
                toggle(on)
                fractions[name, on].append(in_run_fraction(clocked, x, run, steps))
    toggle(True)
    return pd.DataFrame([{"attack": name, "batch": len(x),
                          off_column: statistics.median(fractions[name, False]),
                          on_column: statistics.median(fractions[name, True])}
                         for name in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn-m/std")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 150])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", choices=sorted(TOGGLES), default="bookkeeping")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _ = zoo_model(args.model)
    frames = []
    for n in args.batch:
        x, y = benchmark_images(model, n, model_dataset(args.model))
        frames.append(in_run_fractions(model, x, y, args.repeats, compare=args.compare))
        print(frames[-1].to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_{args.compare}.csv"
    pd.concat(frames).to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
