"""Cost model of the ``paper`` preset: passes per notebook × FLOPs per pass → GPU-hours.

FLOPs of one forward and of one input-gradient backward pass (parameters frozen, as in attacks
and inversion) are *measured* per architecture on the CPU with
``torch.utils.flop_counter.FlopCounterMode`` (one image at its input size; multiply-adds count
2 FLOPs). The number of passes per notebook follows from the ``paper`` knobs in
:mod:`advlens.presets` and the paper zoo (:mod:`advlens.zoo.paper`), as upper bounds (every
image runs every iteration; early success or early stopping only lowers them). GPU-hours are
FLOPs / (peak dense bf16 throughput × an assumed sustained utilisation); the utilisation is an
assumption, stated in the table, not a measurement.

``python -m advlens.cost`` prints the README table (``--flops CSV`` reuses measured FLOPs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn


@dataclass(frozen=True)
class Gpu:
    """A GPU's peak dense bf16 tensor throughput (FLOP/s) and the share assumed sustained."""

    name: str
    peak_bf16: float
    utilisation: float

    @property
    def sustained(self) -> float:
        return self.peak_bf16 * self.utilisation


# Vendor datasheets (dense, no sparsity): H100 SXM 989 TFLOP/s bf16, A100 SXM 312 TFLOP/s.
# 40 % sustained is an assumption typical of ImageNet CNN training-like loops at batch 32-256.
GPUS = (Gpu("H100", 989e12, 0.40), Gpu("A100", 312e12, 0.40))


