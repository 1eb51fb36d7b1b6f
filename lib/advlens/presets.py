"""Presets: the knobs of every notebook at three scales.

- ``smoke``: seconds per notebook on a CPU; the tests run every notebook with it.
- ``laptop`` (default): the real comparison on the embedded data, on a 2-core CPU.
- ``paper``: the published protocol and scale (real data and checkpoints, a GPU).

A notebook's ``parameters`` cell names every knob with ``None`` meaning "take it from the
preset"; :func:`resolve` merges the two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from advlens.data.twin_cue import DESIGNS as TWIN_CUE_DESIGNS

PRESET_NAMES = ("smoke", "laptop", "paper")

def _liang_presets() -> dict[str, dict[str, Any]]:
    """Notebook 04's knobs (Liang et al.): experiments A (class subsets; digits and twin-cue)
    and B (zoo families) on the embedded data; the paper preset is CIFAR-10 -> STL-10."""
    common = {"seed": 0, "arch": "cnn-s", "a_target": [5, 6, 7, 8], "a_other": [0, 1, 2, 3],
              "b_source": [0, 1, 2, 3, 4], "b_target": [5, 6, 7, 8, 9],
              "alpha_attack": "pgd", "eps": 0.1, "step_fraction": 0.1, "probe": "linear",
              "probe_lr": 0.01, "val_fraction": 0.2, "squared_alpha2": False,
              "batch_size": 256, "train_batch_size": 32, "liang_data": "embedded",
              "cifar_kw": {}, "stl10_kw": {}, "twin_n_test": 1000}
    smoke = {**common, "seeds": [0, 1], "experiments": ["A-digits", "B-digits"], "epochs": 2,
             "digits_n_train": 600, "twin_epochs": 1, "twin_n_train": 400, "twin_n_test": 200,
             "b_archs": {"mlp-s": 2, "cnn-s": 2}, "steps": 5, "n_images": 64,
             "probe_epochs": 5, "n_boot": 50}
    # 3 seeds; the standard laptop-zoo epochs per family (enough to converge on digits)
    laptop = {**common, "seeds": [0, 1, 2], "experiments": ["A-digits", "A-twin-cue", "B-digits"],
              "epochs": 30, "digits_n_train": None, "twin_epochs": 8, "twin_n_train": 3000,
              "b_archs": {"mlp-s": 30, "cnn-s": 30, "vgg-xs": 20, "resnet8-xs": 20,
                          "vit-xs": 40, "convmixer-xs": 20},
              "steps": 50, "n_images": 300, "probe_epochs": 50, "n_boot": 2000}
    # the published protocol: CIFAR-10 sources on the paper's class lists, the STL-10 animals
    # reference (ResNet-18), five architectures; PGD 50 steps of 0.1·eps at eps 0.1; a GPU
    # ($ADVLENS_DEVICE=cuda) for training
    paper = {**laptop, "liang_data": "cifar10-stl10", "cifar_kw": {"root": "$ADVLENS_CIFAR10"},
             "stl10_kw": {"root": "$ADVLENS_STL10"}, "n_images": 1000,
             "experiments": ["A-cifar10-stl10", "B-cifar10-stl10"], "arch": "tv-resnet18",
             "epochs": 30, "train_batch_size": 128,
             "b_archs": {"fcnet": 30, "lenet": 30, "alexnet": 30, "tv-resnet18": 30,
                         "tv-resnet50": 30}}
    return {"smoke": smoke, "laptop": laptop, "paper": paper}


# One table per notebook: knob -> value per preset. Each notebook owns its section.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # --- 00: data and zoo -------------------------------------------------------------------
    "00": {
        "smoke": {"seed": 0, "n_show": 4, "robust_eval_eps": 0.5, "robust_eval_n": 64,
                   "data_n": 300, "zoo_preset": "smoke"},
        "laptop": {"seed": 0, "n_show": 8, "robust_eval_eps": 0.5, "robust_eval_n": 500,
                   "data_n": 2000, "zoo_preset": "laptop"},
        "paper": {"seed": 0, "n_show": 8, "robust_eval_eps": 0.25, "robust_eval_n": 1000,
                   "data_n": 2000, "zoo_preset": "paper"},
    },
    # --- 01: Jones et al. similarity on inverted data ----------------------------------------
    "01": {
        "smoke": {"seed": 0, "zoo": "smoke", "twin_zoo": "smoke", "dataset": "digits",
                  "data_split": "test", "data_kw": {}, "n_data": 128,
                  "heatmap_archs": ["mlp-s", "cnn-s", "vgg-xs", "resnet8-xs"], "heatmap_eps": 0.0,
                  "robust_archs": ["cnn-s", "mlp-s"], "robust_eps": [0.0, 0.5], "robust_pairs": 32,
                  "n_pairs": 32, "iterations": 20, "step_size": 0.125, "batch_size": 32,
                  "twin_n": 200, "twin_pairs": 32, "twin_iterations": 20, "n_boot": 50,
                  "compare_freeze": True, "n_show": 3,
                  "zoo_seed": 0, "twin_design": "latent"},
        "laptop": {"seed": 0, "zoo": "laptop", "twin_zoo": "laptop", "dataset": "digits",
                   "data_split": "test", "data_kw": {}, "n_data": None,
                   "heatmap_archs": ["mlp-m", "cnn-m", "vgg-s", "resnet8-xs", "vit-xs",
                                     "convmixer-xs"], "heatmap_eps": 0.0,
                   "robust_archs": ["cnn-m", "vgg-xs", "resnet8-xs", "mlp-l"],
                   "robust_eps": [0.0, 0.25, 0.5, 1.0], "robust_pairs": 128,
                   "n_pairs": 256, "iterations": 200, "step_size": 0.125, "batch_size": 128,
                   "twin_n": 1000, "twin_pairs": 128, "twin_iterations": 150, "n_boot": 500,
                   "compare_freeze": True, "n_show": 6,
                  "zoo_seed": 0, "twin_design": "latent"},
        # the published protocol: 2000 iterations, step 1/8, batch 32, the Salman et al. (2020)
        # ImageNet models; the twin-cue check is our construct and stays at laptop scale
        "paper": {"seed": 0, "zoo": "paper", "twin_zoo": "laptop", "dataset": "imagenet",
                  "data_split": "val",
                  "data_kw": {"root": "$ADVLENS_IMAGENET", "size": 224, "max_per_class": 2},
                  "n_data": 2000,
                  "heatmap_archs": ["densenet161", "mobilenet_v2", "resnext50_32x4d", "resnet18",
                                    "resnet50", "shufflenet_v2_x1_0", "vgg16_bn",
                                    "wide_resnet50_2", "wide_resnet50_4"], "heatmap_eps": 0.0,
                  "robust_archs": ["resnet18", "resnet50", "wide_resnet50_2", "wide_resnet50_4"],
                  "robust_eps": [0.0, 0.01, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 5.0],
                  "robust_pairs": 1024, "n_pairs": 1024, "iterations": 2000, "step_size": 0.125,
                  "batch_size": 32,
                  "twin_n": 1000, "twin_pairs": 128, "twin_iterations": 2000, "n_boot": 2000,
                  "compare_freeze": False, "n_show": 6,
                  "zoo_seed": 0, "twin_design": "latent"},
    },
    # --- 02: Su et al. robustness vs accuracy -----------------------------------------------
    "02": {
        # seconds: the smoke zoo, a few images, a handful of iterations per attack
        "smoke": {"seed": 0, "zoo": "smoke", "dataset": "digits", "data_split": "test",
                  "data_kw": {}, "archs": None, "extra_models": [], "n_images": 24,
                  "search_tries": 4,
                  "search_start": 0.02, "ifgsm_steps": 5, "cw_binary_steps": 2, "cw_steps": 10,
                  "cw_lr": 0.05, "cw_initial_const": 1.0, "ead_binary_steps": 2,
                  "ead_steps": 10, "ead_lr": 0.01, "ead_initial_const": 0.1, "ead_beta": 1e-3,
                  "target_modes": ["random"], "depth_pairs": [["resnet8", "resnet14"]],
                  "transfer_eps": 0.1, "transfer_steps": 5, "transfer_target_mode": "random",
                  "transfer_targeted_metric": "success",
                  "n_boot": 50, "batch_size": 256, "zoo_seed": 0,
                  "family_models": [
                      {"arch": "cnn-s", "n_train": 400, "epochs": 2, "batch_size": 32,
                       "tag": "n400"},
                      {"arch": "cnn-s", "n_train": 800, "epochs": 1, "batch_size": 32,
                       "tag": "n800-e1"}]},
        # the standard digits models of the laptop zoo (+ a ResNet-14 for a depth-only pair);
        # Su et al.'s search and attacks with
        # fewer iterations (C&W: 3 constants from c = 1 × 30 Adam steps of lr 0.05; EAD: 3 × 30
        # FISTA steps; I-FGSM: 10 steps); targeted transfer as top-1 (top-5 of 10 classes is
        # half the classes)
        "laptop": {"seed": 0, "zoo": "laptop", "dataset": "digits", "data_split": "test",
                   "data_kw": {}, "archs": None,
                   "extra_models": [{"arch": "resnet14", "epochs": 20}], "n_images": 64,
                   "search_tries": 9,
                   "search_start": 0.02, "ifgsm_steps": 10, "cw_binary_steps": 3,
                   "cw_steps": 30, "cw_lr": 0.05, "cw_initial_const": 1.0,
                   "ead_binary_steps": 3, "ead_steps": 30, "ead_lr": 0.01,
                   "ead_initial_const": 0.1, "ead_beta": 1e-3, "target_modes": [],
                   "depth_pairs": [["resnet8", "resnet14"]], "transfer_eps": 0.1,
                   "transfer_steps": 10, "transfer_target_mode": "random",
                   "transfer_targeted_metric": "success", "n_boot": 1000,
                   "batch_size": 256, "zoo_seed": 0,
                   # one architecture per family trained to other errors: 150 or 500 training
                   # images (the family's zoo epochs), or one epoch on all of them
                   "family_models": [
                       {"arch": a, "n_train": n, "epochs": e, "tag": f"n{n}"}
                       for a, e in (("mlp-m", 30), ("cnn-m", 30), ("vgg-xs", 20),
                                    ("resnet8-xs", 20)) for n in (150, 500)]
                   + [{"arch": a, "epochs": 1, "tag": "e1"}
                      for a in ("mlp-m", "cnn-m", "vgg-xs", "resnet8-xs")]},
        # the published protocol: 1000 correctly classified ImageNet images, I-FGSM 50 steps,
        # C&W 9 × 1000 (lr 0.001, c0 0.01), EAD β 1e-3, untargeted + 3 targeted modes
        "paper": {"seed": 0, "zoo": "paper", "dataset": "imagenet", "data_split": "val",
                  "data_kw": {"root": "$ADVLENS_IMAGENET", "size": 224, "max_per_class": 2},
                  "archs": None, "extra_models": [], "n_images": 1000, "search_tries": 9,
                  "search_start": 0.02,
                  "ifgsm_steps": 50, "cw_binary_steps": 9, "cw_steps": 1000, "cw_lr": 0.001,
                  "cw_initial_const": 0.01, "ead_binary_steps": 9, "ead_steps": 1000,
                  "ead_lr": 0.01, "ead_initial_const": 0.01, "ead_beta": 1e-3,
                  "target_modes": ["least-likely", "top-2", "random"],
                  "depth_pairs": [["resnet18.tv_in1k", "resnet50.tv_in1k"],
                                  ["resnet50.tv_in1k", "resnet101.tv_in1k"],
                                  ["vgg16.tv_in1k", "vgg19.tv_in1k"]], "transfer_eps": 16 / 255,
                  "transfer_steps": 50, "transfer_target_mode": "random",
                  "transfer_targeted_metric": "top5", "n_boot": 2000,
                  "batch_size": 64, "zoo_seed": 0, "family_models": []},
    },
    # --- 05: seed sweep of the other notebooks ------------------------------------------------
    # each seed s reruns the listed notebooks (those that exist) with seed = zoo_seed = s
    "05": {
        "smoke": {"seeds": [0, 1], "sweep_notebooks": ["01", "02"], "sweep_dir": None},
        "laptop": {"seeds": [0, 1, 2], "sweep_notebooks": ["01", "02", "03", "04"],
                   "sweep_dir": None},
        "paper": {"seeds": [0, 1, 2], "sweep_notebooks": ["01", "02", "03", "04"],
                  "sweep_dir": None},
    },
    # --- 03: Linsley et al. adversarial alignment -------------------------------------------
    # datasets: digits (stroke maps) and twin-cue (shape-cue maps) are stand-ins for ClickMe,
    # scored with the zoo's own models; "clickme" = the real ClickMe files with the paper zoo's
    # ImageNet models. The twin-cue ground truth always uses the twin_zoo's twin-cue models.
    "03": {
        "smoke": {"seed": 0, "zoo": "smoke", "twin_zoo": "smoke",
                  "datasets": ["digits", "twin-cue"], "data_kw": {}, "archs": None,
                  "n_images": 16, "attacks": ["pgd", "ddn"], "ddn_steps": 10,
                  "batch_size": 64, "n_boot": 50, "twin_n": 100, "n_show": 3},
        "laptop": {"seed": 0, "zoo": "laptop", "twin_zoo": "laptop",
                   "datasets": ["digits", "twin-cue"], "data_kw": {}, "archs": None,
                   "n_images": 200, "attacks": ["pgd", "ddn"], "ddn_steps": 100,
                   "batch_size": 256, "n_boot": 1000, "twin_n": 1000, "n_show": 6},
        # the published protocol: ClickMe images and maps (one image per class), every model of
        # the paper zoo (timm/torchvision ImageNet classifiers, the Salman et al. robust models;
        # harmonized checkpoints join the arrows when the paper zoo lists their plain twins)
        "paper": {"seed": 0, "zoo": "paper", "twin_zoo": "laptop", "datasets": ["clickme"],
                  "data_kw": {"path": "$ADVLENS_CLICKME", "size": 224}, "archs": None,
                  "n_images": 1000, "attacks": ["pgd", "ddn"], "ddn_steps": 100,
                  "batch_size": 32, "n_boot": 2000, "twin_n": 1000, "n_show": 6},
    },
    # --- 04: Liang et al. adversarial vs knowledge transferability ------------------------------
    "04": _liang_presets(),
}


# Knobs whose value must be one of a list (checked with the types, before anything runs).
CHOICES: dict[str, tuple[str, ...]] = {"zoo": PRESET_NAMES, "twin_zoo": PRESET_NAMES,
                                       "twin_design": TWIN_CUE_DESIGNS,
                                       "zoo_preset": PRESET_NAMES,
                                       "alpha_attack": ("pgd", "fgsm"),
                                       "probe": ("linear", "finetune"),
                                       "liang_data": ("embedded", "cifar10-stl10")}


def _kind(value: Any) -> str:
    """The type family a knob's value belongs to (ints pass for floats, tuples for lists)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def check_knob(notebook: str, name: str, value: Any) -> None:
    """Raise a TypeError/ValueError naming the knob if ``value`` does not fit ``notebook``'s knob.

    The expected type is that of the knob's value in the presets (``None`` in a preset means the
    knob is optional there); knobs in :data:`CHOICES` must also take one of the listed values.
    """
    if value is None:
        return
    examples = [table[name] for table in PRESETS[notebook].values() if name in table]
    kinds = {_kind(v) for v in examples if v is not None}
    if kinds and _kind(value) not in kinds:
        expected = " or ".join(sorted(kinds))
        if any(v is None for v in examples):
            expected += " (or None for the preset's value)"
        raise TypeError(f"notebook {notebook}: knob {name!r} = {value!r} has type "
                        f"{type(value).__name__}; expected {expected}, like the presets' "
                        f"{examples[0]!r}.")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r}; choose one of "
                         f"{', '.join(CHOICES[name])}.")


