"""Attack throughput of the working tree's library against an earlier commit's, alternated.

Each round runs every attack once with ``lib/`` of ``--baseline`` (exported with ``git archive``
and put first on ``PYTHONPATH``) and once with the working tree's, each in a fresh process, in
alternating order; each process reports the median over ``--repeats`` of the attack's in-run
fraction of the raw forward+backward speed (``bench_attacks.throughput``'s measure: the model's
own CPU time, scaled by the raw loop's total/model ratio, over the attack's CPU time). The table
gives the median over rounds of each side. For a change that must not move results, check that
separately (bitwise); this times it. Rerun::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ab_throughput.py --baseline 18fd9a1 \\
        --attacks fab-linf alma cw-l2 minimal-linf --batch 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

def worker(attack: str, model_name: str, batch: int, repeats: int) -> float:
    """The median in-run fraction of ``attack`` over ``repeats`` runs, in this process."""
    from _model_clock import ModelClock
    from bench_attacks import benchmark_images, model_dataset, zoo_model
    from bench_bookkeeping import attack_runs, in_run_fraction
    torch.set_num_threads(1)
    model, _ = zoo_model(model_name)
    x, y = benchmark_images(model, batch, model_dataset(model_name))
    clocked = ModelClock(model)
    run = attack_runs(clocked, x, y)[attack]
    return statistics.median(in_run_fraction(clocked, x, run) for _ in range(repeats))


def measure(lib: Path | None, args: argparse.Namespace, attack: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if lib is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lib), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, __file__, "--worker", attack, "--model", args.model,
         "--batch", str(args.batch), "--repeats", str(args.repeats)],
        env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="a git revision (default HEAD)")
    sys.path.insert(0, str(HERE))
    from bench_bookkeeping import attack_runs
    names = list(attack_runs(torch.nn.Identity(), torch.empty(0), torch.empty(0)))
    parser.add_argument("--attacks", nargs="+", choices=names, default=names,
                        help="as bench_bookkeeping.attack_runs times them")
    parser.add_argument("--model", default="cnn-m/std")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(worker(args.worker, args.model, args.batch, args.repeats))
        return
    revision = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", revision, "lib"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        sides = {f"baseline {revision}": Path(tmp) / "lib", "working tree": None}
        fractions: dict[tuple[str, str], list[float]] = {
            (a, side): [] for a in args.attacks for side in sides}
        for r in range(args.rounds):
            for attack in args.attacks:
                order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                for side in order:
                    fractions[attack, side].append(measure(sides[side], args, attack))
                print(f"round {r + 1}/{args.rounds} {attack}: "
                      + ", ".join(f"{s} {fractions[attack, s][-1]:.3f}" for s in sides),
                      flush=True)
    table = pd.DataFrame([{"attack": a, "model": args.model, "batch": args.batch,
                           **{side: statistics.median(fractions[a, side]) for side in sides}}
                          for a in args.attacks])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = HERE / "results" / f"ab_throughput_{revision}_{args.batch}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
