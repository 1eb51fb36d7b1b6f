"""DDN where the cross-entropy saturates: ours (`minimal_l2(method="ddn")`, the stage notebook 03
runs) against adv-lib's and foolbox's DDN at equal passes, on the laptop zoo's twin-cue models
trained on one cue ("a-only"), shown images with both cues (notebook 03's twin-cue set): confident
enough that DDN's cross-entropy input gradient vanishes (below 1e-12, the floor a normalised
step needs) on some images, at the clean image (``saturated``) or at an iterate on the way.

Per model and budget: each attack's median L2 (inf where it found none; checked by an
independent forward pass), the images where it ends above twice the per-image best of the
contenders, and its worst ratio to that best. Run: ``python benchmarks/bench_ddn_saturation.py
[--n 200] [--budgets 100 1000]``; CSV in ``benchmarks/results/``. To compare with an earlier
release, run the same script with ``PYTHONPATH`` at that release's ``lib``.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from advlens import zoo
from advlens.data import twin_cue
from advlens.features import predict

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / ".peers"))
sys.modules.setdefault("visdom", types.ModuleType("visdom"))  # adv-lib: optional plots only
sys.path.append(str(Path(__file__).resolve().parent))
from bench_attacks import advlib_runner, foolbox_runner, measured_norms, ours  # noqa: E402

FLOOR = 1e-12  # advlens.attacks.norms' floor on a norm to normalise by


def twin_cue_models(variant: str = "a-only") -> list[tuple[str, nn.Module]]:
    """The laptop zoo's standard cnn-s twin-cue models of ``variant`` (every seed)."""
    found = []
    for config in zoo.spec("laptop"):
        if (config.dataset, config.variant, config.arch, config.regime) == (
                "twin-cue", variant, "cnn-s", "standard"):
            model = zoo.load(config, progress=False).model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            found.append((config.name, model))
    return found


def clean_gradient_norms(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Each image's cross-entropy input-gradient L2 norm at the clean image (float32)."""
    xg = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xg), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    return g.flatten(1).norm(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="correctly classified test images")
    parser.add_argument("--pool", type=int, default=1000,
                        help="test images drawn (notebook 03's twin_n at the laptop preset)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners = {"advlens DDN": ours("ddn"), "adv-lib DDN": advlib_runner("ddn"),
               "foolbox DDN": foolbox_runner("ddn")}
    rows = []
    for name, model in twin_cue_models():
        test = twin_cue("test", "both", n=args.pool, seed=0)  # as linsley2023.eval_set
        keep = (predict(model, test.images).argmax(1) == test.labels).nonzero().flatten()
        x, y = test.images[keep[:args.n]], test.labels[keep[:args.n]]
        saturated = (clean_gradient_norms(model, x, y) < FLOOR).numpy()
        for budget in args.budgets:
            norms = {}
            for attack, run in runners.items():
                torch.manual_seed(0)  # (adv-lib's and foolbox's DDN draw random directions)
                start = time.process_time()
                adv = run(model, x, y, budget)
                cpu = time.process_time() - start
                norms[attack], rate, _ = measured_norms(model, x, y, adv, "l2")
                rows.append({"model": name, "budget": budget, "attack": attack, "n": len(x),
                             "saturated": int(saturated.sum()), "success": rate,
                             "median_l2": float(np.median(norms[attack])), "cpu_s": cpu})
            best = np.minimum.reduce(list(norms.values()))
            for row in rows[-len(runners):]:
                ratio = norms[row["attack"]] / best
                row["above_2x_best"] = int((ratio > 2).sum())
                row["worst_ratio"] = float(np.max(ratio))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    out = ROOT / "benchmarks" / "results" / f"bench_ddn_saturation{args.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