class Knobs(dict):
    """A notebook's knobs: a plain dict that prints as a compact table (one knob a line, long
    values shortened, absolute paths shown by their last part) for a notebook's first cell."""

    def __str__(self) -> str:
        width = max((len(k) for k in self), default=0)
        return "\n".join(f"{k:<{width}}  {_short(v)}" for k, v in self.items())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython shows ``P`` (a cell's last expression) as the same table."""
        printer.text(str(self))


def _short(value: Any, limit: int = 70) -> str:
    """``repr(value)`` with absolute paths cut to ``…/name`` and at most ``limit`` characters."""
    text = re.sub(r"(?<![\w.])/(?:[^/\s'\"]+/)+([^/\s'\"]+)", r"…/\1", repr(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def resolve(notebook: str, preset: str, **overrides: Any) -> Knobs:
    """The knobs of ``notebook`` at ``preset``, with every non-``None`` override applied.

    Raises ValueError for an unknown preset, notebook or knob, naming the valid ones, and
    TypeError for an override of the wrong type (see :func:`check_knob`).
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
    if notebook not in PRESETS:
        raise ValueError(f"no presets for notebook {notebook!r}; known: {sorted(PRESETS)}.")
    knobs = Knobs(PRESETS[notebook][preset])
    unknown = sorted(set(overrides) - set(knobs) - {"preset"})
    if unknown:
        raise ValueError(f"notebook {notebook} has no knob(s) {unknown}; knobs: {sorted(knobs)}.")
    for name, value in overrides.items():
        if name != "preset":
            check_knob(notebook, name, value)
    knobs.update({k: v for k, v in overrides.items() if v is not None and k != "preset"})
    knobs["preset"] = preset
    return knobs


def from_namespace(notebook: str, namespace: Mapping[str, Any]) -> Knobs:
    """:func:`resolve` with the preset and overrides read from a notebook's namespace.

    The one line under a notebook's ``parameters`` cell: ``P = presets.from_namespace("01",
    globals())`` -- every knob of the notebook's preset table that the namespace defines (the
    ``parameters`` cell sets each to ``None``, papermill injects the overrides) is applied.
    """
    preset = namespace.get("preset", "laptop")
    names = set().union(*(table.keys() for table in PRESETS.get(notebook, {}).values()))
    return resolve(notebook, preset, **{k: namespace[k] for k in names if k in namespace})
