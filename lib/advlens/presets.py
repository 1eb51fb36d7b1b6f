"""Presets: the knobs of every notebook at three scales.

- ``smoke``: seconds per notebook on a CPU; the tests run every notebook with it.
- ``laptop`` (default): the real comparison on the embedded data, on a 2-core CPU.
- ``paper``: the published protocol and scale (real data and checkpoints, a GPU).

A notebook's ``parameters`` cell names every knob with ``None`` meaning "take it from the
preset"; :func:`resolve` merges the two.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from advlens.attacks.cw import ADAM_EPS
from advlens.attacks.pgd import LOSSES as SEARCH_LOSSES
from advlens.attacks.targets import TARGET_MODES
from advlens.data.twin_cue import DESIGNS as TWIN_CUE_DESIGNS
from advlens.probes import RECIPES as PROBE_RECIPES
from advlens.transfer import ALPHA_DIRECTIONS

PRESET_NAMES = ("smoke", "laptop", "paper")

# Training epochs of the laptop zoo's digits models (standard and harmonized, per architecture;
# L2 adversarially trained: all architectures), read by the zoo spec and by notebooks 02's and
# 04's own models. 4x the epochs used up to the thirty-first session: benchmarks/bench_epochs.py
# found models stopped far from their plateau there (cnn-s test accuracy 0.874 -> 0.970 at 4x,
# resnet8-xs at eps 1 0.844 -> 0.985); at 4x, each of the 20 models also run at 8x is within 4
# test images (0.0101) of its 8x clean test accuracy. Notebook 04's sources (batch 32, class
# subsets) take the same table by analogy.
DIGITS_EPOCHS = {"mlp-xs": 120, "mlp-s": 120, "mlp-m": 120, "mlp-l": 120, "mlp-xl": 120,
                 "cnn-xs": 120, "cnn-s": 120, "cnn-m": 120, "cnn-l": 120, "cnn-xl": 80,
                 "vgg-xs": 80, "vgg-s": 120, "resnet8-xs": 80, "resnet8": 80, "vit-xs": 160,
                 "convmixer-xs": 80}
DIGITS_AT_EPOCHS = 80


def _liang_presets() -> dict[str, dict[str, Any]]:
    """Notebook 04's knobs (Liang et al.): experiments A (class subsets; digits and twin-cue)
    and B (zoo families) on the embedded data; the paper preset is CIFAR-10 -> STL-10."""
    common = {"seed": 0, "arch": "cnn-s", "a_target": [5, 6, 7, 8], "a_other": [0, 1, 2, 3],
              "b_source": [0, 1, 2, 3, 4], "b_target": [5, 6, 7, 8, 9], "b_reference_arch": "cnn-s",
              "alpha_attack": "pgd", "alpha_direction": "source-to-reference", "eps": 0.1,
              "step_fraction": 0.1, "probe": "linear",
              # the probe: a logistic regression fitted to convergence, its weight decay
              # chosen on the validation split (probe_epochs: its most L-BFGS iterations;
              # AdamW's 50 epochs stopped the sources short, by up to 0.29 in a seed's accuracy)
              "probe_lr": 0.01, "probe_recipe": "lbfgs", "b_probe_epochs": None,
              "val_fraction": 0.2,
              "squared_alpha2": False,
              "batch_size": 256, "train_batch_size": 32, "liang_data": "embedded",
              "cifar_kw": {}, "stl10_kw": {}, "twin_n_test": 1000}
    smoke = {**common, "seeds": [0, 1], "experiments": ["A-digits", "B-digits"], "epochs": 2,
             "digits_n_train": 600, "twin_epochs": 1, "twin_n_train": 400, "twin_n_test": 200,
             "b_archs": {"mlp-s": 2, "cnn-s": 2}, "steps": 5, "n_images": 64,
             "probe_epochs": 200, "n_boot": 50}
    # 3 seeds; the laptop zoo's epochs per architecture (DIGITS_EPOCHS)
    laptop = {**common, "seeds": [0, 1, 2], "experiments": ["A-digits", "A-twin-cue", "B-digits"],
              "epochs": DIGITS_EPOCHS[common["arch"]], "digits_n_train": None, "twin_epochs": 8,
              "twin_n_train": 3000,
              "b_archs": {a: DIGITS_EPOCHS[a] for a in ("mlp-s", "cnn-s", "vgg-xs", "resnet8-xs",
                                                         "vit-xs", "convmixer-xs")},
              "steps": 50, "n_images": 300, "probe_epochs": 1000, "n_boot": 2000}
    # the published protocol (their cmd.sh): CIFAR-10 sources on the paper's class lists with
    # the STL-10 animals reference (ResNet-18; A), five architectures with a ten-class STL-10
    # reference (ResNet-50; B); PGD 50 steps of 0.1·eps at eps 0.1; the linear probe as their
    # image_exp/transfer.py trains it (SGD at 0.1 annealed over 10 epochs: its default for A,
    # the --epoch 10 of their cmd.sh for B; exp1/transfer.py's default 300 belongs to the
    # earlier release with other class lists; features computed once, without its crop and
    # flip); α over every test image the reference gets right, as their know2adv.py /
    # adv2know.py loop over the whole STL-10 test loader (n_images: STL-10's 8,000, 800 a
    # class; experiment A's four classes hold 3,200); a GPU ($ADVLENS_DEVICE=cuda) for training
    paper = {**laptop, "liang_data": "cifar10-stl10", "cifar_kw": {"root": "$ADVLENS_CIFAR10"},
             "stl10_kw": {"root": "$ADVLENS_STL10"}, "n_images": 10 * 800,
             "experiments": ["A-cifar10-stl10", "B-cifar10-stl10"], "arch": "resnet18-cifar",
             "b_reference_arch": "resnet50-cifar",
             "epochs": 100, "train_batch_size": 64,
             "probe_recipe": "liang", "probe_lr": 0.1, "probe_epochs": 10,
             "b_probe_epochs": 10,
             "b_archs": {"fcnet": 100, "lenet": 100, "alexnet": 100, "resnet18-cifar": 100,
                         "resnet50-cifar": 100}}
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
        # ImageNet models; (b)'s end radii rerun with freeze_at_bounds (the reference code's path on
        # a torch whose clamp has zero gradient at its bounds, not on the paper's PyTorch 1.x)
        # (compare_freeze: PROTOCOLS §1 asks notebook 01 to show whether it changes the
        # conclusions, and the paper's own models are where it can); the twin-cue check is our
        # construct: laptop models and images, inverted for the published 2000 iterations
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
                  "compare_freeze": True, "n_show": 6,
                  "zoo_seed": 0, "twin_design": "latent"},
    },
    # --- 02: Su et al. robustness vs accuracy -----------------------------------------------
    "02": {
        # seconds: the smoke zoo, a few images, a handful of iterations per attack
        "smoke": {"seed": 0, "zoo": "smoke", "dataset": "digits", "data_split": "test",
                  "data_kw": {}, "archs": None, "extra_models": [], "n_images": 24,
                  "search_tries": 4, "search_start": 0.02, "search_loss": "logit",
                  "ifgsm_steps": 5, "cw_binary_steps": 2, "cw_steps": 10,
                  "cw_lr": 0.05, "cw_initial_const": 1.0, "cw_adam_eps": "outside",
                  "ead_binary_steps": 2,
                  "ead_steps": 10, "ead_lr": 0.01, "ead_initial_const": 0.1, "ead_beta": 1e-3,
                  # (the smoke zoo has no depth-only pair: finding 3 is laptop's and paper's)
                  "target_modes": ["random"], "depth_pairs": [],
                  "transfer_eps": 0.1, "transfer_steps": 5, "transfer_target_mode": "random",
                  "transfer_targeted_metric": "success", "transfer_only_successful": False,
                  "n_boot": 50, "batch_size": 256, "zoo_seed": 0,
                  "family_models": [
                      {"arch": "cnn-s", "n_train": 400, "epochs": 2, "batch_size": 32,
                       "tag": "n400"},
                      {"arch": "cnn-s", "n_train": 800, "epochs": 1, "batch_size": 32,
                       "tag": "n800-e1"}]},
        # the standard digits models of the laptop zoo (+ a ResNet-14 for a depth-only pair);
        # Su et al.'s search and attacks (FGSM / I-FGSM on the raw logit, as their code) with
        # fewer iterations (C&W: Su et al.'s 9 constants, from c = 1, × 250 Adam steps of lr
        # 0.05; EAD: 9 × 250 FISTA steps; I-FGSM: 10 steps: benchmarks/bench_budgets.py measured
        # the mean distortions of the earlier 3 × 30 up to 80 % above those of 9 × 120, most for
        # the models of the smallest distortions, and 9 × 250 within 2.4 % of 9 × 500; C&W's Adam
        # as published: at this lr Su et al.'s form ended 5 % higher, 0.645 against 0.613 mean L2
        # on 16 images of cnn-m/std);
        # targeted transfer as top-1 (top-5 of 10 classes is half the classes)
        "laptop": {"seed": 0, "zoo": "laptop", "dataset": "digits", "data_split": "test",
                   "data_kw": {}, "archs": None,
                   "extra_models": [{"arch": "resnet14", "epochs": DIGITS_EPOCHS["resnet8"]}],
                   "n_images": 64,
                   "search_tries": 9, "search_start": 0.02, "search_loss": "logit",
                   "ifgsm_steps": 10, "cw_binary_steps": 9,
                   "cw_steps": 250, "cw_lr": 0.05, "cw_initial_const": 1.0,
                   "cw_adam_eps": "outside",
                   "ead_binary_steps": 9, "ead_steps": 250, "ead_lr": 0.01,
                   "ead_initial_const": 0.1, "ead_beta": 1e-3, "target_modes": [],
                   "depth_pairs": [["resnet8", "resnet14"]], "transfer_eps": 0.1,
                   "transfer_steps": 10, "transfer_target_mode": "random",
                   "transfer_targeted_metric": "success", "transfer_only_successful": False,
                   "n_boot": 1000,
                   "batch_size": 256, "zoo_seed": 0,
                   # one architecture per family trained to other errors: 150 or 500 training
                   # images (the family's zoo epochs), or one epoch on all of them
                   "family_models": [
                       {"arch": a, "n_train": n, "epochs": DIGITS_EPOCHS[a], "tag": f"n{n}"}
                       for a in ("mlp-m", "cnn-m", "vgg-xs", "resnet8-xs") for n in (150, 500)]
                   + [{"arch": a, "epochs": 1, "tag": "e1"}
                      for a in ("mlp-m", "cnn-m", "vgg-xs", "resnet8-xs")]},
        # the published protocol on other models: every standard model of the paper zoo (21:
        # the 12 timm classifiers and the 9 Salman et al. models at eps 0; not Su et al.'s 18
        # TF-slim networks, so 420 ordered transfer pairs, not 306); 1000 ImageNet images (each
        # model attacks the ones it classifies correctly: about top-1 accuracy x 1000, where Su
        # et al. took 1000 correct ones per model), I-FGSM 50 steps, C&W 9 × 1000 (lr 0.001,
        # c0 0.01: the README's --lr; their test_CW_EADL1.py never passes it on, so their C&W
        # ran l2_attack.py's default 2e-3) with their Adam (the 1e-8 inside the square root),
        # EAD β 1e-3 (lr 0.01, EAD's own default, which their code ran), FGSM / I-FGSM
        # ascending the raw logit (their code's --use_zvalue), untargeted + 3 targeted modes.
        # Each model at its own input size (inception_v3: the 224-pixel images resampled to
        # 299). The transfer budget is ours: the stored texts do not give the paper's (the
        # official README's example: FGSM eps 0.3)
        "paper": {"seed": 0, "zoo": "paper", "dataset": "imagenet", "data_split": "val",
                  "data_kw": {"root": "$ADVLENS_IMAGENET", "size": 224, "max_per_class": 2},
                  "archs": None, "extra_models": [], "n_images": 1000, "search_tries": 9,
                  "search_start": 0.02, "search_loss": "logit",
                  "ifgsm_steps": 50, "cw_binary_steps": 9, "cw_steps": 1000, "cw_lr": 0.001,
                  "cw_initial_const": 0.01, "cw_adam_eps": "inside", "ead_binary_steps": 9,
                  "ead_steps": 1000,
                  "ead_lr": 0.01, "ead_initial_const": 0.01, "ead_beta": 1e-3,
                  "target_modes": ["least-likely", "top-2", "random"],
                  "depth_pairs": [["resnet18.tv_in1k", "resnet50.tv_in1k"],
                                  ["resnet50.tv_in1k", "resnet101.tv_in1k"],
                                  ["vgg16.tv_in1k", "vgg19.tv_in1k"]], "transfer_eps": 16 / 255,
                  "transfer_steps": 50, "transfer_target_mode": "random",
                  "transfer_targeted_metric": "top5", "transfer_only_successful": False,
                  "n_boot": 2000,
                  "batch_size": 64, "zoo_seed": 0, "family_models": []},
    },
    # --- 05: seed sweep of the other notebooks ------------------------------------------------
    # each seed s reruns the listed notebooks (those that exist) with seed = zoo_seed = s; not
    # 04: its `seed` draws only its bootstrap (its α images are fixed, its models are its own
    # `seeds`), so reruns repeat its α and transfer numbers exactly
    "05": {
        "smoke": {"seeds": [0, 1], "sweep_notebooks": ["01", "02"], "sweep_dir": None},
        "laptop": {"seeds": [0, 1, 2], "sweep_notebooks": ["01", "02", "03"],
                   "sweep_dir": None},
        "paper": {"seeds": [0, 1, 2], "sweep_notebooks": ["01", "02", "03"],
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
                  "data_kw": {"path": "$ADVLENS_CLICKME", "split": "val", "size": 224,
                              "max_per_class": 1},
                  "archs": None,
                  "n_images": 1000, "attacks": ["pgd", "ddn"], "ddn_steps": 100,
                  "batch_size": 32, "n_boot": 2000, "twin_n": 1000, "n_show": 6},
    },
    # --- 04: Liang et al. adversarial vs knowledge transferability ------------------------------
    "04": _liang_presets(),
}


# notebook 04's experiments by its knob ``liang_data`` (papers.liang2021 runs them; its knob
# ``experiments`` picks some)
LIANG_EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "embedded": ("A-digits", "A-twin-cue", "B-digits"),
    "cifar10-stl10": ("A-cifar10-stl10", "B-cifar10-stl10")}
# Knobs whose value must be one of a list (checked with the types, before anything runs).
CHOICES: dict[str, tuple[str, ...]] = {"zoo": PRESET_NAMES, "twin_zoo": PRESET_NAMES,
                                       "twin_design": TWIN_CUE_DESIGNS,
                                       "zoo_preset": PRESET_NAMES,
                                       "alpha_attack": ("pgd", "fgsm"),
                                       "alpha_direction": ALPHA_DIRECTIONS,
                                       "probe": ("linear", "finetune"),
                                       "probe_recipe": PROBE_RECIPES,
                                       "liang_data": tuple(LIANG_EXPERIMENTS),
                                       "transfer_target_mode": TARGET_MODES,
                                       "transfer_targeted_metric": ("success", "top5"),
                                       "search_loss": SEARCH_LOSSES,
                                       "cw_adam_eps": ADAM_EPS}
# List knobs whose every item must be one of a list.
ITEM_CHOICES: dict[str, tuple[str, ...]] = {"datasets": ("digits", "twin-cue", "clickme"),
                                            "attacks": ("pgd", "ddn"),
                                            "target_modes": TARGET_MODES,
                                            "experiments": sum(LIANG_EXPERIMENTS.values(),
                                                               ())}
# List knobs whose items may be of other kinds than the presets' (notebook numbers: "01" or 1).
ITEM_KINDS: dict[str, set[str]] = {"sweep_notebooks": {"str", "int"}}


def notebook_number(item: str | int) -> str:
    """A notebook number as two digits (``"1"`` and ``1`` -> ``"01"``); only digits are padded,
    so ``""`` does not become ``"00"``."""
    return str(item).zfill(2) if str(item).isdigit() else str(item)


# Dict knobs that map free names to numbers of one kind, each value checked as a number knob.
MAPPING_VALUES: dict[str, str] = {"b_archs": "int"}  # architecture -> training epochs
# List knobs whose items name the same thing in more than one spelling: the key that compares them.
ITEM_KEYS = {"sweep_notebooks": notebook_number}
# List knobs that an empty list would leave with nothing to run (or nothing to compare).
NON_EMPTY = frozenset({"heatmap_archs", "robust_archs", "robust_eps", "datasets", "attacks",
                       "experiments", "seeds", "sweep_notebooks"})
# List knobs that need more than one item in some notebook: a seed sweep compares seeds (05's
# seeds [0] passed the checks and failed in a later cell).
LEAST_ITEMS: dict[tuple[str, str], int] = {("05", "seeds"): 2}
# List knobs of things to run or compare, each at most once: a repeated seed or experiment ran
# twice and was counted twice (04's n_seeds and t-intervals; two runs of one experiment merged).
DISTINCT = frozenset({"seeds", "experiments", "datasets", "attacks", "target_modes",
                      "heatmap_archs", "robust_archs", "robust_eps", "sweep_notebooks",
                      "a_target", "a_other", "b_source", "b_target"})


# Float knobs that must be > 0, not merely >= 0: a step, a rate, a first constant or a budget of
# 0 runs no attack (02's transfer_eps: a transfer matrix of NaN; 04's eps: alpha fails after
# every model of a seed is trained; its step_fraction: alpha measured on the random start) or
# fails only when its first attack or probe starts.
POSITIVE = frozenset({"step_size", "search_start", "cw_lr", "cw_initial_const", "ead_lr",
                      "ead_initial_const", "transfer_eps", "eps", "step_fraction", "probe_lr",
                      "val_fraction"})


# Number knobs with bounds of their own, (least, most), beyond the presets' rule (counts >= 1,
# sizes >= 0): a bootstrap of a few resamples gave a "95 % CI" without its estimate (n_boot 1:
# rho 0.597 [0.460, 0.460], and verdicts read from it); an L∞ radius in [0, 1] pixels above 1
# (04's eps 2.0, 02's transfer_eps 5.0 and search_start 2.0) ran, attacking with no bound.
# 01's inversion pairs: its CKA CIs leave out a group of them at a time (the jackknife), and
# CKA needs two images left (n_pairs 2 failed in a later cell: "the Grams have 1 rows"). 03's
# DDN: one step takes one iterate, which it never judges (minimal_l2's smallest DDN budget, 3).
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "n_boot": (20, None), "eps": (None, 1.0), "transfer_eps": (None, 1.0),
    "search_start": (None, 1.0), "n_pairs": (4, None), "robust_pairs": (4, None),
    "twin_pairs": (4, None), "ddn_steps": (2, None)}


# Seed knobs (a list of seeds: each item): whole numbers in 0..MAX_SEED. Above 2**64 torch's
# generators failed in a later cell with "Overflow when unpacking long long", naming no knob
# (zoo_seed k trains from seed + 100 k); 32 bits leave room for that arithmetic.
SEED_KNOBS = frozenset({"seed", "zoo_seed", "seeds"})
MAX_SEED = 2**32 - 1


# Knobs that are None in every preset ("every model", "the default folder"), so the tables
# cannot show their type: what a value must be instead.
UNSET_KNOBS: dict[str, str] = {
    "archs": "a non-empty list of zoo architecture names (str), e.g. ['cnn-s', 'mlp-s']",
    "sweep_dir": "a folder path (str), e.g. 'out/sweep'",
}


def _kind(value: Any) -> str:
    """The type family a knob's value belongs to (bool is not an int; tuples pass for lists)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _fail_type(notebook: str, name: str, value: Any, expected: str,
               examples: list[Any]) -> TypeError:
    if any(v is None for v in examples):
        expected += " (or None for the preset's value)"
    like = next((v for v in examples if v is not None), None)
    return TypeError(f"notebook {notebook}: knob {name!r} = {value!r} has type "
                     f"{type(value).__name__}; expected {expected}, like the presets' {like!r}.")


