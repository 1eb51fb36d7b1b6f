"""Targeted minimal attacks: ``minimal_l2`` / ``minimal_linf`` ``auto`` with target classes,
against the peers' targeted attacks at equal pass budgets.

Each model's first ``--n`` correctly classified digits test images get one random target class
each (``choose_targets(..., "random")``, generator seed 0). Peers, targeted, given ``steps = B``:
L∞ — adv-lib FMN-L∞ and foolbox FMN-L∞; L2 — adv-lib DDN (``levels=None``), ALMA and FMN-L2, and
foolbox DDN. Ours gets B passes in all (``result.cost`` ≤ B). A returned image counts only if an
independent forward pass puts it in its target class (else its norm is +inf); reported: the median
norm, the success count and CPU time per attack, and ours over the best peer's median.

``--skip K`` takes the ``--n`` images after the first K instead, ``--target-seed`` another
generator seed: a held-out check of a plan chosen on the defaults (other images, other targets).

Run (one thread; the machine is shared):
    .venv/bin/python benchmarks/bench_targeted.py --models cnn-m/std cnn-m/at1.0 --budgets 100 400
Writes ``benchmarks/results/bench_targeted_<norm><tag>.csv``, one row per model, budget and
attack, with each image's norm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import Tensor, nn

from advlens import attacks
from advlens.checks import frozen
from bench_attacks import RESULTS, benchmark_images, measured_norms, model_dataset, zoo_model

Targeted = Callable[[nn.Module, Tensor, Tensor, Tensor, int], Tensor]  # (model, x, y, t, B)


def _advlib(name: str, **kw: object) -> Targeted:
    def run(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, budget: int) -> Tensor:
        import adv_lib.attacks as al

        if name == "alma":
            return al.alma(model, x, t, targeted=True, num_steps=budget)
        if name == "ddn":
            return al.ddn(model, x, t, targeted=True, steps=budget, levels=None)
        return al.fmn(model, x, t, targeted=True, steps=budget, **kw)
    return run


def _foolbox(name: str) -> Targeted:
    def run(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, budget: int) -> Tensor:
        import foolbox as fb

        attack = {"ddn": fb.attacks.DDNAttack, "fmn-linf": fb.attacks.LInfFMNAttack}[name]
        raw, _, _ = attack(steps=budget)(fb.PyTorchModel(model, bounds=(0, 1)), x,
                                         fb.criteria.TargetedMisclassification(t), epsilons=None)
        return raw
    return run


def _ours(norm: str) -> Targeted:
    entry = attacks.minimal_l2 if norm == "l2" else attacks.minimal_linf

    def run(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, budget: int) -> Tensor:
        r = entry(model, x, y, targets=t, budget=budget)
        assert r.cost <= budget, (r.cost, budget)
        return r.adv
    return run


RUNNERS: dict[str, dict[str, Targeted]] = {
    "linf": {"ours auto": _ours("linf"),
             "adv-lib FMN-Linf": _advlib("fmn", norm=float("inf")),
             "foolbox FMN-Linf": _foolbox("fmn-linf")},
    "l2": {"ours auto": _ours("l2"), "adv-lib DDN": _advlib("ddn"),
           "adv-lib ALMA": _advlib("alma"), "adv-lib FMN-L2": _advlib("fmn", norm=2),
           "foolbox DDN": _foolbox("ddn")},
}


def run_norm(norm: str, models: list[str], budgets: list[int], n: int, skip: int = 0,
             target_seed: int = 0) -> pd.DataFrame:
    rows = []
    for name in models:
        model, _ = zoo_model(name)
        x, y = benchmark_images(model, skip + n, model_dataset(name))
        x, y = x[skip:], y[skip:]
        t = attacks.choose_targets(model, x, y, "random",
                                   torch.Generator().manual_seed(target_seed))
        for budget in budgets:
            cell = []
            for attack, fn in RUNNERS[norm].items():
                with frozen(model):  # (foolbox's loss.backward(): no weights' gradients)
                    start = time.process_time()
                    adv = fn(model, x, y, t, budget)
                    cpu = time.process_time() - start
                norms = measured_norms(model, x, y, adv.detach(), norm, targets=t)[0].tolist()
                cell.append({"model": name, "budget": budget, "norm": norm, "attack": attack,
                             "median": statistics.median(norms),
                             "success": sum(v != float("inf") for v in norms), "n": len(norms),
                             "cpu_s": cpu, "norms": json.dumps(norms)})
            best = min(r["median"] for r in cell if r["attack"] != "ours auto")
            ours = next(r["median"] for r in cell if r["attack"] == "ours auto")
            for r in cell:
                r["ours_over_best_peer"] = ours / best
            rows += cell
            print(f"{norm} {name:18s} {budget:5d} ours/best peer {ours / best:.4f}  " + "  ".join(
                f"{r['attack']} {r['median']:.5g} ({r['success']}/{r['n']})" for r in cell),
                flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn-m/std", "cnn-m/at1.0"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[100, 400])
    parser.add_argument("--norms", nargs="+", choices=["linf", "l2"], default=["linf", "l2"])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the first SKIP correctly classified images")
    parser.add_argument("--target-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for norm in args.norms:
        df = run_norm(norm, args.models, args.budgets, args.n, args.skip, args.target_seed)
        ours = df[df["attack"] == "ours auto"]
        lost = int((ours["ours_over_best_peer"] > 1).sum())
        print(f"{norm}: medians above the best peer's in {lost} of {len(ours)} cells", flush=True)
        df.to_csv(RESULTS / f"bench_targeted_{norm}{args.tag}.csv", index=False)


if __name__ == "__main__":
    main()
