"""How far the laptop preset's fixed budgets are from convergence: notebook 02's attack suite
(Su et al.: FGSM and I-FGSM searches, C&W-L2, EAD) and notebook 03's searches (Linsley et al.:
the PGD tolerance search, DDN) at the preset's budgets and at larger ones, on laptop-zoo digits
models, through the functions the notebooks call.

A headline number that moves with the budget by more than its seed-to-seed tolerance
(``lib/advlens/tolerances.json``) measures the budget as much as the model; what the papers'
claims rest on is the order of the models, so the script also prints each budget's ranking.

Run (one thread; a few minutes per part on the default models):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_budgets.py su        # C&W / EAD budgets
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_budgets.py linsley   # ×1, ×2, ×4 steps
Options: --models cnn-m/std vgg-xs/at1.0 ... (arch/std, arch/harm, arch/at<eps>, "/s<seed>"
appended for another seed), --n (images), --tag (suffix of the CSV names).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import pandas as pd
import torch
from torch import nn

from advlens import attacks
from advlens.data import digits
from advlens.features import accuracy
from advlens.papers import linsley2023, su2018
from advlens.presets import PRESETS
from bench_attacks import RESULTS, zoo_model

# C&W-L2 and EAD (constants × steps per constant; I-FGSM steps beside): the laptop preset's
# budget before the thirty-first session, larger ones, and the preset's budget since
SU_BUDGETS = {
    "3 × 30 (earlier preset)": {"binary": 3, "steps": 30, "ifgsm": 10},
    "3 × 60": {"binary": 3, "steps": 60, "ifgsm": 20},
    "3 × 120": {"binary": 3, "steps": 120, "ifgsm": 40},
    "6 × 30": {"binary": 6, "steps": 30, "ifgsm": 10},
    "9 × 120": {"binary": 9, "steps": 120, "ifgsm": 40},
    "9 × 250 (preset)": {"binary": 9, "steps": 250, "ifgsm": 10},
}
# notebook 03's PGD search: Linsley et al.'s 3 steps of 0.5 (reach 1.5), more steps of that
# size (more reach), the same reach in smaller steps, a narrower bisection; DDN's steps
PGD_BUDGETS = {"preset": {}, "steps ×2": {"steps": 6}, "steps ×4": {"steps": 12},
               "steps ×4, reach 1.5": {"steps": 12, "step_size": 0.125},
               "width ÷4": {"width_low": 0.0025, "width_high": 0.025}}
DDN_BUDGETS = {"preset": 1, "steps ×2": 2, "steps ×4": 4}
SU_MODELS = ["mlp-m/std", "cnn-s/std", "cnn-m/std", "vgg-xs/std", "resnet8-xs/std", "vit-xs/std"]
LINSLEY_MODELS = ["cnn-m/std", "vgg-xs/std", "cnn-m/at1.0", "vgg-xs/at1.0", "mlp-l/at1.0",
                  "resnet8-xs/at1.0"]


def zoo_models(names: list[str]) -> dict[str, nn.Module]:
    """Laptop-zoo digits models by name (:func:`bench_attacks.zoo_model`), in eval mode."""
    return {name: zoo_model(name)[0] for name in names}


def ranking(table: pd.DataFrame, column: str) -> str:
    """The models from smallest to largest ``column`` ("=" between ties)."""
    ordered = table.sort_values([column, "model"])
    text = ordered["model"].iloc[0]
    for before, (model, value) in zip(ordered[column], ordered[["model", column]].to_numpy()[1:],
                                      strict=False):
        text += (" = " if value == before else " < ") + model
    return text


def su_part(names: list[str], n: int) -> pd.DataFrame:
    """Notebook 02's suite (laptop knobs) on ``n`` random digits test images per budget."""
    base = dataclasses.asdict(su2018.SuiteSettings.from_knobs(PRESETS["02"]["laptop"]))
    models = zoo_models(names)
    test = digits("test")
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(0))[:n]
    tables = []
    for label, budget in SU_BUDGETS.items():
        settings = su2018.SuiteSettings(**{
            **base, "cw_binary_steps": budget["binary"], "ead_binary_steps": budget["binary"],
            "cw_steps": budget["steps"], "ead_steps": budget["steps"],
            "ifgsm_steps": budget["ifgsm"]})
        start = time.perf_counter()
        table, _ = su2018.attack_suite(models, test.images[pick], test.labels[pick],
                                       settings=settings,
                                       generator=torch.Generator().manual_seed(0),
                                       n_boot=200, keep_adv=False, progress=False)
        table = table.assign(budget=label, wall_s=time.perf_counter() - start)
        tables.append(table[["budget", "model", "attack", "distortion", "success_rate",
                             "wall_s"]])
        for attack, rows in table.groupby("attack", sort=False):
            print(f"su {label:>14} {attack:>5}: {ranking(rows, 'distortion')}", flush=True)
    return pd.concat(tables, ignore_index=True)


def linsley_part(names: list[str], n: int) -> pd.DataFrame:
    """Notebook 03's model table (digits, stroke maps) per search budget."""
    models = zoo_models(names)
    data, maps = linsley2023.eval_set("digits")
    acc = {name: accuracy(m, data.images, data.labels) for name, m in models.items()}
    ddn_steps = PRESETS["03"]["laptop"]["ddn_steps"]
    plain = attacks.minimal_eps_pgd
    tables = []
    try:
        for attack, label, change in [*(("pgd", k, v) for k, v in PGD_BUDGETS.items()),
                                      *(("ddn", k, v) for k, v in DDN_BUDGETS.items())]:
            kw = {}
            if attack == "pgd":  # model_table calls attacks.minimal_eps_pgd by name
                attacks.minimal_eps_pgd = functools.partial(plain, **change)
            else:
                kw = {"ddn_steps": ddn_steps * change}
            start = time.perf_counter()
            summary, _ = linsley2023.model_table(models, data, maps, accuracy=acc,
                                                 attacks_=[attack], n_images=n, seed=0,
                                                 batch_size=256, **kw)
            attacks.minimal_eps_pgd = plain
            summary = summary.assign(budget=label, wall_s=time.perf_counter() - start)
            tables.append(summary[["budget", "attack", "model", "accuracy", "not_broken",
                                   "tolerance", "tolerance_mean", "alignment", "wall_s"]])
            print(f"linsley {attack} {label:>18}: {ranking(summary, 'tolerance')}", flush=True)
    finally:
        attacks.minimal_eps_pgd = plain
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["su", "linsley"])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--n", type=int, default=None,
                        help="images (default: the preset's: 64 for su, 200 for linsley)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part == "su":
        table = su_part(args.models or SU_MODELS, args.n or PRESETS["02"]["laptop"]["n_images"])
        wide = table.pivot_table(index=["attack", "model"], columns="budget",
                                 values="distortion", sort=False)
    else:
        table = linsley_part(args.models or LINSLEY_MODELS,
                             args.n or PRESETS["03"]["laptop"]["n_images"])
        wide = table.pivot_table(index=["attack", "model"], columns="budget",
                                 values=["tolerance", "not_broken"], sort=False)
    table.to_csv(RESULTS / f"bench_budgets_{args.part}{args.tag}.csv", index=False)
    with pd.option_context("display.width", 200):
        print(wide.round(4).to_string())


if __name__ == "__main__":
    main()