def _check_unset(notebook: str, name: str, value: Any, given: Any) -> Any:
    ok = {"archs": isinstance(value, list) and bool(value)
                   and all(isinstance(v, str) and v for v in value),
          "sweep_dir": isinstance(value, str) and bool(value)}[name]
    if not ok:
        raise TypeError(f"notebook {notebook}: knob {name!r} = {given!r}; expected "
                        f"{UNSET_KNOBS[name]} (or None for the preset's default).")
    return value


def _check_number(notebook: str, name: str, value: Any, kind: str,
                  numbers: list[int | float]) -> int | float:
    if kind == "float":
        if not math.isfinite(value):
            raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r}; expected a finite "
                             f"number, like the presets' {numbers[0]!r}.")
        value = float(value)  # 1 and 1.0 give the same run and the same provenance
    if name in POSITIVE and not value > 0:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r} must be > 0 (the "
                         f"presets use {', '.join(map(repr, numbers))}).")
    # a bound holds when every preset respects it: counts >= 1, sizes and radii >= 0
    floor = 1 if kind == "int" and min(numbers) >= 1 else 0 if min(numbers) >= 0 else None
    if floor is not None and value < floor:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r} must be >= {floor} "
                         f"(the presets use {', '.join(map(repr, numbers))}).")
    least, most = BOUNDS.get(name, (None, None))
    if least is not None and value < least:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r} must be >= {least} "
                         f"(the presets use {', '.join(map(repr, numbers))}).")
    if most is not None and value > most:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r} must be <= {most}: "
                         f"an L∞ radius in pixels of [0, 1] images (the presets use "
                         f"{', '.join(map(repr, numbers))}).")
    if name in SEED_KNOBS and value > MAX_SEED:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {value!r} must be a seed in "
                         f"0..{MAX_SEED} (2**32 - 1).")
    return value