def pass_flops(model: nn.Module, size: int, channels: int = 3) -> tuple[float, float]:
    """(forward, backward) FLOPs of ``model`` on one ``size``×``size`` image, measured with
    ``FlopCounterMode``; the backward pass is the input gradient with parameters frozen."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, channels, size, size, requires_grad=True)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
    forward = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        out.float().sum().backward()
    return float(forward), float(counter.get_total_flops())


def architecture(arch: str, source: str) -> nn.Module:
    """An untrained network of a paper-zoo architecture (no weights needed to count FLOPs)."""
    if source == "timm":
        import timm

        return timm.create_model(arch, pretrained=False)
    if source == "robustness":
        from advlens.compat import robustness_architecture

        return robustness_architecture(arch)
    import torchvision.models

    return torchvision.models.get_model(arch, weights=None)


def measure_flops(configs: list, progress: bool = True) -> pd.DataFrame:
    """One row per architecture of ``configs``: forward and backward FLOPs per image."""
    from advlens.zoo.paper import PAPER_ARCHS

    rows, seen = [], set()
    for config in configs:
        if config.arch in seen:
            continue
        seen.add(config.arch)
        size = PAPER_ARCHS[config.arch].input_size
        fwd, bwd = pass_flops(architecture(config.arch, config.source), size)
        rows.append({"arch": config.arch, "source": config.source, "size": size,
                     "forward_gflops": fwd / 1e9, "backward_gflops": bwd / 1e9})
        if progress:
            print(f"{config.arch}: {fwd / 1e9:.2f} + {bwd / 1e9:.2f} GFLOPs", file=sys.stderr)
    return pd.DataFrame(rows)


def notebook_passes(knobs: Mapping[str, Mapping], zoo: list) -> pd.DataFrame:
    """Forward-only and forward+backward passes per (notebook, architecture) at the paper
    preset ``knobs`` (``{"00": {...}, "01": {...}, "02": {...}}``) over the paper ``zoo``."""
    rows = []

    def add(notebook: str, arch: str, what: str, fwd: float, fb: float) -> None:
        rows.append({"notebook": notebook, "arch": arch, "what": what, "fwd": fwd, "fwd_bwd": fb})

    k = knobs["00"]  # every model: clean accuracy + L2-PGD (10 steps) on robust_eval_n images
    for c in zoo:
        add("00", c.arch, "evaluate", 2 * k["robust_eval_n"], 10 * k["robust_eval_n"])
    k = knobs["01"]  # heatmaps: test reps, inversion, every model on every inverted set
    heat = [c for c in zoo if c.source == "robustness" and c.arch in k["heatmap_archs"]
            and c.eps == k["heatmap_eps"]]
    for c in heat:
        add("01", c.arch, "heatmap", k["n_data"] + k["n_pairs"] * (1 + len(heat)),
            k["n_pairs"] * k["iterations"])
    levels = [c for c in zoo if c.source == "robustness" and c.arch in k["robust_archs"]
              and c.eps in k["robust_eps"]]
    per_level = len(k["robust_archs"])
    for c in levels:
        add("01", c.arch, "robustness levels", k["n_data"] + k["robust_pairs"] * (1 + per_level),
            k["robust_pairs"] * k["iterations"])
    k = knobs["02"]  # attack suite per mode (untargeted + targeted) and the transfer matrix
    standard = [c for c in zoo if c.regime == "standard" and c.seed == 0]
    modes = 1 + len(k["target_modes"])
    per_image = (k["search_tries"] * (1 + k["ifgsm_steps"]) + k["cw_binary_steps"] * k["cw_steps"]
                 + k["ead_binary_steps"] * k["ead_steps"])
    for c in standard:
        n = k["n_images"]
        add("02", c.arch, "attack suite", n * (1 + modes * k["search_tries"]),
            n * modes * per_image)
        add("02", c.arch, "transfer", 2 * n * len(standard), 2 * n * k["transfer_steps"])
    return pd.DataFrame(rows)


def gpu_hours(passes: pd.DataFrame, flops: pd.DataFrame,
              gpus: tuple[Gpu, ...] = GPUS) -> pd.DataFrame:
    """Per notebook: passes, PFLOPs and estimated GPU-hours on each of ``gpus``."""
    table = passes.merge(flops, on="arch", how="left")
    if table["forward_gflops"].isna().any():
        missing = sorted(table.loc[table["forward_gflops"].isna(), "arch"].unique())
        raise ValueError(f"no FLOPs measured for {missing}; rerun measure_flops.")
    table["flops"] = 1e9 * (table["fwd"] * table["forward_gflops"]
                            + table["fwd_bwd"] * (table["forward_gflops"]
                                                  + table["backward_gflops"]))
    out = table.groupby("notebook").agg(fwd=("fwd", "sum"), fwd_bwd=("fwd_bwd", "sum"),
                                        flops=("flops", "sum")).reset_index()
    out["pflops"] = out["flops"] / 1e15
    for gpu in gpus:
        out[f"{gpu.name}_hours"] = out["flops"] / gpu.sustained / 3600
    return out.drop(columns="flops")


def markdown(hours: pd.DataFrame, gpus: tuple[Gpu, ...] = GPUS) -> str:
    """The README table."""
    head = ("| notebook | forward passes | forward+backward passes | PFLOPs | "
            + " | ".join(f"{g.name} GPU-hours" for g in gpus) + " |")
    lines = [head, "|" + "---|" * (4 + len(gpus))]
    for r in hours.itertuples():
        lines.append(f"| {r.notebook} | {r.fwd:.3g} | {r.fwd_bwd:.3g} | {r.pflops:.3g} | "
                     + " | ".join(f"{getattr(r, f'{g.name}_hours'):.2g}" for g in gpus) + " |")
    total = hours.sum(numeric_only=True)
    lines.append(f"| **all** | {total['fwd']:.3g} | {total['fwd_bwd']:.3g} | "
                 f"{total['pflops']:.3g} | "
                 + " | ".join(f"{total[f'{g.name}_hours']:.2g}" for g in gpus) + " |")
    assumed = "; ".join(f"{g.name} {g.peak_bf16 / 1e12:.0f} TFLOP/s bf16 dense × "
                        f"{g.utilisation:.0%} sustained (assumed)" for g in gpus)
    return "\n".join(lines) + f"\n\nThroughput: {assumed}.\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m advlens.cost [--flops CSV] [--save CSV]``: the paper preset's GPU-hours."""
    from advlens.presets import PRESETS
    from advlens.zoo.paper import published_configs

    parser = argparse.ArgumentParser(prog="python -m advlens.cost")
    parser.add_argument("--flops", help="reuse FLOPs measured before (CSV from --save)")
    parser.add_argument("--save", help="write the measured FLOPs to this CSV")
    args = parser.parse_args(argv)
    zoo = published_configs()
    flops = pd.read_csv(args.flops) if args.flops else measure_flops(zoo)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        flops.to_csv(args.save, index=False)
    knobs = {nb: PRESETS[nb]["paper"] for nb in ("00", "01", "02")}
    print(markdown(gpu_hours(notebook_passes(knobs, zoo), flops)))
    print("| architecture | source | input | forward GFLOPs | backward GFLOPs |")
    print("|---|---|---|---|---|")
    for r in flops.itertuples():
        print(f"| {r.arch} | {r.source} | {r.size} | {r.forward_gflops:.2f} | "
              f"{r.backward_gflops:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
