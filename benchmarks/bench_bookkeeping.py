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
from bench_attacks import RESULTS, benchmark_images, raw_pass, zoo_model

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


def in_run_fractions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int,
                     steps: int = 100, compare: str = "bookkeeping") -> pd.DataFrame:
    toggle, (off_column, on_column) = TOGGLES[compare], COLUMNS[compare]
    clocked = ModelClock(model)
    runs: dict[str, Callable[[], object]] = {
        "ddn": lambda: attacks.ddn(clocked, x, y, steps=steps),
        "fmn-l2": lambda: attacks.fmn(clocked, x, y, steps=steps),
        "fmn-linf": lambda: attacks.fmn(clocked, x, y, norm="linf", steps=steps),
        "alma": lambda: attacks.alma(clocked, x, y, steps=steps),
        "fab-linf": lambda: attacks.fab(clocked, x, y, steps=steps),
        "cw-l2": lambda: attacks.cw_l2(clocked, x, y, steps=steps // 2, binary_steps=2,
                                       abort_early=False),
        "ead": lambda: attacks.ead(clocked, x, y, steps=steps // 2, binary_steps=2,
                                   abort_early=False),
        "minimal-l2 auto (3x budget)": lambda: attacks.minimal_l2(clocked, x, y,
                                                                  budget=3 * steps),
        "minimal-linf auto (3x budget)": lambda: attacks.minimal_linf(clocked, x, y,
                                                                      budget=3 * steps),
    }
    fractions: dict[tuple[str, bool], list[float]] = {(k, on): [] for k in runs
                                                      for on in (False, True)}
    for r in range(repeats):
        for name, run in runs.items():
            for on in ((True, False) if r % 2 else (False, True)):
                toggle(on)
                clocked.reset()
                start = time.process_time()
                raw_pass(clocked, x, steps)
                raw_overhead = (time.process_time() - start) / clocked.seconds
                clocked.reset()
                start = time.process_time()
                run()
                fractions[name, on].append(clocked.seconds * raw_overhead
                                           / (time.process_time() - start))
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
        x, y = benchmark_images(model, n)
        frames.append(in_run_fractions(model, x, y, args.repeats, compare=args.compare))
        print(frames[-1].to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_{args.compare}.csv"
    pd.concat(frames).to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