def _check_items(notebook: str, name: str, value: list[Any], given: Any,
                 examples: list[list[Any]]) -> list[Any]:
    """Every item of list knob ``name`` has the kind of the presets' items (ints pass for
    floats; nested lists are checked the same way, and keep the presets' length: pairs stay
    pairs), is one of :data:`ITEM_CHOICES` where listed; :data:`NON_EMPTY` lists have one,
    :data:`DISTINCT` lists no item twice. Returns the list as the notebook gets it: an
    integral float where the presets' items are ints becomes an int (``5.0`` -> ``5``, as an
    int knob's value does)."""
    if name in NON_EMPTY and not value:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {given!r} is empty; give at "
                         f"least one item, like the presets' {examples[0]!r}.")
    least = LEAST_ITEMS.get((notebook, name), 0)
    if len(value) < least:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {given!r} needs at least {least} "
                         f"items, like the presets' {examples[0]!r}.")
    key = ITEM_KEYS.get(name, lambda item: item)
    keys = [key(item) for item in value]
    repeats = [item for i, item in enumerate(value) if keys[i] in keys[:i]]
    if name in DISTINCT and repeats:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {given!r} repeats {repeats[0]!r}; "
                         "give each item once (a repeat runs it twice and counts it twice).")
    items = [i for v in examples for i in v]
    kinds = ITEM_KINDS.get(name) or {_kind(i) for i in items}
    lengths = {len(i) for i in items if isinstance(i, list)}
    checked = []
    for item in value:
        kind = _kind(item)
        ok = not kinds or kind in kinds or (kind == "int" and "float" in kinds)
        if kind == "float" and kinds <= {"int", "float"}:
            ok = ok and math.isfinite(item)
        if kind == "float" and kinds == {"int"}:  # a whole number given as 2.0 is still a count
            ok = math.isfinite(item) and item.is_integer()
        if ok and kind == "list" and len(lengths) == 1 and len(item) not in lengths:
            ok = False
        if not ok:
            like = (("a finite " if kinds <= {"int", "float"} and "float" in kinds else "")
                    + " or ".join(sorted(kinds))
                    + (f" of {lengths.pop()} items" if kind == "list" and len(lengths) == 1
                       else ""))
            raise TypeError(f"notebook {notebook}: knob {name!r} = {given!r} holds {item!r} "
                            f"({type(item).__name__}); expected each item to be {like}, like "
                            f"the presets' {examples[0]!r}.")
        if name in SEED_KNOBS and kind in {"int", "float"} and not 0 <= item <= MAX_SEED:
            raise ValueError(f"notebook {notebook}: knob {name!r} = {given!r} holds {item!r}; "
                             f"each seed must be in 0..{MAX_SEED} (2**32 - 1).")
        if kind == "list":
            item = _check_items(notebook, name, item, given,
                                [i for i in items if isinstance(i, list)])
        if name in ITEM_CHOICES and item not in ITEM_CHOICES[name]:
            raise ValueError(f"notebook {notebook}: knob {name!r} = {given!r} holds {item!r}; "
                             f"each item must be one of {', '.join(ITEM_CHOICES[name])}.")
        checked.append(int(item) if kind == "float" and kinds == {"int"} else item)
    return checked


