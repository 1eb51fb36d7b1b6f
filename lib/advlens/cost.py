"""Cost model of the ``paper`` preset: passes per notebook × FLOPs per pass → GPU-hours.

FLOPs of one forward and of one input-gradient backward pass (parameters frozen, as in attacks
and inversion) are *measured* per architecture on the CPU with
``torch.utils.flop_counter.FlopCounterMode`` (one image at its input size; multiply-adds count
2 FLOPs). The number of passes per notebook follows from the ``paper`` knobs in
:mod:`advlens.presets` and the paper zoo (:mod:`advlens.zoo.paper`), as upper bounds (every
image runs every iteration; early success or early stopping only lowers them). GPU-hours are
FLOPs / (peak dense throughput × an assumed sustained utilisation); the utilisation is an
assumption, stated in the table, not a measurement. The peak is that of the precision the code
computes in (:data:`PRECISION`): the zoo serves published models in fp32 (``accel.prepare(kind=
"inversion")``; :data:`advlens.accel.BF16_DEFAULT` keeps bf16 off for inversion and attacks), so
convolutions run on TF32 tensor cores (cuDNN's default), not bf16 ones at twice the rate; matrix
products run at the plain fp32 rate unless TF32 matmuls are enabled
(``torch.backends.cuda.matmul.allow_tf32``), so the hours of matmul-heavy models (ViT, Mixer)
are a floor.

Training steps (zoo models a ``paper`` notebook trains: notebook 04's CIFAR-10 / STL-10 models,
notebook 01's and 03's twin-cue ground-truth models) are measured the same way, one step of the
zoo's own training code (:func:`advlens.zoo.regimes.training_loss`, its input gradient for
harmonized models, the backward pass into the parameters), per image.

``python -m advlens.papers.costs`` prints the README table for notebooks 00-04 (notebook 04's
experiments are paper code, which this kernel module does not import).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from advlens.checks import frozen
from advlens.rng import seeded


@dataclass(frozen=True)
class Gpu:
    """A GPU's peak dense tensor throughput (FLOP/s) in ``precision`` and the share assumed
    sustained."""

    name: str
    peak: float
    utilisation: float
    precision: str = "TF32"

    @property
    def sustained(self) -> float:
        return self.peak * self.utilisation


# Vendor datasheets (dense, no sparsity), FLOP/s: H100 SXM bf16 989 T, TF32 494.7 T; A100 SXM
# bf16 312 T, TF32 156 T.
PEAKS: dict[str, dict[str, float]] = {"H100": {"bf16": 989e12, "TF32": 494.7e12},
                                      "A100": {"bf16": 312e12, "TF32": 156e12}}


def compute_precision() -> str:
    """The precision of the paper preset's passes: bf16 only if :mod:`advlens.accel` autocasts
    both inversion (how the zoo serves every published model) and attacks; else fp32, whose
    convolutions cuDNN runs in TF32."""
    from advlens.accel import BF16_DEFAULT

    return "bf16" if BF16_DEFAULT["inversion"] and BF16_DEFAULT["attacks"] else "TF32"


PRECISION = compute_precision()
# 40 % sustained is an assumption typical of ImageNet CNN training-like loops at batch 32-256.
GPUS = tuple(Gpu(name, peaks[PRECISION], 0.40, PRECISION) for name, peaks in PEAKS.items())


@contextlib.contextmanager
def _counted_attention() -> Iterator[None]:
    """Attention as matrix products while FLOPs are counted: on the CPU,
    ``F.scaled_dot_product_attention`` (timm's fused attention) runs a flash kernel that
    ``FlopCounterMode`` does not know, and its QKᵀ and AV products counted 0 FLOPs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def pass_flops(model: nn.Module, size: int, channels: int = 3) -> tuple[float, float]:
    """(forward, backward) FLOPs of ``model`` on one ``size``×``size`` image, measured with
    ``FlopCounterMode``; the backward pass is the input gradient with parameters frozen. The
    model's modes, ``requires_grad`` flags and the caller's random state are left as they were
    (they were left in eval mode, frozen, and the global RNG advanced)."""
    from torch.utils.flop_counter import FlopCounterMode

    with frozen(model), seeded(0):
        x = torch.rand(1, channels, size, size, requires_grad=True)
        counter = FlopCounterMode(display=False)
        with _counted_attention(), counter:
            out = model(x)
        forward = counter.get_total_flops()
        counter = FlopCounterMode(display=False)
        with _counted_attention(), counter:
            out.float().sum().backward()
    return float(forward), float(counter.get_total_flops())


class _NoModules:
    """Stands in for ``FlopCounterMode``'s module tracker, whose backward hooks break
    ``torch.autograd.grad`` on a leaf input (the harmonizer's saliency); totals need no
    per-module breakdown."""

    parents = ("Global",)

    def __enter__(self) -> _NoModules:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def train_step_flops(config: Any, batch: int = 2) -> float:
    """FLOPs per image of one training step of zoo ``config`` (forward, the regime's extra
    passes, backward into the parameters), measured with ``FlopCounterMode`` on random images
    of the config's data shape (``batch`` >= 2: BatchNorm trains on no fewer)."""
    from torch.utils.flop_counter import FlopCounterMode

    from advlens.zoo.architectures import DATASET_SHAPES, build_model
    from advlens.zoo.regimes import Batch, training_inputs, training_loss

    model = build_model(config.arch, config.dataset, seed=0, num_classes=config.num_classes)
    channels, size = DATASET_SHAPES[config.dataset]
    x = torch.rand(batch, channels, size, size)
    y = torch.arange(batch) % config.num_classes
    maps = torch.rand(batch, 1, size, size) if config.regime == "harmonized" else None
    step = Batch(x, y, None, maps)
    model.train()
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModules()
    with _counted_attention(), counter:
        inputs = training_inputs(model, step, config, torch.Generator().manual_seed(0))
        loss, _ = training_loss(model, step, inputs, config)
        loss.backward()
    return float(counter.get_total_flops()) / batch


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


def flops_key(config: Any) -> str:
    """The FLOPs-table row of a config: a published architecture by name; a trained zoo model
    by architecture, data set and regime (training FLOPs depend on the regime)."""
    if config.source != "trained":
        return config.arch
    return f"{config.arch} ({config.dataset}, {config.regime})"


def measure_flops(configs: Iterable[Any], progress: bool = True) -> pd.DataFrame:
    """One row per :func:`flops_key` of ``configs``: forward and input-gradient backward FLOPs
    per image, and for trained zoo models the FLOPs per image of a training step."""
    from advlens.zoo.architectures import DATASET_SHAPES, build_model
    from advlens.zoo.paper import PAPER_ARCHS

    rows, seen = [], set()
    for config in configs:
        key = flops_key(config)
        if key in seen:
            continue
        seen.add(key)
        train = float("nan")
        if config.source == "trained":
            channels, size = DATASET_SHAPES[config.dataset]
            model = build_model(config.arch, config.dataset, num_classes=config.num_classes)
            fwd, bwd = pass_flops(model, size, channels)
            train = train_step_flops(config)
        else:
            size = PAPER_ARCHS[config.arch].input_size
            fwd, bwd = pass_flops(architecture(config.arch, config.source), size)
        rows.append({"arch": key, "source": config.source, "size": size,
                     "forward_gflops": fwd / 1e9, "backward_gflops": bwd / 1e9,
                     "train_gflops": train / 1e9})
        if progress:
            print(f"{key}: {fwd / 1e9:.3g} + {bwd / 1e9:.3g} GFLOPs, train {train / 1e9:.3g}",
                  file=sys.stderr)
    return pd.DataFrame(rows)


# Labelled images per class (train, test) as released: CIFAR-10 and STL-10.
PER_CLASS = {"cifar10": (5000, 1000), "stl10": (500, 800)}


def split_size(config: Any, split: str) -> int:
    """Images in ``split`` ("train"/"test") of a trained zoo ``config``'s data (as
    :func:`advlens.zoo.datasets.dataset_for` cuts it), without loading them."""
    from advlens.data.twin_cue import DEFAULT_N

    n = config.n_train if split == "train" else config.n_test
    if config.dataset == "twin-cue":
        full = DEFAULT_N[split]
    elif config.dataset in PER_CLASS:
        full = PER_CLASS[config.dataset][split == "test"] * 10
    else:
        raise ValueError(f"no split sizes for {config.dataset!r}; the paper preset trains on "
                         f"twin-cue, {', '.join(PER_CLASS)}.")
    full = full if n is None else min(n, full)
    return full * len(config.classes) // 10 if config.classes is not None else full


def trained_passes(config: Any) -> tuple[int, int, int]:
    """(forward, forward+backward, training-step) images of training ``config`` and evaluating
    it as :func:`advlens.zoo.load` does: ``epochs`` × its training split; clean accuracy on its
    test split; the robust record (default :class:`~advlens.zoo.evaluation.RobustEval`: clean
    check, L2-PGD with its confirming forward, adversarial check)."""
    from advlens.zoo.evaluation import RobustEval

    robust = RobustEval()
    n_test = split_size(config, "test")
    n_robust = min(robust.n, n_test)
    return (n_test + 3 * n_robust, robust.steps * n_robust,
            config.epochs * split_size(config, "train"))


def _defaults(fn: Any) -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _halvings(width: float, target: float) -> int:
    k = 0
    while width > target:
        width, k = width / 2, k + 1
    return k


def tolerance_search_passes() -> tuple[int, int]:
    """(forward, forward+backward) passes per image of :func:`advlens.attacks.minimal_eps_pgd`
    at its defaults, every image running every round: eps_max, eps_mid, then the longer of the
    two bisections; per round ``steps`` passes and one check; a clean and a confirming
    forward."""
    from advlens.attacks import minimal_eps_pgd

    d = _defaults(minimal_eps_pgd)
    rounds = 2 + max(_halvings(d["eps_mid"] - d["eps_min"], d["width_low"]),
                     _halvings(d["eps_max"] - d["eps_mid"], d["width_high"]))
    return 2 + rounds, rounds * d["steps"]


def attack_passes(attack: str, ddn_steps: int) -> tuple[int, int]:
    """(forward, forward+backward) per image of notebook 03's attack (pgd search, or DDN with
    ``ddn_steps`` steps and its confirming forward)."""
    if attack == "pgd":
        return tolerance_search_passes()
    if attack == "ddn":
        return 1, ddn_steps
    raise ValueError(f"attack must be 'pgd' or 'ddn'; got {attack!r}.")


def alignment_passes(k: Mapping[str, Any], n: int, shown: bool,
                     accuracy: bool = False) -> tuple[int, int]:
    """(forward, forward+backward) of notebook 03 on one model and ``n`` images (upper bound:
    every image classified correctly): the correct mask, each attack, the saliency scores;
    ``shown``: the model of the qualitative panel (correct mask, the PGD search and saliency
    on ``n_show`` images); ``accuracy``: the x axis measured on the ``n`` images too (the
    stand-in sets; on ClickMe it is each model's ImageNet top-1, which the zoo measured once
    per weights file, counted under notebook 00)."""
    fwd, fb = (2 if accuracy else 1) * n, n
    for attack in k["attacks"]:
        f, b = attack_passes(attack, k["ddn_steps"])
        fwd, fb = fwd + n * f, fb + n * b
    if shown:
        f, b = tolerance_search_passes()
        fwd, fb = fwd + n + k["n_show"] * f, fb + k["n_show"] * (b + 1)
    return fwd, fb


def liang_passes(k: Mapping[str, Any], reference: Any,
                 sources: Sequence[Any]) -> dict[Any, tuple[int, int]]:
    """Notebook 04's measurement for one seed of one experiment (upper bound: the reference
    classifies every test image correctly): per model name (``reference`` or source position)
    its (forward, forward+backward) passes -- clean logits, one attack, the logit changes, the
    linear probe's features and test accuracy of each source, the reference's accuracy."""
    if k["probe"] != "linear":
        raise ValueError("the cost model counts linear probes only (the paper preset's).")
    n_test, n_train = split_size(reference, "test"), split_size(reference, "train")
    n = min(k["n_images"], n_test)
    attack = (1, 1) if k["alpha_attack"] == "fgsm" else (1, k["steps"])
    s = len(sources)
    # reference: its prediction on the test split and its accuracy; clean logits, its attack,
    # every source's perturbation and its own; a source: clean logits, its attack, its own
    # perturbation, the probe's features (train + validation split), the probe's output-layer
    # check (4 images through the probed model, 4 through the source's features) and the
    # probed model's test accuracy
    out: dict[Any, tuple[int, int]] = {
        "reference": (2 * n_test + (2 + attack[0] + s) * n, attack[1] * n)}
    for i in range(s):
        out[i] = ((2 + attack[0]) * n + n_train + 2 * 4 + n_test, attack[1] * n)
    return out


def notebook_passes(knobs: Mapping[str, Mapping], zoo: list,
                    experiments: Sequence[Any] = (), *,
                    val_images: int | None = None) -> pd.DataFrame:
    """Forward-only, forward+backward and training-step passes per (notebook, model) at the
    paper preset ``knobs`` (``{"00": {...}, ...}``; notebooks absent are skipped) over the paper
    ``zoo``. Notebook 04 needs its ``experiments`` (objects with ``reference`` and ``sources``
    holding ``config``: :func:`advlens.papers.liang2021.experiments_from_knobs`). The column
    ``arch`` is the model's :func:`flops_key`; ``config`` one config of it. ``val_images``: the
    ImageNet validation images each published model's top-1 accuracy is measured on (default
    :data:`advlens.zoo.paper.IMAGENET_VAL_IMAGES`)."""
    from advlens.zoo.paper import IMAGENET_VAL_IMAGES

    val_images = IMAGENET_VAL_IMAGES if val_images is None else val_images
    rows = []

    def add(notebook: str, config: Any, what: str, fwd: float, fb: float,
            train: float = 0) -> None:
        rows.append({"notebook": notebook, "arch": flops_key(config), "what": what, "fwd": fwd,
                     "fwd_bwd": fb, "train": train, "config": config})

    k = knobs.get("00")  # every model on robust_eval_n images: clean accuracy, then the robust
    for c in zoo if k else ():  # check (clean, L2-PGD with its confirming forward, adversarial)
        from advlens.zoo.evaluation import RobustEval

        add("00", c, "evaluate", 4 * k["robust_eval_n"], RobustEval().steps * k["robust_eval_n"])
        # a published model's top-1 accuracy on the whole validation folder: measured once per
        # weights file for every notebook that builds the paper zoo, counted here
        if c.source != "trained":
            add("00", c, "top-1 on the validation set", val_images, 0)
    k = knobs.get("01")  # (a) heatmaps, (b) robustness levels and unequal radii, (c) twin-cue
    if k:
        # an inversion of n pairs: the targets' and the last iterate's forward, n x iterations
        # forward+backward; (a) the test images twice (their CKA's CI and the matrix), every
        # model on every inverted set
        heat = [c for c in zoo if c.source == "robustness" and c.arch in k["heatmap_archs"]
                and c.eps == k["heatmap_eps"]]
        for c in heat:
            add("01", c, "heatmap", 2 * k["n_data"] + k["n_pairs"] * (2 + len(heat)),
                k["n_pairs"] * k["iterations"])
        levels = [c for c in zoo if c.source == "robustness" and c.arch in k["robust_archs"]
                  and c.eps in k["robust_eps"]]
        # (b) skips a radius with one architecture; the unequal-radius grid then runs each
        # inverted set through its model and every model of another architecture, any radius
        paired = [c for c in levels if any(o.eps == c.eps and o.arch != c.arch for o in levels)]
        for c in levels:
            judged = sum(r.arch != c.arch for r in paired)
            if c in paired:  # test images, the inversion, the radius' models on its sets
                level = sum(o.eps == c.eps for o in levels)
                add("01", c, "robustness levels",
                    k["n_data"] + k["robust_pairs"] * (2 + level + 1 + judged),
                    k["robust_pairs"] * k["iterations"])
            elif judged:
                add("01", c, "robustness levels", k["robust_pairs"] * judged, 0)
        # compare_freeze: (b)'s lowest and highest paired radius again, freeze_at_bounds=True
        # (the test images, the inversion, the radius' models on its sets; the unequal-radius
        # grid is not rerun)
        radii = sorted({c.eps for c in paired})
        for c in paired if k.get("compare_freeze") and radii else ():
            if c.eps in (radii[0], radii[-1]):
                level = sum(o.eps == c.eps for o in levels)
                add("01", c, "freeze_at_bounds rerun",
                    k["n_data"] + k["robust_pairs"] * (2 + level),
                    k["robust_pairs"] * k["iterations"])
        from advlens.zoo import spec

        twin = [c.replace(twin_design=k["twin_design"]) for c in spec(k["twin_zoo"])
                if c.dataset == "twin-cue" and c.arch == "cnn-s" and c.regime == "standard"
                and c.variant in ("a-only", "b-only", "both")]
        for c in twin:  # (c) trained; accuracy, CKA and representations of the test images,
            # the inversion, every model on every inverted set (CKA, then its predictions); a cue
            # model's accuracy on its own variant too
            own = k["twin_n"] if c.variant in ("a-only", "b-only") else 0
            add("01", c, "twin-cue: train + evaluate", *trained_passes(c))
            add("01", c, "twin-cue",
                3 * k["twin_n"] + own + k["twin_pairs"] * (2 + 2 * len(twin)),
                k["twin_pairs"] * k["twin_iterations"])
    k = knobs.get("02")  # attack suite per mode (untargeted + targeted) and the transfer matrix
    if k:
        standard = [c for c in zoo if c.regime == "standard" and c.seed == 0]
        modes = 1 + len(k["target_modes"])
        per_image = (k["search_tries"] * (1 + k["ifgsm_steps"])
                     + k["cw_binary_steps"] * k["cw_steps"]
                     + k["ead_binary_steps"] * k["ead_steps"])
        # forward-only per image and mode: the FGSM and I-FGSM searches each a clean check, one
        # check a try and a confirming forward; C&W and EAD a confirming forward each
        checks = 2 * (2 + k["search_tries"]) + 2
        n = k["n_images"]
        for i, c in enumerate(standard):
            # the correct mask, each targeted mode's target choice, the attacks
            add("02", c, "attack suite", n * (modes + modes * checks), n * modes * per_image)
            # untargeted and targeted: clean predictions, I-FGSM's confirming forward, every
            # source's examples; random targets are drawn once, on the first model
            chosen = n if k["transfer_target_mode"] != "random" or i == 0 else 0
            add("02", c, "transfer", 2 * n * (2 + len(standard)) + chosen,
                2 * n * k["transfer_steps"])
    k = knobs.get("03")  # every ImageNet model of the zoo on the ClickMe pool; twin-cue check
    if k:
        from advlens.zoo import spec
        from advlens.zoo.evaluation import RobustEval

        if k["datasets"] != ["clickme"]:
            raise ValueError("the cost model counts notebook 03 on ClickMe (the paper preset).")
        scored = [c for c in zoo if c.dataset == "imagenet"
                  and (k["archs"] is None or c.arch in k["archs"])]
        robust = RobustEval()  # the zoo loads at its default robust setting (once per file)
        for i, c in enumerate(scored):
            add("03", c, "zoo evaluation", 4 * robust.n, robust.steps * robust.n)
            add("03", c, "tolerance and alignment",
                *alignment_passes(k, k["n_images"], shown=i == 0))
        twin = [c for c in spec(k["twin_zoo"]) if c.dataset == "twin-cue"
                and c.variant == "both"]
        for c in twin:
            add("03", c, "twin-cue: train + evaluate", *trained_passes(c))
            add("03", c, "twin-cue: cue reliance", 3 * k["twin_n"], k["twin_n"])
    k = knobs.get("04")  # per seed: train reference + sources, alpha attacks, linear probes
    if k and experiments:
        references = dict.fromkeys(e.reference for e in experiments)  # trained once a seed
        for _seed in k["seeds"]:
            for ref in references:
                add("04", ref, "train + evaluate (reference)", *trained_passes(ref))
            for e in experiments:
                for src in e.sources:
                    add("04", src.config, "train + evaluate (source)",
                        *trained_passes(src.config))
                counted = liang_passes(k, e.reference, [s.config for s in e.sources])
                add("04", e.reference, "alpha + probes", *counted["reference"])
                for i, src in enumerate(e.sources):
                    add("04", src.config, "alpha + probes", *counted[i])
    return pd.DataFrame(rows)


def gpu_hours(passes: pd.DataFrame, flops: pd.DataFrame,
              gpus: tuple[Gpu, ...] = GPUS) -> pd.DataFrame:
    """Per notebook: passes, PFLOPs and estimated GPU-hours on each of ``gpus``."""
    passes = passes.assign(train=passes["train"] if "train" in passes else 0.0)
    flops = flops.assign(train_gflops=flops["train_gflops"] if "train_gflops" in flops
                         else float("nan"))
    table = passes.merge(flops, on="arch", how="left")
    missing = table["forward_gflops"].isna() | ((table["train"] > 0)
                                                & table["train_gflops"].isna())
    if missing.any():
        names = sorted(table.loc[missing, "arch"].unique())
        raise ValueError(f"no FLOPs measured for {names}; rerun measure_flops.")
    table["flops"] = 1e9 * (table["fwd"] * table["forward_gflops"]
                            + table["fwd_bwd"] * (table["forward_gflops"]
                                                  + table["backward_gflops"])
                            + table["train"] * table["train_gflops"].fillna(0.0))
    out = table.groupby("notebook").agg(fwd=("fwd", "sum"), fwd_bwd=("fwd_bwd", "sum"),
                                        train=("train", "sum"),
                                        flops=("flops", "sum")).reset_index()
    out["pflops"] = out["flops"] / 1e15
    for gpu in gpus:
        out[f"{gpu.name}_hours"] = out["flops"] / gpu.sustained / 3600
    return out.drop(columns="flops")


def markdown(hours: pd.DataFrame, gpus: tuple[Gpu, ...] = GPUS) -> str:
    """The README table."""
    head = ("| notebook | forward passes | forward+backward passes | training steps (images) "
            "| PFLOPs | " + " | ".join(f"{g.name} GPU-hours" for g in gpus) + " |")
    lines = [head, "|" + "---|" * (5 + len(gpus))]
    for r in hours.itertuples():
        lines.append(f"| {r.notebook} | {r.fwd:.3g} | {r.fwd_bwd:.3g} | {r.train:.3g} | "
                     f"{r.pflops:.3g} | "
                     + " | ".join(f"{getattr(r, f'{g.name}_hours'):.2g}" for g in gpus) + " |")
    total = hours.sum(numeric_only=True)
    lines.append(f"| **all** | {total['fwd']:.3g} | {total['fwd_bwd']:.3g} | "
                 f"{total['train']:.3g} | {total['pflops']:.3g} | "
                 + " | ".join(f"{total[f'{g.name}_hours']:.2g}" for g in gpus) + " |")
    assumed = "; ".join(f"{g.name} {g.peak / 1e12:.0f} TFLOP/s {g.precision} dense × "
                        f"{g.utilisation:.0%} sustained (assumed)" for g in gpus)
    return "\n".join(lines) + f"\n\nThroughput: {assumed}.\n"


def flops_markdown(flops: pd.DataFrame) -> str:
    """The per-architecture FLOPs table printed below the README table."""
    lines = ["| model | source | input | forward GFLOPs | backward GFLOPs | training step "
             "GFLOPs |", "|---|---|---|---|---|---|"]
    for r in flops.itertuples():
        train = "" if math.isnan(r.train_gflops) else f"{r.train_gflops:.3g}"
        lines.append(f"| {r.arch} | {r.source} | {r.size} | {r.forward_gflops:.3g} | "
                     f"{r.backward_gflops:.3g} | {train} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the earlier entry point
    sys.exit("advlens: the cost table is printed by `python -m advlens.papers.costs` (it needs "
             "notebook 04's experiment list, which is paper code).")
