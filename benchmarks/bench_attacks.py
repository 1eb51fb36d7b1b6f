"""Benchmark advlens' minimal-norm attacks against foolbox 3.3.4 and torchattacks 3.5.1.

Model: a 2-conv CNN on digits (16×16), trained here for a few epochs (~97 % test accuracy);
images: the correctly classified ones among the first 200 test images.

Part 1 — strength at equal cost, L2 then L∞. For each pass budget B (default 100 and 1000),
every attack gets B forward+backward passes (ours: ``result.cost`` = passes + forward-only
passes ≤ B; the peers: ``steps = B``, not counting their own extra forwards). Reported per
attack: median norm of the returned adversarial (failures count as +inf; recomputed here with an
independent forward pass), success rate, wall time (median over ``--repeats``). Attacks run
interleaved (round-robin, peers and ours alternating, order reversed every other repeat) so
that load from other processes on the shared CPU hits all of them alike.
Part 2 — throughput: each of our attacks (100 passes) as a fraction of the model's raw speed at
the same batch (raw forward+backward for the input gradient, parameters frozen, and raw forward
for the forward-only checks); each attack is timed right after its own raw runs (median ratio
over repeats), so load drift cancels. The gap to 1 is the attack's own overhead.

Run (the machine is shared: one thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_attacks.py
Options: --budgets 100 1000, --repeats 3, --n 200, --threads 1. Prints tables and writes CSVs to
benchmarks/results/. Peers come from .peers (appended to sys.path after site-packages).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from _common import train_digits_cnn
from advlens import attacks
from advlens.checks import frozen
from advlens.data import digits
from advlens.features import accuracy, predict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.append(str(ROOT / ".peers"))


def trained_model(epochs: int = 8, seed: int = 0) -> tuple[nn.Module, float]:
    train, test = digits("train"), digits("test")
    model = train_digits_cnn(train.images, train.labels, epochs=epochs, seed=seed)
    return model, accuracy(model, test.images, test.labels)


def benchmark_images(model: nn.Module, n: int) -> tuple[Tensor, Tensor]:
    test = digits("test")
    x, y = test.images[:n], test.labels[:n]
    keep = predict(model, x).argmax(1) == y
    return x[keep], y[keep]


# ------------------------------------------------------------------------------------ attacks
Runner = Callable[[nn.Module, Tensor, Tensor, int], Tensor]


def ours(method: str, norm: str = "l2") -> Runner:
    entry = attacks.minimal_l2 if norm == "l2" else attacks.minimal_linf

    def run(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
        r = entry(model, x, y, method=method, budget=budget)
        assert r.cost <= budget, (method, r.cost, budget)
        return r.adv
    return run


def foolbox_runner(name: str) -> Runner:
    def run(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        attack = {"ddn": fb.attacks.DDNAttack, "fmn": fb.attacks.L2FMNAttack,
                  "fmn-linf": fb.attacks.LInfFMNAttack}[name](steps=budget)
        raw, _, _ = attack(fmodel, x, y, epsilons=None)
        return raw
    return run


def torchattacks_cw(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
    import torchattacks

    return torchattacks.CW(model, c=1, kappa=0, steps=budget, lr=0.01)(x, y)


def peers_available(norm: str) -> dict[str, Runner]:
    found: dict[str, Runner] = {}
    try:
        import foolbox  # noqa: F401

        if norm == "l2":
            found["foolbox DDN"] = foolbox_runner("ddn")
            found["foolbox FMN-L2"] = foolbox_runner("fmn")
        else:
            found["foolbox FMN-Linf"] = foolbox_runner("fmn-linf")
    except ImportError:
        print("foolbox not found in .peers; skipping it")
    try:
        import torchattacks  # noqa: F401

        if norm == "l2":
            found["torchattacks CW (c=1)"] = torchattacks_cw
    except ImportError:
        print("torchattacks not found in .peers; skipping it")
    return found


def measured_norms(model: nn.Module, x: Tensor, y: Tensor, adv: Tensor,
                   norm: str) -> tuple[np.ndarray, float]:
    """Independent check: norm of each returned example, +inf where it is not adversarial."""
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
    inside = (adv.min() >= 0) and (adv.max() <= 1)
    assert inside, "an attack returned pixels outside [0, 1]"
    d = (adv - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)
    size = torch.where(fooled, size, torch.full_like(size, float("inf")))
    return size.numpy(), float(fooled.float().mean())


def strength(model: nn.Module, x: Tensor, y: Tensor, budgets: list[int], repeats: int,
             methods: list[str], norm: str) -> pd.DataFrame:
    contenders: dict[str, Runner] = {}
    peers = peers_available(norm)
    ours_ = {f"advlens {m}": ours(m, norm) for m in methods}
    # alternate ours and peers in the round-robin order
    names_o, names_p = list(ours_), list(peers)
    for i in range(max(len(names_o), len(names_p))):
        if i < len(names_o):
            contenders[names_o[i]] = ours_[names_o[i]]
        if i < len(names_p):
            contenders[names_p[i]] = peers[names_p[i]]
    rows = []
    for budget in budgets:
        times: dict[str, list[float]] = {k: [] for k in contenders}
        norms: dict[str, np.ndarray] = {}
        rates: dict[str, float] = {}
        for rep in range(repeats):
            order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
            for name in order:
                t0 = time.perf_counter()
                adv = contenders[name](model, x, y, budget)
                times[name].append(time.perf_counter() - t0)
                norms[name], rates[name] = measured_norms(model, x, y, adv.detach(), norm)
        for name in contenders:
            rows.append({"norm": norm, "budget": budget, "attack": name,
                         "median": float(np.median(norms[name])),
                         "mean_successful": float(norms[name][np.isfinite(norms[name])].mean()),
                         "success": rates[name], "wall_s": statistics.median(times[name])})
        print(pd.DataFrame([r for r in rows if r["budget"] == budget]).to_string(
            index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    return pd.DataFrame(rows)


def raw_pass(model: nn.Module, x: Tensor, passes: int) -> None:
    """The cheapest forward+backward for an input gradient: parameters frozen (as the attacks
    run them), so no weight gradient is computed either way."""
    target = torch.zeros(len(x), dtype=torch.long)
    with frozen(model):
        for _ in range(passes):
            xi = x.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xi), target, reduction="sum")
            torch.autograd.grad(loss, xi)


@torch.no_grad()
def raw_forward(model: nn.Module, x: Tensor, passes: int) -> None:
    for _ in range(passes):
        model(x)


def throughput(model: nn.Module, x: Tensor, y: Tensor, repeats: int, steps: int = 100
               ) -> pd.DataFrame:
    """Throughput of each attack as a fraction of the model's raw speed: the time the model's own
    passes would take at raw speed (forward+backward passes × raw pass time + forward-only
    passes × raw forward time, both measured right before the attack, so both see the same
    load) over the attack's wall time; median over repeats."""
    runs: dict[str, Callable[[], attacks.AttackResult]] = {
        "ddn": lambda: attacks.ddn(model, x, y, steps=steps),
        "fmn-l2": lambda: attacks.fmn(model, x, y, steps=steps),
        "fmn-linf": lambda: attacks.fmn(model, x, y, norm="linf", steps=steps),
        "cw-l2": lambda: attacks.cw_l2(model, x, y, steps=steps // 2, binary_steps=2,
                                       abort_early=False),
        "ead": lambda: attacks.ead(model, x, y, steps=steps // 2, binary_steps=2,
                                   abort_early=False),
        "pgd-l2": lambda: attacks.pgd(model, x, y, eps=1.0, steps=steps),
        "ifgsm-search": lambda: attacks.ifgsm_search(model, x, y, steps=10, tries=9),
    }
    ratios: dict[str, list[float]] = {k: [] for k in runs}
    raw_rates: list[float] = []
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            raw_pass(model, x, steps)
            t_pass = (time.perf_counter() - t0) / steps
            t0 = time.perf_counter()
            raw_forward(model, x, steps)
            t_forward = (time.perf_counter() - t0) / steps
            model.train()  # the attacks must switch to eval themselves
            t0 = time.perf_counter()
            r = fn()
            elapsed = time.perf_counter() - t0
            model.eval()
            # the model's own compute for this run, at the raw speed just measured
            ideal = r.passes * t_pass + r.forwards * t_forward
            ratios[name].append(ideal / elapsed)
            raw_rates.append(1 / t_pass)
    rows = [{"attack": "raw forward+backward", "passes_per_s": statistics.median(raw_rates),
             "fraction_of_raw": 1.0}]
    rows += [{"attack": k, "passes_per_s": statistics.median(v) * statistics.median(raw_rates),
              "fraction_of_raw": statistics.median(v)} for k, v in ratios.items()]
    # passes_per_s of an attack: forward-only passes converted at their measured relative cost
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"), flush=True)
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["ddn", "fmn", "cw"],
                        help="our L2 methods ('auto' is one of them)")
    parser.add_argument("--linf-methods", nargs="+", default=["fmn", "ifgsm"])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-strength", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, acc = trained_model()
    x, y = benchmark_images(model, args.n)
    print(f"model test accuracy {acc:.4f}; {len(x)} correctly classified images; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s); interleaved round-robin, {args.repeats} repeats",
          flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.skip_strength:
        df = pd.concat([strength(model, x, y, args.budgets, args.repeats, args.methods, "l2"),
                        strength(model, x, y, args.budgets, args.repeats, args.linf_methods,
                                 "linf")])
        df.to_csv(RESULTS / "bench_attacks_strength.csv", index=False)
    if not args.skip_throughput:
        tp = throughput(model, x, y, args.repeats)
        tp.to_csv(RESULTS / "bench_attacks_throughput.csv", index=False)
    print(f"wrote CSVs to {RESULTS}")


if __name__ == "__main__":
    main()