def _check_mapping(notebook: str, name: str, value: dict[Any, Any], given: Any,
                   examples: list[dict[Any, Any]]) -> dict[Any, Any]:
    """Every value of dict knob ``name`` (:data:`MAPPING_VALUES`) checked as a number of its
    kind, within the presets' range (:func:`_check_number`); an integral float becomes an int
    where the kind is int. Returns the dict as the notebook gets it."""
    kind = MAPPING_VALUES[name]
    numbers = [v for table in examples for v in table.values()]
    checked = {}
    for key, item in value.items():
        if kind == "int" and isinstance(item, float) and math.isfinite(item) \
                and item.is_integer():
            item = int(item)
        if _kind(item) not in {"int", kind}:
            expected = "int (a whole number)" if kind == "int" else "float (or int)"
            raise TypeError(f"notebook {notebook}: knob {name!r} = {given!r} holds {key!r}: "
                            f"{item!r} ({type(item).__name__}); expected each value to be "
                            f"{expected}, like the presets' {examples[0]!r}.")
        checked[key] = _check_number(notebook, f"{name}[{key!r}]", item, kind, numbers)
    return checked


def check_knob(notebook: str, name: str, value: Any) -> Any:
    """``value`` checked against ``notebook``'s knob ``name``; returns it as the notebook gets it.

    The expected type is that of the knob's values in the presets (``None`` in a preset means the
    knob is optional there). An int knob refuses bools and non-integral floats; an integral float
    (``2.0``) is converted to the int ``2``. A float knob takes ints (converted to float) but not
    NaN or infinity. A number knob whose preset values are all >= 1 (counts) must be >= 1; all
    >= 0, >= 0; a knob of :data:`POSITIVE` (a step, rate or budget), > 0; a seed of
    :data:`SEED_KNOBS` (each item of a list of seeds), in 0..:data:`MAX_SEED`. Tuples become
    lists, NumPy scalars their Python values (:func:`as_lists`). The items of a list knob must
    have the kind of the presets' items (:func:`_check_items`: a list of seeds takes no 0.5 and
    gets 1.0 as 1, a list of pairs no single name; a list of seeds, experiments or classes no
    item twice); the values of a dict knob in
    :data:`MAPPING_VALUES` are checked as numbers (``b_archs``' epochs).
    Knobs that are ``None`` in every preset are checked against :data:`UNSET_KNOBS`; knobs in
    :data:`CHOICES` must take one of the listed values. Raises a TypeError/ValueError naming the
    notebook, the knob and the expected value.
    """
    if value is None:
        return None
    given, value = value, as_lists(value)  # errors show the value as given
    examples = [table[name] for table in PRESETS[notebook].values() if name in table]
    known = [v for v in examples if v is not None]
    kinds = {_kind(v) for v in known}
    if not known and name in UNSET_KNOBS:
        return _check_unset(notebook, name, value, given)
    if kinds and kinds <= {"int", "float"}:
        kind = "float" if "float" in kinds else "int"
        if kind == "int" and isinstance(value, float) and math.isfinite(value) \
                and value.is_integer():
            value = int(value)
        if _kind(value) not in {"int", kind}:
            expected = "int (a whole number)" if kind == "int" else "float (or int)"
            raise _fail_type(notebook, name, given, expected, examples)
        return _check_number(notebook, name, value, kind, known)
    if kinds and _kind(value) not in kinds:
        raise _fail_type(notebook, name, given, " or ".join(sorted(kinds)), examples)
    if isinstance(value, list) and known:  # a knob of the presets, not a notebook's extra one
        value = _check_items(notebook, name, value, given,
                             [v for v in known if isinstance(v, list)])
    if isinstance(value, dict) and name in MAPPING_VALUES and known:
        value = _check_mapping(notebook, name, value, given,
                               [v for v in known if isinstance(v, dict)])
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"notebook {notebook}: knob {name!r} = {given!r}; choose one of "
                         f"{', '.join(CHOICES[name])}.")
    return value


def as_lists(value: Any) -> Any:
    """``value`` with every tuple, at any depth, turned into a list and every NumPy scalar into
    its Python value (as JSON and papermill see them: papermill would inject a tuple, or a
    ``np.bool_`` / ``np.int64``, as its string)."""
    if isinstance(value, list | tuple):
        return [as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


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
    """The knobs of ``notebook`` at ``preset``, with every non-``None`` override applied; a dict
    given for a loader-options knob (``data_kw``, ``cifar_kw``, ... : a name ending in ``_kw``)
    is merged into the preset's (``data_kw={'root': '/data/imagenet'}`` keeps the paper
    preset's ``size`` and ``max_per_class``: the missing-data message advises that override,
    and a replaced dict dropped them, changing the protocol without a word); a key given as
    None drops that option, and ``{}`` clears them all.

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
    checked = {k: check_knob(notebook, k, v) for k, v in overrides.items() if k != "preset"}
    knobs.update({k: _merged(knobs[k], v) if k.endswith("_kw") and isinstance(v, dict)
                  and isinstance(knobs[k], dict) else v
                  for k, v in checked.items() if v is not None})
    knobs["preset"] = preset
    _check_split(notebook, knobs)
    return knobs


def _check_split(notebook: str, knobs: Knobs) -> None:
    """A ``data_split`` that ``dataset`` does not have, named as the knob (the loader's own
    error, at the notebook's data cell, named neither)."""
    from advlens.data.registry import splits

    if not isinstance(knobs.get("dataset"), str) or "data_split" not in knobs:
        return
    try:
        choices = splits(knobs["dataset"])
    except ValueError:  # an unknown data set: the notebook's zoo check names that knob
        return
    if choices is not None and knobs["data_split"] not in choices:
        raise ValueError(f"notebook {notebook}: knob 'data_split' = {knobs['data_split']!r} is "
                         f"not a split of {knobs['dataset']!r}; choose one of {list(choices)}.")


def _merged(preset: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A loader-options override merged into the preset's: its keys replace the preset's, a key
    given as None drops that option (the loader's default), and ``{}`` clears them all."""
    if not given:
        return {}
    return {k: v for k, v in {**preset, **given}.items() if v is not None}


# what from_namespace takes for a stray parameter: plain values, as papermill injects them
_LITERAL_TYPES = (str, int, float, bool, list, dict, tuple, type(None))
# IPython's own globals (input and output history)
_IPYTHON_NAMES = frozenset({"In", "Out"})


def _notebook_names(notebook: str) -> set[str]:
    """Every name the notebook's own code cells (not its parameters cell) assign."""
    import json

    from advlens.paths import notebooks_dir

    names: set[str] = set()
    for path in notebooks_dir().glob(f"{notebook}_*.ipynb"):
        try:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError):
            continue
        for cell in cells:
            if cell.get("cell_type") != "code" or \
                    "parameters" in cell.get("metadata", {}).get("tags", []):
                continue
            source = cell.get("source", "")
            try:
                tree = ast.parse("".join(source) if isinstance(source, list) else source)
            except SyntaxError:  # a cell with IPython magics
                continue
            names |= {node.id for node in ast.walk(tree)
                      if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    return names


def from_namespace(notebook: str, namespace: Mapping[str, Any]) -> Knobs:
    """:func:`resolve` with the preset and overrides read from a notebook's namespace.

    The one line under a notebook's ``parameters`` cell: ``P = presets.from_namespace("01",
    globals())`` -- every knob of the notebook's preset table that the namespace defines (the
    ``parameters`` cell sets each to ``None``, papermill injects the overrides) is applied.

    Any other global holding a plain value (str, number, bool, list, dict, tuple, None) is
    refused with a ValueError naming the nearest knob: papermill only warns about a parameter
    the notebook does not declare (``-p sede 3``) and would run with the default. Names starting
    with ``_`` and names the notebook's own cells assign (a rerun in Jupyter) are left alone.
    ``out_dir`` must be None or a folder path (str or path-like): a TypeError naming it otherwise.
    """
    preset = namespace.get("preset", "laptop")
    out_dir = namespace.get("out_dir")
    if out_dir is not None and not isinstance(out_dir, str | os.PathLike):
        # the notebook's next line, Path(out_dir), failed naming no knob
        raise TypeError(f"notebook {notebook}: knob 'out_dir' = {out_dir!r} has type "
                        f"{type(out_dir).__name__}; expected a folder path (str), e.g. "
                        "'out/run1' (or None for the default folder under figures/).")
    names = set().union(*(table.keys() for table in PRESETS.get(notebook, {}).values()))
    allowed = names | {"preset", "out_dir"} | _IPYTHON_NAMES
    stray = sorted(k for k, v in namespace.items()
                   if not k.startswith("_") and k not in allowed and type(v) in _LITERAL_TYPES)
    if stray:
        stray = sorted(set(stray) - _notebook_names(notebook))
    if stray:
        hints = []
        for k in stray:
            near = difflib.get_close_matches(k, sorted(allowed - _IPYTHON_NAMES), n=1)
            hints.append(f"{k!r} = {namespace[k]!r}" + (f" (did you mean {near[0]!r}?)"
                                                        if near else ""))
        raise ValueError(f"notebook {notebook}: {', '.join(hints)} is not a knob of this "
                         f"notebook, so it would be ignored; its knobs: {sorted(names)}. Fix the "
                         "parameter's name (papermill -p NAME VALUE); for a variable of your own, "
                         "start its name with '_'.")
    return resolve(notebook, preset, **{k: namespace[k] for k in names if k in namespace})
